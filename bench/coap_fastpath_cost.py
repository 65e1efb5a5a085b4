"""CPU cost of one CoAP ingest request on the fast path, in-process and without sockets.

Feeds pre-built SenML-CBOR CON POST datagrams (the payload of ``bench/coap_ingest.py``) straight
into ``CoapServer.datagram_received`` (real codec, de-duplication, normalisation, real
``Pipeline`` with the shipped rules, bus + ``NullLink``, piggybacked ACK to a transport that only
counts) and prints the process CPU time per request.

Wall-clock and CPU-time figures move with the machine and with whatever else runs on it. For a
figure that does not, count instructions with valgrind and take the difference of two sizes, so
that start-up cancels out:

    cg="valgrind --tool=callgrind --callgrind-out-file=/dev/null"
    $cg python3 bench/coap_fastpath_cost.py --requests 1600
    $cg python3 bench/coap_fastpath_cost.py --requests 400

(instructions per request = (first "Collected" - second) / 1200; give valgrind the interpreter
binary itself, not a wrapper script such as a pyenv shim).

It measures this checkout's gateway; ``--gateway-python PYTHON`` measures the one installed for
another interpreter (e.g. the mypyc-compiled build): the script runs again under it, with the
checkout kept off ``sys.path``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_gateway_python_option, rerun_with_installed_gateway
from coap_ingest import HEADER, POST, TOKEN, _options, build_pipeline

from gateway.bridge.null_link import NullLink
from gateway.coap.server import CoapServer
from gateway.config import Settings
from gateway.delivery.bus import MessageBus

PAYLOAD = cbor2.dumps([{-2: "urn:dev:bench:", 0: "temp", 1: "Cel", 2: 21.5}])
DEVICES = 200


class CountingTransport:
    """Counts what the server sends; sends nothing."""

    def __init__(self) -> None:
        self.sent = 0

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.sent += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        return None


def datagrams(n: int) -> list[tuple[bytes, tuple[str, int]]]:
    """`n` CON POSTs from DEVICES source ports, distinct message ids per port."""
    grams = []
    for i in range(n):
        device = i % DEVICES
        head = HEADER.pack(0x44, POST, (i // DEVICES) & 0xFFFF) + TOKEN.pack(i)
        grams.append(
            (head + _options(f"bench-{device}") + b"\xff" + PAYLOAD, ("127.0.0.1", 40000 + device))
        )
    return grams


async def measure(n: int) -> tuple[float, int]:
    settings = Settings()
    bus = MessageBus()
    bus.link = NullLink(settings, bus.on_broker_message)
    pipeline, _ = build_pipeline(bus)
    server = CoapServer(settings.coap, bus, pipeline)
    transport = CountingTransport()
    server.connection_made(transport)  # type: ignore[arg-type]
    grams = datagrams(n)
    started = time.process_time()
    for data, addr in grams:
        server.datagram_received(data, addr)
    elapsed = time.process_time() - started
    return elapsed, transport.sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--requests", type=int, default=60000, help="datagrams to feed")
    add_gateway_python_option(parser)
    args = parser.parse_args(argv)
    if args.gateway_python:
        return rerun_with_installed_gateway(
            args.gateway_python, Path(__file__).resolve(), ["--requests", str(args.requests)]
        )
    elapsed, answered = asyncio.run(measure(args.requests))
    per_request = elapsed / max(1, args.requests) * 1e6
    sys.stdout.write(
        f"{args.requests} requests, {answered} answered, {per_request:.2f} us CPU per request\n"
    )
    return 0 if answered == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
