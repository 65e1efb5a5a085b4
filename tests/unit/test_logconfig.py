"""Structured logging: JSON lines, console text, level filtering and stdlib routing."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import structlog

from gateway.logconfig import configure_logging, reset_logging
from schemas.config import LogConfig


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave structlog, the root logger and the context variables as they were."""
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    reset_logging()


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_expected_keys_and_bound_context() -> None:
    """Each event is one JSON object with ts, level, event, logger and the bound context vars."""
    stream = io.StringIO()
    configure_logging(LogConfig(format="json", level="info"), stream)
    structlog.contextvars.bind_contextvars(client_id="sensor-1", addr="127.0.0.1:40000")
    structlog.get_logger("gateway.test").info("client connected", duration=60)

    (line,) = json_lines(stream)
    assert line["event"] == "client connected"
    assert line["level"] == "info"
    assert line["logger"] == "gateway.test"
    assert line["client_id"] == "sensor-1"
    assert line["addr"] == "127.0.0.1:40000"
    assert line["duration"] == 60
    stamp = datetime.fromisoformat(line["ts"])
    assert stamp.utcoffset() == timedelta(0)
    assert list(line)[:4] == ["ts", "level", "logger", "event"]


def test_level_filtering_drops_lower_levels() -> None:
    """At level warning, debug and info events from structlog and logging are dropped."""
    stream = io.StringIO()
    configure_logging(LogConfig(format="json", level="warning"), stream)
    log = structlog.get_logger("gateway.test")
    log.debug("debug event")
    log.info("info event")
    log.warning("warning event")
    log.error("error event")
    logging.getLogger("gmqtt").info("third-party info")
    logging.getLogger("gmqtt").error("third-party error")

    events = [line["event"] for line in json_lines(stream)]
    assert events == ["warning event", "error event", "third-party error"]


def test_debug_level_lets_everything_through() -> None:
    """At level debug, debug events are written too."""
    stream = io.StringIO()
    configure_logging(LogConfig(format="json", level="debug"), stream)
    structlog.get_logger("gateway.test").debug("debug event")
    logging.getLogger("aiocoap").debug("third-party debug")

    assert [line["level"] for line in json_lines(stream)] == ["debug", "debug"]


def test_console_format_is_human_text_not_json() -> None:
    """The console format writes readable key=value text without colour codes."""
    stream = io.StringIO()
    configure_logging(LogConfig(format="console", level="info"), stream)
    structlog.contextvars.bind_contextvars(client_id="sensor-2")
    structlog.get_logger("gateway.test").info("client connected", duration=60)

    text = stream.getvalue()
    assert "client connected" in text
    assert "client_id=sensor-2" in text
    assert "duration=60" in text
    assert "\x1b[" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_stdlib_logging_records_come_out_structured() -> None:
    """A third-party logging call becomes a JSON line with its logger name and formatted message."""
    stream = io.StringIO()
    configure_logging(LogConfig(format="json", level="info"), stream)
    structlog.contextvars.bind_contextvars(client_id="sensor-3")
    logging.getLogger("gmqtt.mqtt.protocol").warning("reconnect in %d s", 5)

    (line,) = json_lines(stream)
    assert line["event"] == "reconnect in 5 s"
    assert line["level"] == "warning"
    assert line["logger"] == "gmqtt.mqtt.protocol"
    assert line["client_id"] == "sensor-3"
    assert "ts" in line


def test_exceptions_are_rendered_into_the_json_line() -> None:
    """log.exception adds the traceback as a string under the exception key."""
    stream = io.StringIO()
    configure_logging(LogConfig(format="json", level="info"), stream)
    try:
        raise ValueError("bad datagram")
    except ValueError:
        structlog.get_logger("gateway.test").exception("decode failed")
        logging.getLogger("aiocoap").exception("coap failed")

    lines = json_lines(stream)
    assert [line["event"] for line in lines] == ["decode failed", "coap failed"]
    for line in lines:
        assert line["level"] == "error"
        assert "ValueError: bad datagram" in line["exception"]


def test_configure_logging_is_idempotent() -> None:
    """Configuring twice installs one handler, so each event is written exactly once."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging(LogConfig(format="json", level="info"), first)
    configure_logging(LogConfig(format="json", level="info"), second)
    structlog.get_logger("gateway.test").info("once")
    logging.getLogger("gmqtt").warning("once too")

    assert first.getvalue() == ""
    assert [line["event"] for line in json_lines(second)] == ["once", "once too"]


def test_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a stream argument, lines go to standard error, leaving stdout for commands."""
    configure_logging(LogConfig(format="json", level="info"))
    structlog.get_logger("gateway.test").info("to stderr")

    captured = capsys.readouterr()
    assert captured.out == ""
    assert json.loads(captured.err.splitlines()[-1])["event"] == "to stderr"
