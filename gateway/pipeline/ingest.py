"""The pipeline's single entry point: every front-end hands normalised payloads to `Pipeline`.

Today the pipeline republishes what it accepts, normalised as JSON, on the bus (local
subscribers and the broker); recognition and decisions plug in here.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from gateway.delivery.bus import MessageBus
from gateway.errors import BrokerUnavailable, Overloaded
from schemas import CoapSummary, TelemetryBatch, TextCommand

Item = TelemetryBatch | TextCommand
OVERLOAD_RETRY_AFTER = 5


class IngestPipeline(Protocol):
    def ingest(self, item: Item) -> CoapSummary: ...


class Pipeline:
    def __init__(self, bus: MessageBus) -> None:
        self._bus = bus

    def ingest(self, item: Item) -> CoapSummary:
        """Accept `item` or raise Overloaded; see `ingest_tracked`."""
        return self.ingest_tracked(item)[0]

    def ingest_tracked(self, item: Item) -> tuple[CoapSummary, asyncio.Future[None] | None]:
        """Accept `item`; the future resolves once it is safe upstream (None: nothing to wait for).

        Raises Overloaded when the uplink's bounded queue is full.
        """
        if isinstance(item, TelemetryBatch):
            topic, accepted = f"devices/{item.device_id}/telemetry", len(item.readings)
        else:
            topic, accepted = f"devices/{item.device_id}/command", 1
        try:
            done = self._bus.publish(topic, item.model_dump_json().encode(), qos=1)
        except BrokerUnavailable as exc:
            raise Overloaded(str(exc), OVERLOAD_RETRY_AFTER) from exc
        return CoapSummary(accepted=accepted), done
