"""Helpers of the CoAP integration tests (this module has no tests of its own).

A CoAP server on an ephemeral 127.0.0.1 port with a real MessageBus + NullLink and the real
ingest pipeline (or a given one), an aiocoap client context, and a raw UDP client for what a
library client will not send (malformed messages, duplicates, RSTs).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiocoap

from gateway.bridge.null_link import NullLink
from gateway.coap.server import CoapServer
from gateway.config import Settings
from gateway.delivery.bus import MessageBus
from gateway.pipeline.ingest import IngestPipeline
from schemas import CoapSummary, TelemetryBatch, TextCommand

LOCALHOST = "127.0.0.1"


class BusPipeline:
    """A stand-in for the ingest pipeline with its minimal observable behaviour: each accepted
    item is republished, as JSON, on ``devices/{id}/telemetry|command``, and the summary counts
    it. (The real Pipeline's constructor is still changing; these tests are about CoAP.)"""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self.items: list[TelemetryBatch | TextCommand] = []

    def ingest_tracked(
        self, item: TelemetryBatch | TextCommand
    ) -> tuple[Any, asyncio.Future[None] | None]:
        if isinstance(item, TelemetryBatch):
            topic, accepted = f"devices/{item.device_id}/telemetry", len(item.readings)
        else:
            topic, accepted = f"devices/{item.device_id}/command", 1
        done = self.bus.publish(topic, item.model_dump_json().encode(), qos=1)
        self.items.append(item)
        return CoapSummary(accepted=accepted), done


class SlowCommandPipeline(BusPipeline):
    """Answers text commands `delay` seconds later through a future, like the real pipeline
    while its recogniser works off the event loop; telemetry at once."""

    delay = 0.3

    def ingest_tracked(
        self, item: TelemetryBatch | TextCommand
    ) -> tuple[Any, asyncio.Future[None] | None]:
        summary, done = super().ingest_tracked(item)
        if isinstance(item, TelemetryBatch):
            return summary, done
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CoapSummary] = loop.create_future()
        late = CoapSummary(accepted=1, intent="lights_off")

        def answer() -> None:
            if not future.done():
                future.set_result(late)

        loop.call_later(self.delay, answer)
        return future, done


@dataclass
class Running:
    server: CoapServer
    bus: MessageBus
    settings: Settings

    @property
    def port(self) -> int:
        assert self.server.address is not None
        port: int = self.server.address[1]
        return port

    @property
    def base(self) -> str:
        return f"coap://{LOCALHOST}:{self.port}"


def coap_settings(**coap: Any) -> Settings:
    """Loopback and an ephemeral port unless given."""
    coap.setdefault("host", LOCALHOST)
    coap.setdefault("port", 0)
    return Settings(coap=coap)


@contextlib.asynccontextmanager
async def coap_server(
    pipeline: Callable[[MessageBus], IngestPipeline] = BusPipeline, **coap: Any
) -> AsyncIterator[Running]:
    """A started CoapServer; closed (bounded) when the block ends."""
    settings = coap_settings(**coap)
    bus = MessageBus()
    bus.link = NullLink(settings, bus.on_broker_message)
    server = CoapServer(settings.coap, bus, pipeline(bus))
    await server.start()
    try:
        yield Running(server, bus, settings)
    finally:
        await asyncio.wait_for(server.close(), timeout=5)


@contextlib.asynccontextmanager
async def aiocoap_client() -> AsyncIterator[Any]:
    """An aiocoap client context on UDP only; shut down when the block ends."""
    context = await aiocoap.Context.create_client_context(transports=["udp6"])
    try:
        yield context
    finally:
        await asyncio.wait_for(context.shutdown(), timeout=5)


async def request(context: Any, timeout: float = 5.0, **message: Any) -> Any:
    """One request through aiocoap, its response within `timeout` seconds."""
    return await asyncio.wait_for(context.request(aiocoap.Message(**message)).response, timeout)


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        pass


class RawClient:
    """A bare UDP socket connected to the server: send bytes, receive bytes."""

    def __init__(self, transport: asyncio.DatagramTransport, inbox: _Inbox) -> None:
        self._transport = transport
        self._inbox = inbox

    def send(self, data: bytes) -> None:
        self._transport.sendto(data)

    async def recv(self, timeout: float = 3.0) -> bytes:
        return await asyncio.wait_for(self._inbox.queue.get(), timeout)

    async def nothing_within(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._inbox.queue.get(), timeout)
        except TimeoutError:
            return True
        return False


@contextlib.asynccontextmanager
async def raw_client(port: int) -> AsyncIterator[RawClient]:
    loop = asyncio.get_running_loop()
    transport, inbox = await loop.create_datagram_endpoint(
        _Inbox, remote_addr=(LOCALHOST, port)
    )
    try:
        yield RawClient(transport, inbox)
    finally:
        transport.close()


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait (polling) until `condition()` holds; AssertionError after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
