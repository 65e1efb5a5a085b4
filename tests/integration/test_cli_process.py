"""`edge-gateway run` as operators start it: a separate process, configured by environment."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.mqttsn.codec import decode, encode
from gateway.mqttsn.packets import GwInfo, SearchGw
from tests.helpers import free_udp_port

pytestmark = pytest.mark.integration


def wait_for_gwinfo(port: int, within: float = 15.0) -> GwInfo:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            sock.sendto(encode(SearchGw(0)), ("127.0.0.1", port))
            try:
                data, _ = sock.recvfrom(64)
            except TimeoutError:
                continue
            packet = decode(data)
            assert isinstance(packet, GwInfo)
            return packet
    raise AssertionError("the gateway never answered SEARCHGW")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_and_stops_cleanly_on_signal(tmp_path: Path, signum: int) -> None:
    """The CLI gateway answers on its UDP port and exits 0 with JSON logs after a signal."""
    port = free_udp_port()
    env = {
        **os.environ,
        "EGW_MQTTSN__HOST": "127.0.0.1",
        "EGW_MQTTSN__PORT": str(port),
        "EGW_MQTTSN__GATEWAY_ID": "9",
        "EGW_COAP__HOST": "127.0.0.1",
        "EGW_COAP__PORT": str(free_udp_port()),
        "EGW_HTTP__HOST": "127.0.0.1",
        "EGW_HTTP__PORT": "0",
        "EGW_DATA_DIR": str(tmp_path / "data"),
        "EGW_LOG__FORMAT": "json",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert wait_for_gwinfo(port) == GwInfo(9)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert "gateway_ready" in events and events[-1] == "gateway_stopped", events
    assert (tmp_path / "data" / "mqttsn-sessions.sqlite3").exists()


def test_invalid_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    """A bad environment value stops the CLI with exit status 2 and names the variable."""
    env = {**os.environ, "EGW_MQTTSN__PORT": "70000", "EGW_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "run"], env=env, capture_output=True, text=True,
        timeout=30, check=False,
    )
    assert proc.returncode == 2
    assert "EGW_MQTTSN__PORT" in proc.stderr


def test_busy_coap_port_fails_loudly(tmp_path: Path) -> None:
    """A CoAP port already bound by another socket stops the CLI with exit 1 and says why."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        env = {
            **os.environ,
            "EGW_MQTTSN__HOST": "127.0.0.1",
            "EGW_MQTTSN__PORT": str(free_udp_port()),
            "EGW_COAP__HOST": "127.0.0.1",
            "EGW_COAP__PORT": str(squatter.getsockname()[1]),
            "EGW_HTTP__HOST": "127.0.0.1",
            "EGW_HTTP__PORT": "0",
            "EGW_DATA_DIR": str(tmp_path),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "gateway", "run"], env=env, capture_output=True, text=True,
            timeout=30, check=False,
        )
    assert proc.returncode == 1, proc.stderr
    failed = [json.loads(line) for line in proc.stderr.splitlines() if "gateway_failed" in line]
    assert failed and failed[0]["kind"] == "CoapPortInUse"
