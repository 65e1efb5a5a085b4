"""CPU cost of one QoS 1 publish through the broker link, PUBACK included, in-process.

Connects the gateway's `GmqttLink` to a running broker (default: the local mosquitto on
127.0.0.1:1883), wraps it in the `SpoolingLink` the app uses (spool in a temporary directory,
never written while the broker is up), and publishes ``--messages`` 200-byte QoS 1 messages in
windows of 500 outstanding, waiting for every PUBACK. Prints the process CPU time per publish
through the uplink (twice: the first round warms up) and through the bare link. The broker is a
separate process; its CPU is not counted.

``--gateway-python PYTHON`` measures the gateway installed for that interpreter (e.g. the
mypyc-compiled build), as in ``bench/coap_fastpath_cost.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_gateway_python_option, rerun_with_installed_gateway

from gateway.bridge.gmqtt_link import GmqttLink
from gateway.config import Settings
from gateway.delivery.uplink import SpoolingLink
from gateway.logconfig import configure_logging
from gateway.spool import Spool

PAYLOAD = b"x" * 200
WINDOW = 500
CONNECT_TIMEOUT = 10.0

Publish = Callable[[str, bytes, int], "asyncio.Future[None] | None"]


async def _round(publish: Publish, messages: int) -> float:
    """CPU seconds per publish for `messages` QoS 1 publishes, every PUBACK awaited."""
    started = time.process_time()
    outstanding: list[asyncio.Future[None]] = []
    for _ in range(messages):
        sent = publish("decisions/bench", PAYLOAD, 1)
        assert sent is not None  # QoS 1 always has an acknowledgement to wait for
        outstanding.append(sent)
        if len(outstanding) >= WINDOW:
            await asyncio.gather(*outstanding)
            outstanding.clear()
    await asyncio.gather(*outstanding)
    return (time.process_time() - started) / messages


async def measure(broker: str, messages: int) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(broker={"url": broker}, data_dir=Path(tmp), log={"level": "warning"})
        configure_logging(settings.log)
        link = GmqttLink(settings, lambda *_args, **_kwargs: None)
        spool = Spool(Path(tmp) / "spool.sqlite3", max_bytes=10**8, max_age_s=3600,
                      decision_share=0.2, command_share=0.2, telemetry_share=0.6,
                      synchronous="normal")
        uplink = SpoolingLink(link, spool, gateway_id="bench", replay_rate=100, replay_burst=10)
        ready = asyncio.Event()
        runner = asyncio.create_task(uplink.run(ready))
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await ready.wait()  # set after the first connection attempt
            if not link.connected:
                raise SystemExit(f"no broker at {broker}")
            return [
                ("uplink (warm-up)", await _round(uplink.publish, messages)),
                ("uplink", await _round(uplink.publish, messages)),
                ("link", await _round(link.publish, messages)),
            ]
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            spool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker URL")
    parser.add_argument("--messages", type=int, default=40000, help="publishes per round")
    add_gateway_python_option(parser)
    args = parser.parse_args(argv)
    if args.gateway_python:
        return rerun_with_installed_gateway(
            args.gateway_python, Path(__file__).resolve(),
            ["--broker", args.broker, "--messages", str(args.messages)],
        )
    for name, seconds in asyncio.run(measure(args.broker, args.messages)):
        sys.stdout.write(f"{name}: {seconds * 1e6:.2f} us CPU per QoS 1 publish incl. PUBACK\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
