"""The broker link interface, its factory and implementation-independent helpers."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.config import Settings

COUNTER_NAMES = (
    "published",
    "acked",
    "resent",
    "dropped_disconnected_qos0",
    "dropped_backpressure_qos0",
    "refused_pending_full",
    "refused_by_broker",
    "failed_on_stop",
    "connects",
    "reconnects",
    "connect_failures",
    "protocol_fallbacks",
    "subscribes",
    "unsubscribes",
    "subscribe_acks",
    "subscribe_refused",
    "inbound",
    "inbound_echo_dropped",
    "inbound_outside_mountpoint",
    "handler_errors",
    "requests",
    "requests_unsent",
    "responses",
)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message the broker delivered on one of the link's subscriptions."""

    topic: str  # LOCAL topic: broker topic with the mountpoint stripped
    payload: bytes
    qos: int
    retain: bool


InboundHandler = Callable[[InboundMessage], None]
"""Called on the event loop thread; must not block."""

ResponseHandler = Callable[[bytes, bytes], None]
"""(MQTT v5 correlation data, payload) of a message on a response topic; event loop thread."""


class BrokerLink(Protocol):
    """The gateway's single aggregated connection to an upstream MQTT broker.

    Topics are LOCAL: the link adds the configured mountpoint on the way out and strips it on
    the way in. All methods must be called on the event loop thread.
    """

    @property
    def connected(self) -> bool: ...

    @property
    def counters(self) -> Mapping[str, int]: ...

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Own the connection until cancelled; ``ready`` is set after the first attempt."""
        ...

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        *,
        properties: Mapping[str, str] | None = None,
    ) -> asyncio.Future[None] | None:
        """QoS 0: send or drop, None. QoS 1/2: a future resolved on PUBACK/PUBCOMP.

        ``properties`` become MQTT v5 user properties (not sent on an MQTT 3.1.1 connection).

        Queued QoS 1/2 messages go out in order, at least once; cancelling the future does
        not withdraw the message. Raises ``BrokerUnavailable`` when the pending queue is full
        or the link has stopped, ``ValueError`` for an invalid topic, payload or QoS.
        """
        ...

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Add one reference to ``topic_filter``; the first one subscribes at the broker."""
        ...

    def unsubscribe(self, topic_filter: str) -> None:
        """Drop one reference; the last one unsubscribes at the broker."""
        ...


def create_link(settings: Settings, on_message: InboundHandler) -> BrokerLink:
    """The gmqtt-backed link, or a ``NullLink`` when no broker URL is configured."""
    # Imported here: both modules import this one, and a fully local gateway never loads gmqtt.
    if not settings.broker.url:
        from gateway.bridge.null_link import NullLink  # noqa: PLC0415

        return NullLink(settings, on_message)
    from gateway.bridge.gmqtt_link import GmqttLink  # noqa: PLC0415

    return GmqttLink(settings, on_message)


def backoff_delays(low: float, high: float, rng: random.Random | None = None) -> Iterator[float]:
    """Jittered exponential delays: the n-th is uniform in [c/2, c], c = min(high, low*2**n),
    and never below ``low``."""
    uniform = (rng or random.Random()).uniform
    ceiling = low
    while True:
        yield max(low, min(high, uniform(ceiling / 2, ceiling)))
        ceiling = min(high, ceiling * 2)


class EchoFilter:
    """Recognises the broker echoing the link's own recent publishes.

    Emulates MQTT v5 no-local on MQTT 3.1.1. Keys are hashes of (topic, payload); each
    remembered publish cancels at most one echo; memory is bounded by ``limit`` entries and
    ``window`` seconds.
    """

    def __init__(
        self, window: float = 5.0, limit: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._limit = limit
        self._clock = clock
        self._order: deque[tuple[float, int]] = deque()
        self._counts: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._order)

    def remember(self, topic: str, payload: bytes) -> None:
        key = hash((topic, payload))
        self._order.append((self._clock(), key))
        self._counts[key] = self._counts.get(key, 0) + 1
        self._expire()

    def consume(self, topic: str, payload: bytes) -> bool:
        """True (and forget one occurrence) if this message is an echo of a recent publish."""
        self._expire()
        key = hash((topic, payload))
        count = self._counts.get(key, 0)
        if not count:
            return False
        self._forget(key)
        return True

    def _forget(self, key: int) -> None:
        count = self._counts.get(key, 0)
        if count <= 1:
            self._counts.pop(key, None)
        else:
            self._counts[key] = count - 1

    def _expire(self) -> None:
        horizon = self._clock() - self._window
        order = self._order
        while order and (len(order) > self._limit or order[0][0] < horizon):
            # A consumed key's entry may expire a later duplicate early; harmless.
            self._forget(order.popleft()[1])
