"""The link used when no broker is configured: the gateway runs fully local."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import MappingProxyType

from gateway.bridge.link import COUNTER_NAMES, InboundHandler
from gateway.config import Settings
from gateway.topics import add_mountpoint, validate_filter, validate_topic


class NullLink:
    """Never connected. QoS 1/2 publishes resolve at once: there is nothing upstream to reach."""

    def __init__(self, settings: Settings, on_message: InboundHandler) -> None:
        self._mountpoint = settings.mountpoint
        self._on_message = on_message
        self._counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._filters: dict[str, int] = {}

    @property
    def connected(self) -> bool:
        return False

    @property
    def counters(self) -> Mapping[str, int]:
        return MappingProxyType(self._counters)

    async def run(self, ready: asyncio.Event | None = None) -> None:
        if ready is not None:
            ready.set()
        await asyncio.get_running_loop().create_future()  # until cancelled

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        *,
        properties: Mapping[str, str] | None = None,
    ) -> asyncio.Future[None] | None:
        if qos not in (0, 1, 2):
            raise ValueError(f"invalid QoS {qos}")
        validate_topic(add_mountpoint(self._mountpoint, topic))
        self._counters["published"] += 1
        if qos:
            self._counters["acked"] += 1
        return None  # nothing to wait for: without a broker a message is done once local

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        validate_filter(add_mountpoint(self._mountpoint, topic_filter))
        self._filters[topic_filter] = self._filters.get(topic_filter, 0) + 1
        self._counters["subscribes"] += 1

    def unsubscribe(self, topic_filter: str) -> None:
        count = self._filters.pop(topic_filter, 0)
        if count > 1:
            self._filters[topic_filter] = count - 1
        self._counters["unsubscribes"] += 1
