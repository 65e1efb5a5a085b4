"""The CoAP server: one UDP socket, our own fast path, aiocoap for everything else.

`CoapServer` owns the lifecycle: it binds the socket, gives it to `CoapDatagrams`
(`gateway.coap.datagrams`: parsing, the fast path for plain ingest POSTs, de-duplication, every
answer and drop), starts an aiocoap server Context on the same socket for everything else
(`gateway.coap.general`, `gateway.coap.resources`: Observe, block-wise transfers, link-format
and the other resources), and takes both down again.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast

import structlog

from gateway.coap.datagrams import CoapDatagrams, addr_text
from gateway.coap.general import GeneralPath
from gateway.coap.handler import DeviceIngest
from gateway.coap.resources import CoapSite, SiteState
from gateway.config import Settings
from gateway.delivery.bus import MessageBus
from gateway.errors import GatewayError
from gateway.mqttsn.events import Address
from schemas.config import CoapConfig

if TYPE_CHECKING:
    from gateway.pipeline.ingest import IngestPipeline

__all__ = ["CoapPortInUse", "CoapServer", "run_coap_server"]

log = structlog.get_logger(__name__)

RECEIVE_BUFFER: Final = 8 * 1024 * 1024
SO_RCVBUFFORCE: Final = getattr(socket, "SO_RCVBUFFORCE", 33)
CLOSE_GRACE: Final = 2.0


class CoapPortInUse(GatewayError):
    """The CoAP port is already bound by another socket (possibly another process)."""


class CoapServer:
    """The CoAP socket, its datagram protocol and the general path behind it."""

    def __init__(
        self,
        config: CoapConfig,
        bus: MessageBus,
        pipeline: IngestPipeline,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.counters: Counter[str] = Counter()
        self.address: Address | None = None
        self._bus = bus
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self.ingest = DeviceIngest(pipeline, config.max_payload, self.counters, clock)
        self.datagrams = CoapDatagrams(config, self.ingest, self.counters, self._loop)
        self._state: SiteState | None = None

    # ------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Bind the socket (no SO_REUSEPORT: a port already served fails loudly) and start
        aiocoap on it. Raises CoapPortInUse when the port is taken."""
        sock = _bind(self.config.host, self.config.port)
        datagrams = self.datagrams
        try:
            # Not a DatagramProtocol subclass (it stays a native class when compiled); asyncio
            # only calls the four protocol methods it has.
            protocol = cast(asyncio.DatagramProtocol, datagrams)
            transport, _ = await self._loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        except BaseException:
            sock.close()
            raise
        try:
            self.address = transport.get_extra_info("sockname")
            host, port = self.config.host, self.address[1] if self.address else 0
            general = GeneralPath(
                datagrams.send, _hostinfo(host, port), self.counters,
                exchange_lifetime=self.config.exchange_lifetime,
                empty_ack_delay=self.config.empty_ack_delay,
            )
            state = SiteState(self.config, self._bus, self.ingest, general, self.counters)
            await general.start(CoapSite(state, self._clock))
        except BaseException:
            transport.close()
            raise
        datagrams.general = general
        self._state = state
        log.info("coap_listening", addr=addr_text(self.address or (host, port)))

    async def close(self) -> None:
        """Stop aiocoap (ends every observation and its bus subscription), then the socket."""
        datagrams = self.datagrams
        datagrams.forget_pending()
        try:
            general, datagrams.general = datagrams.general, None
            if general is not None:
                await general.close()
            state = self._state
            if state is not None and state.tasks:
                await asyncio.wait(set(state.tasks), timeout=CLOSE_GRACE)
        finally:
            transport = datagrams.transport
            if transport is not None:
                transport.close()
                await asyncio.sleep(0)  # let the transport's connection_lost run
            datagrams.connection_lost(None)  # also when it never had a socket

    # ------------------------------------------------- the protocol (see CoapDatagrams)
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.datagrams.connection_made(transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.datagrams.datagram_received(data, addr)

    # ----------------------------------------------------------------------- helpers
    @property
    def observers(self) -> int:
        return 0 if self._state is None else self._state.observers

    @property
    def dedup_entries(self) -> int:
        return self.datagrams.dedup_entries


def _hostinfo(host: str, port: int) -> str:
    host_part = f"[{host}]" if ":" in host else host
    return host_part if port == 5683 else f"{host_part}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound WITHOUT SO_REUSEADDR/SO_REUSEPORT.

    aiocoap binds its sockets with SO_REUSEPORT; on Linux two sockets can only share a port when
    both set it, so leaving it off makes a second server on the same port fail here instead of
    silently receiving half of the traffic.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CoapPortInUse(
                    f"CoAP port {port} on {host} is already in use by another socket "
                    f"(another gateway or CoAP server?); set EGW_COAP__PORT to a free port"
                ) from exc
            raise
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def run_coap_server(
    settings: Settings,
    bus: MessageBus,
    pipeline: IngestPipeline,
    ready: asyncio.Event | None = None,
    *,
    on_started: Callable[[CoapServer], None] | None = None,
) -> None:
    """Serve CoAP on ``settings.coap`` until cancelled; sockets and tasks are gone on return.

    Raises CoapPortInUse (before ``ready`` is set) when the port is already served.
    ``on_started`` gets the running server before ``ready`` is set (its bound ``address``,
    its ``counters``).
    """
    server = CoapServer(settings.coap, bus, pipeline)
    await server.start()
    try:
        if on_started is not None:
            on_started(server)
        if ready is not None:
            ready.set()
        await asyncio.get_running_loop().create_future()  # until cancelled
    finally:
        await server.close()
        log.info("coap_stopped", **{key: value for key, value in _summary(server).items()})


def _summary(server: CoapServer) -> dict[str, Any]:
    counters = server.counters
    return {
        "fast_path": counters["fast_path"],
        "general": counters["general_datagrams"],
        "dropped": sum(v for k, v in counters.items() if k.startswith("drop_")),
    }
