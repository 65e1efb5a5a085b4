"""The local message bus: one place where every message is fanned out locally and sent upstream.

Front-ends publish here; local subscribers (MQTT-SN clients through their core, CoAP observers)
get every matching message whether or not the broker is up; the broker link gets everything
published locally, and what the broker delivers is fanned out locally only.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

import structlog

from gateway.bridge.link import BrokerLink, InboundMessage
from gateway.topics import is_wildcard, topic_matches

log = structlog.get_logger(__name__)

# (topic, payload, qos, retain, from_broker_replay)
LocalSink = Callable[[str, bytes, int, bool, bool], None]
Subscriber = Callable[[str, bytes, int, bool], None]


@dataclass(eq=False, slots=True)
class Subscription:
    """A handle for `MessageBus.unsubscribe`."""

    topic_filter: str
    qos: int
    callback: Subscriber
    key: int = field(default=0)


class MessageBus:
    """Fan-out to local subscribers plus the single uplink to the broker."""

    link: BrokerLink  # set once the link exists: the link calls back into the bus

    def __init__(self) -> None:
        self._sinks: list[LocalSink] = []
        self._exact: dict[str, dict[int, Subscription]] = {}
        self._wildcard: dict[int, Subscription] = {}
        self._keys = count(1)
        self.counters: Counter[str] = Counter()

    def add_sink(self, sink: LocalSink) -> None:
        """A front-end with its own subscription index (the MQTT-SN core) sees every message."""
        self._sinks.append(sink)

    def subscribe(self, topic_filter: str, callback: Subscriber, qos: int = 1) -> Subscription:
        """Subscribe a local callback; the broker subscription is shared and reference counted."""
        self.link.subscribe(topic_filter, qos)
        sub = Subscription(topic_filter, qos, callback, next(self._keys))
        if is_wildcard(topic_filter):
            self._wildcard[sub.key] = sub
        else:
            self._exact.setdefault(topic_filter, {})[sub.key] = sub
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if is_wildcard(sub.topic_filter):
            removed = self._wildcard.pop(sub.key, None)
        else:
            subs = self._exact.get(sub.topic_filter, {})
            removed = subs.pop(sub.key, None)
            if not subs:
                self._exact.pop(sub.topic_filter, None)
        if removed is not None:
            self.link.unsubscribe(sub.topic_filter)

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
    ) -> asyncio.Future[None] | None:
        """Deliver locally, then upstream; the future (QoS 1/2) resolves once the broker has it.

        Raises BrokerUnavailable when the uplink cannot take it (local delivery already happened)
        and ValueError for a topic MQTT cannot carry.
        """
        self._fan_out(topic, payload, qos, retain, replay=False)
        return self.link.publish(topic, payload, qos, retain)

    def publish_local(self, topic: str, payload: bytes, qos: int = 0) -> None:
        """Deliver to local subscribers only (a message meant for the site, not the broker)."""
        self._fan_out(topic, payload, qos, False, replay=False)

    def on_broker_message(self, message: InboundMessage) -> None:
        """What the broker delivered on one of our subscriptions: local fan-out only."""
        self._fan_out(message.topic, message.payload, message.qos, message.retain,
                      replay=message.retain)

    def _fan_out(self, topic: str, payload: bytes, qos: int, retain: bool, *, replay: bool) -> None:
        for sink in self._sinks:
            sink(topic, payload, qos, retain, replay)
        exact = self._exact.get(topic)
        if exact:
            for sub in list(exact.values()):
                self._call(sub, topic, payload, qos, retain)
        for sub in list(self._wildcard.values()):
            if topic_matches(sub.topic_filter, topic):
                self._call(sub, topic, payload, qos, retain)

    def _call(self, sub: Subscription, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        try:
            sub.callback(topic, payload, min(qos, sub.qos), retain)
        except Exception:  # one broken subscriber must not stop delivery to the others
            self.counters["subscriber_errors"] += 1
            log.exception("local_subscriber_failed", topic=topic)
