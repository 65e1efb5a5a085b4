"""One simulated device's UDP socket, with the device's faults on its send path.

A reboot is `reopen()`: the old socket is closed and a new one (a new source port, as after a
real reboot) is opened; a datagram held back for reordering dies with the old socket.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from sensor_sim.faults import FaultInjector

Address = tuple[str, int]
OnDatagram = Callable[[bytes], None]


def expire(future: asyncio.Future[Any]) -> None:
    """A request's timer: settle its attempt with None (no answer in time)."""
    if not future.done():
        future.set_result(None)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: OnDatagram, errors: Counter[str]) -> None:
        self.on_datagram = on_datagram
        self.errors = errors

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        self.errors[f"socket_{type(exc).__name__}"] += 1


class Endpoint:
    """A connected UDP socket towards the gateway; `send` goes through the fault injector."""

    def __init__(self, remote: Address, on_datagram: OnDatagram, errors: Counter[str],
                 injector: FaultInjector | None = None) -> None:
        self.remote = remote
        self.on_datagram = on_datagram
        self.errors = errors
        self.injector = injector
        self.transport: asyncio.DatagramTransport | None = None
        self.send: Callable[[bytes], None] = self._closed_send
        if injector is not None:
            injector.bind(self.send_raw)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self.on_datagram, self.errors), remote_addr=self.remote
        )
        self.send = self.injector.sendto if self.injector is not None else self.transport.sendto

    async def reopen(self) -> None:
        """Close the socket and open a new one (a rebooted device has a new source port)."""
        self.close()
        await self.open()

    def close(self) -> None:
        if self.injector is not None:
            self.injector.close()
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        self.send = self._closed_send

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send_raw(self, data: bytes) -> None:
        """Send without the fault injector (garbage datagrams, held datagrams going out)."""
        if self.transport is not None:
            self.transport.sendto(data)

    def _closed_send(self, data: bytes) -> None:
        self.errors["send_on_closed_socket"] += 1
