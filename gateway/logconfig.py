"""The only place that configures structlog and the standard ``logging`` module.

Every line, whether it comes from ``structlog.get_logger(__name__)`` in gateway code or from a
third-party library that uses ``logging`` (gmqtt, aiocoap), goes through one stdlib handler whose
:class:`structlog.stdlib.ProcessorFormatter` renders it either as a JSON object per line or as
human-readable console text. Context bound with :func:`structlog.contextvars.bind_contextvars`
(``client_id``, ``addr`` ...) is merged into every line, including third-party ones.
"""

from __future__ import annotations

import logging
import sys
from typing import Final, TextIO

import structlog
from structlog.typing import EventDict, Processor

from schemas.config import LogConfig

__all__ = ["LEVELS", "configure_logging", "reset_logging"]

LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

TIMESTAMP_KEY: Final = "ts"
_LEADING_KEYS: Final = (TIMESTAMP_KEY, "level", "logger", "event")


class _GatewayHandler(logging.StreamHandler[TextIO]):
    """The root handler installed by :func:`configure_logging`; marked so it can be replaced."""


def _shared_processors() -> list[Processor]:
    """Processors run on every event, whether it came from structlog or from ``logging``."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key=TIMESTAMP_KEY),
        structlog.processors.StackInfoRenderer(),
    ]


def _leading_keys_first(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    """Put ``ts``, ``level``, ``logger`` and ``event`` first so JSON lines read well."""
    ordered = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _render_processors(config: LogConfig, stream: TextIO) -> list[Processor]:
    """The final processors: drop ProcessorFormatter's bookkeeping keys, then render."""
    processors: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if config.format == "json":
        processors += [
            structlog.processors.format_exc_info,
            _leading_keys_first,
            structlog.processors.JSONRenderer(),
        ]
    else:
        isatty = getattr(stream, "isatty", None)
        colors = bool(isatty()) if callable(isatty) else False
        processors.append(structlog.dev.ConsoleRenderer(colors=colors, timestamp_key=TIMESTAMP_KEY))
    return processors


def _remove_our_handlers(root: logging.Logger) -> None:
    for handler in list(root.handlers):
        if isinstance(handler, _GatewayHandler):
            root.removeHandler(handler)
            handler.close()


def configure_logging(config: LogConfig, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to ``stream`` (default stderr) at ``config.level``.

    Safe to call again: the previous handler is replaced, never duplicated. Loggers that were
    already used keep the level filter they were first built with (structlog caches them);
    format and stream changes apply to them too.
    """
    level = LEVELS[config.level]
    out: TextIO = stream if stream is not None else sys.stderr

    handler = _GatewayHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=_render_processors(config, out),
        )
    )
    root = logging.getLogger()
    _remove_our_handlers(root)
    root.addHandler(handler)
    root.setLevel(level)

    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        context_class=dict,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


def reset_logging() -> None:
    """Undo :func:`configure_logging` (for tests): structlog defaults, our root handler removed."""
    _remove_our_handlers(logging.getLogger())
    logging.getLogger().setLevel(logging.WARNING)
    structlog.reset_defaults()
