"""Routes MQTT-SN events between the gateway core, its local subscribers and the broker link.

Local subscribers get every client's message from the core itself, so local routing works with the
broker down; the link subscribes with no-local, so nothing comes back twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import structlog

from gateway.bridge.link import BrokerLink, InboundMessage
from gateway.errors import BrokerUnavailable
from gateway.mqttsn.constants import ReturnCode
from gateway.mqttsn.core import GatewayCore
from gateway.mqttsn.events import (
    ClientConnected,
    ClientDisconnected,
    Event,
    MessagePublished,
    SubscriptionAdded,
    SubscriptionRemoved,
)

log = structlog.get_logger(__name__)


class MqttSnRouter:
    """The one consumer of GatewayCore events; `flush` is the transport's flush after core calls."""

    link: BrokerLink  # set by the app once the link exists: the link calls back into the router

    def __init__(self, core: GatewayCore) -> None:
        self._core = core
        self._loop = asyncio.get_running_loop()
        self.flush: Callable[[], None] = _nothing
        self.counters: Counter[str] = Counter()

    def on_event(self, event: Event) -> None:
        match event:
            case MessagePublished():
                self._on_published(event)
            case SubscriptionAdded():
                self.link.subscribe(event.topic_filter, event.qos)
            case SubscriptionRemoved():
                self.link.unsubscribe(event.topic_filter)
            case ClientConnected():
                log.info("client_connected", client_id=event.client_id,
                         addr=_addr(event.address), clean_session=event.clean_session)
            case ClientDisconnected():
                log.info("client_disconnected", client_id=event.client_id,
                         addr=_addr(event.address), reason=event.reason)

    def on_broker_message(self, message: InboundMessage) -> None:
        """A message from the broker: deliver it to subscribed MQTT-SN clients."""
        self._core.deliver(
            message.topic, message.payload, message.qos, message.retain, self._loop.time(),
            replay=message.retain,
        )
        self.flush()

    def _on_published(self, event: MessagePublished) -> None:
        now = self._loop.time()
        self._core.deliver(event.topic, event.payload, event.qos, event.retain, now)
        if event.will:
            log.info("will_published", client_id=event.client_id, topic=event.topic)
        try:
            done = self.link.publish(event.topic, event.payload, event.qos, event.retain)
        except BrokerUnavailable:
            self.counters["refused_broker_unavailable"] += 1
            if event.needs_ack:
                self._ack(event, ReturnCode.CONGESTION)
            return
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


def _return_code(done: asyncio.Future[None] | None) -> ReturnCode:
    if done is None or (not done.cancelled() and done.exception() is None):
        return ReturnCode.ACCEPTED
    return ReturnCode.CONGESTION


def _addr(address: tuple[object, ...]) -> str:
    return f"{address[0]}:{address[1]}" if len(address) >= 2 else str(address)


def _nothing() -> None:
    pass
