"""libcoap's ``coap-client-notls`` as an independent peer of the CoAP server (subprocesses with
bounded timeouts, loopback only)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import cbor2
import pytest

from tests.integration.test_coap_support import LOCALHOST, coap_server, until

COAP_CLIENT = shutil.which("coap-client-notls") or "/usr/bin/coap-client-notls"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(10)]


def test_libcoap_client_is_installed() -> None:
    """The independent peer must exist: .ci/run installs Debian's libcoap3-bin."""
    assert Path(COAP_CLIENT).is_file(), "coap-client-notls missing: apt-get install libcoap3-bin"


async def run_client(*args: str, timeout: float = 6.0) -> tuple[int, bytes, bytes]:
    """Run coap-client-notls; (exit status, stdout, stderr); killed after `timeout`."""
    proc = await asyncio.create_subprocess_exec(
        COAP_CLIENT, "-B", str(int(timeout)), *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout + 1)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_libcoap_posts_senml_cbor_and_gets_a_cbor_summary(tmp_path: Path) -> None:
    """coap-client -m post -t 112 -f FILE gets a piggybacked 2.04 with a CBOR body."""
    body = tmp_path / "reading.cbor"
    body.write_bytes(cbor2.dumps([{-2: "urn:dev:d1:", 0: "temp", 1: "Cel", 2: 21.5}]))
    answer = tmp_path / "answer.cbor"
    async with coap_server() as srv:
        status, out, err = await run_client(
            "-v", "6", "-m", "post", "-t", "112", "-f", str(body), "-o", str(answer),
            f"coap://{LOCALHOST}:{srv.port}/devices/d1/telemetry",
        )
        text = (out + err).decode(errors="replace")  # libcoap logs to stdout at -v 6
        assert status == 0, text
        assert "t:ACK c:2.04" in text
        assert "Content-Format:application/cbor" in text
        assert cbor2.loads(answer.read_bytes()) == {"accepted": 1, "actions": []}
        assert srv.server.counters["fast_path"] == 1


async def test_libcoap_observer_sees_a_pushed_command() -> None:
    """coap-client -s 3 on actuators/a1/set prints a command published on the bus."""
    async with coap_server() as srv:
        observer = asyncio.create_task(
            run_client("-s", "3", "-w", f"coap://{LOCALHOST}:{srv.port}/actuators/a1/set")
        )
        await until(lambda: srv.server.observers == 1, within=5)
        srv.bus.publish("actuators/a1/set", b'{"state":"off"}', qos=1)
        status, out, err = await observer
        assert status == 0, err.decode(errors="replace")
        assert b'{"state":"off"}' in out
        await until(lambda: srv.server.observers == 0, within=3)


async def test_libcoap_errors_are_reported() -> None:
    """libcoap sees 4.04 for an unknown path and 4.15 for telemetry sent as text/plain."""
    async with coap_server() as srv:
        base = f"coap://{LOCALHOST}:{srv.port}"
        _, out, err = await run_client("-v", "6", "-m", "post", "-e", "x", base + "/nope")
        assert "c:4.04" in (out + err).decode(errors="replace")
        _, out, err = await run_client(
            "-v", "6", "-m", "post", "-t", "0", "-e", "21.5", base + "/devices/d1/telemetry"
        )
        assert "c:4.15" in (out + err).decode(errors="replace")
