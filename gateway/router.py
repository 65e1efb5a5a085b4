"""Connects the MQTT-SN core to the message bus: client publishes go onto the bus, bus messages
go to subscribed clients, and QoS 1/2 are acknowledged once the bus says they are safe.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import structlog

from gateway.delivery.bus import MessageBus
from gateway.errors import BrokerUnavailable, Overloaded
from gateway.mqttsn.constants import ReturnCode
from gateway.mqttsn.core import GatewayCore
from gateway.mqttsn.events import (
    Address,
    ClientConnected,
    ClientDisconnected,
    Event,
    MessagePublished,
    SubscriptionAdded,
    SubscriptionRemoved,
)
from gateway.pipeline.ingest import Pipeline
from gateway.pipeline.namespace import Kind, classify
from gateway.pipeline.normalise import PayloadError, normalise_command, normalise_telemetry

log = structlog.get_logger(__name__)


class MqttSnRouter:
    """The one consumer of GatewayCore events; `flush` is the transport's flush after core calls."""

    def __init__(self, core: GatewayCore, bus: MessageBus, pipeline: Pipeline) -> None:
        self._core = core
        self._bus = bus
        self._pipeline = pipeline
        self._loop = asyncio.get_running_loop()
        self.flush: Callable[[], None] = _nothing
        # Called when the core holds a PUBREC until its sessions are stored (the app's flusher).
        self.request_store: Callable[[], None] = _nothing
        self.counters: Counter[str] = Counter()
        bus.add_sink(self.deliver)

    def on_event(self, event: Event) -> None:
        match event:
            case MessagePublished():
                self._on_published(event)
            case SubscriptionAdded():
                self._bus.link.subscribe(event.topic_filter, event.qos)
            case SubscriptionRemoved():
                self._bus.link.unsubscribe(event.topic_filter)
            case ClientConnected():
                log.info("client_connected", client_id=event.client_id,
                         addr=_addr(event.address), clean_session=event.clean_session)
            case ClientDisconnected():
                log.info("client_disconnected", client_id=event.client_id,
                         addr=_addr(event.address), reason=event.reason)

    def deliver(self, topic: str, payload: bytes, qos: int, retain: bool, replay: bool) -> None:
        """A bus message: to every subscribed MQTT-SN client."""
        if self._core.deliver(topic, payload, qos, retain, self._loop.time(), replay=replay):
            self.flush()  # only when a client got it: most bus messages have no MQTT-SN reader

    def _on_published(self, event: MessagePublished) -> None:
        if event.will:
            log.info("will_published", client_id=event.client_id, addr=self._addr_of(event),
                     topic=event.topic)
        kind = classify(event.topic)
        if kind is not None:
            self._ingest(event, *kind)
            return
        try:
            done = self._bus.publish(event.topic, event.payload, event.qos, event.retain)
        except BrokerUnavailable:
            self.counters["refused_broker_unavailable"] += 1
            if event.needs_ack:
                self._ack(event, ReturnCode.CONGESTION)
            return
        except ValueError as exc:  # a topic or payload MQTT cannot carry
            self.counters["refused_invalid_for_broker"] += 1
            log.warning("publish_not_bridged", client_id=event.client_id,
                        addr=self._addr_of(event), topic=event.topic,
                        reason=str(exc))
            if event.needs_ack:
                self._ack(event, ReturnCode.NOT_SUPPORTED)
            return
        self._ack_when_done(event, done)

    def _ingest(self, event: MessagePublished, kind: Kind, device_id: str) -> None:
        """Telemetry and commands go through the pipeline, never onto the bus as raw bytes."""
        normalise = normalise_telemetry if kind == "telemetry" else normalise_command
        try:
            item = normalise(device_id, event.payload, None, source="mqttsn", now=time.time())
            _, done = self._pipeline.ingest_tracked(item)
        except PayloadError as exc:
            self.counters[f"payload_rejected_{exc.kind}"] += 1
            log.warning("payload_rejected", client_id=event.client_id,
                        addr=self._addr_of(event), topic=event.topic,
                        reason=exc.kind, diagnostic=exc.diagnostic)
            if event.needs_ack:
                self._ack(event, ReturnCode.NOT_SUPPORTED)
            return
        except Overloaded:
            self.counters["refused_overloaded"] += 1
            if event.needs_ack:
                self._ack(event, ReturnCode.CONGESTION)
            return
        self._ack_when_done(event, done)

    def _addr_of(self, event: MessagePublished) -> str | None:
        session = None if event.client_id is None else self._core.session(event.client_id)
        return None if session is None else _addr(session.address)

    def _ack_when_done(self, event: MessagePublished, done: asyncio.Future[None] | None) -> None:
        if not event.needs_ack:
            return
        if done is None or done.done():
            self._ack(event, _return_code(done))
        else:
            done.add_done_callback(lambda fut: self._acked_later(event, fut))

    def _acked_later(self, event: MessagePublished, done: asyncio.Future[None]) -> None:
        self._ack(event, _return_code(done))
        self.flush()

    def _ack(self, event: MessagePublished, code: ReturnCode) -> None:
        assert event.client_id is not None
        self._core.ack_publish(event.client_id, event.msg_id, code, self._loop.time())
        if self._core.store_wanted:
            self.request_store()


def _return_code(done: asyncio.Future[None] | None) -> ReturnCode:
    if done is None or (not done.cancelled() and done.exception() is None):
        return ReturnCode.ACCEPTED
    return ReturnCode.CONGESTION


def _addr(address: Address) -> str:
    return f"{address[0]}:{address[1]}" if len(address) >= 2 else str(address)


def _nothing() -> None:
    pass
