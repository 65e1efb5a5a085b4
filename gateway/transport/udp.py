"""The asyncio DatagramProtocol that drives a GatewayCore: send what it produces, run its timer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import cast

import structlog

from gateway.mqttsn.core import GatewayCore
from gateway.mqttsn.events import Address, Event

log = structlog.get_logger(__name__)

RECEIVE_BUFFER = 8 * 1024 * 1024
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)

EventHandler = Callable[[Event], None]


class MqttSnDatagramProtocol(asyncio.DatagramProtocol):
    """Feeds datagrams and timer expiries into the core; flushes datagrams and events after each."""

    def __init__(self, core: GatewayCore, on_event: EventHandler) -> None:
        self._core = core
        self._on_event = on_event
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flushing = False
        self.send_errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        self.flush()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._core.receive_datagram(data, addr, self._loop.time())
        self.flush()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a vanished client lands here on Linux; it is not fatal.
        self.send_errors += 1
        log.debug("udp_error_received", error=str(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None

    def flush(self) -> None:
        """Send pending datagrams and hand out events until the core has nothing more to say.

        Re-entrant calls (an event handler that calls back into the core) return at once: the
        outer call's loop picks up whatever they produced, in order.
        """
        if self._flushing:
            return
        self._flushing = True
        try:
            core = self._core
            while True:
                datagrams = core.datagrams_to_send()
                transport = self._transport
                if transport is not None:
                    for data, addr in datagrams:
                        transport.sendto(data, addr)
                event = core.next_event()
                if event is None:
                    break
                while event is not None:
                    self._on_event(event)
                    event = core.next_event()
        finally:
            self._flushing = False
        self._rearm()

    def _rearm(self) -> None:
        deadline = self._core.get_timer()
        if deadline == self._timer_at or self._transport is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = None if deadline is None else self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._core.handle_timer(self._loop.time())
        self.flush()


async def open_mqttsn_endpoint(
    core: GatewayCore,
    on_event: EventHandler,
    host: str,
    port: int,
) -> tuple[asyncio.DatagramTransport, MqttSnDatagramProtocol]:
    """Bind the UDP socket (broadcast allowed: SEARCHGW and ADVERTISE) and start the protocol."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        # A deep receive queue absorbs bursts (a connect storm, a GC pause); the kernel caps it
        # at net.core.rmem_max unless the process may force it.
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: MqttSnDatagramProtocol(core, on_event), sock=sock
    )
    return transport, protocol
