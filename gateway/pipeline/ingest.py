"""The pipeline's single entry point: every front-end hands normalised payloads to `Pipeline`.

normalise (front-ends) -> ingest: republish the normalised item on the bus -> recognise (text
commands, micro-batched off the event loop) -> decide (rules) -> actuator commands on the bus.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from typing import Protocol

import structlog

from gateway.delivery.bus import MessageBus
from gateway.errors import BrokerUnavailable, Overloaded
from gateway.pipeline.decide import Decider, Shedding
from gateway.recognizer.policy import EdgeFirstPolicy, Recognition
from gateway.rules.engine import reading_key
from schemas import CoapSummary, Intent, TelemetryBatch, TextCommand

log = structlog.get_logger(__name__)

Item = TelemetryBatch | TextCommand
Result = CoapSummary | asyncio.Future[CoapSummary]
OVERLOAD_RETRY_AFTER = 5


class Recognizer(Protocol):
    """Text -> intent, asynchronously (the model never runs on the event loop)."""

    name: str
    version: str

    def submit(self, text: str) -> asyncio.Future[Intent]:
        """Raises Overloaded when the recogniser's queue is full."""
        ...


class OccupancyRecognizer(Protocol):
    """Room readings -> (occupied, probability), asynchronously; None if features are missing."""

    version: str
    required: frozenset[str]  # the reading names (`reading_key`) the model needs, all of them

    def submit(self, features: Mapping[str, object]) -> asyncio.Future[tuple[bool, float] | None]:
        """Raises Overloaded when the recogniser's queue is full."""
        ...


class IngestPipeline(Protocol):
    def ingest_tracked(self, item: Item) -> tuple[Result, asyncio.Future[None] | None]: ...


class Pipeline:
    def __init__(
        self,
        bus: MessageBus,
        decider: Decider,
        recognizer: Recognizer | None = None,
        occupancy: OccupancyRecognizer | None = None,
        *,
        policy: EdgeFirstPolicy | None = None,
        shedding: Shedding | None = None,
    ) -> None:
        """Text commands go through ``policy`` (edge-first cloud escalation) when given, else
        through ``recognizer`` alone; ``shedding`` stops non-core work while the cloud failover
        is DEGRADED (EGW_CLOUD__SHED_WHEN_DEGRADED)."""
        self._bus = bus
        self.decider = decider
        self.recognizer = recognizer
        if policy is None and recognizer is not None:
            policy = EdgeFirstPolicy(recognizer)
        self.policy = policy
        self.occupancy = occupancy
        self._occupied: dict[str, bool] = {}
        self._plain_summaries: dict[int, CoapSummary] = {}
        self._shedding = shedding
        self.counters: Counter[str] = Counter()

    def ingest(self, item: Item) -> Result:
        """Accept `item` or raise Overloaded; see `ingest_tracked`."""
        return self.ingest_tracked(item)[0]

    def ingest_tracked(self, item: Item) -> tuple[Result, asyncio.Future[None] | None]:
        """Accept `item`: its summary (a future while a command is being recognised), and a
        future that resolves once the normalised item is safe upstream (None: nothing to wait).

        Raises Overloaded when the uplink's bounded queue or the recogniser is full.
        """
        if isinstance(item, TelemetryBatch):
            done = self._republish(item)
            return self._telemetry(item), done
        # A command goes to the recogniser first: when it is full, nothing has been published
        # yet, so the sender's retry does not republish it. (The other way round, a retry after
        # a full uplink may decide twice; the rules' per-actuator de-duplication absorbs that.)
        summary = self._command(item)
        return summary, self._republish(item)

    def _republish(self, item: Item) -> asyncio.Future[None] | None:
        """The normalised item on its own topic, for the broker and local subscribers."""
        kind = "telemetry" if isinstance(item, TelemetryBatch) else "command"
        topic = f"devices/{item.device_id}/{kind}"
        shedding = self._shedding
        if kind == "telemetry" and shedding is not None and shedding.sheds("telemetry_uplink"):
            self.counters["shed_telemetry_uplink"] += 1
            self._bus.publish_local(topic, item.model_dump_json().encode(), qos=1)
            return None
        try:
            return self._bus.publish(topic, item.model_dump_json().encode(), qos=1)
        except BrokerUnavailable as exc:
            raise Overloaded(str(exc), OVERLOAD_RETRY_AFTER) from exc

    def _telemetry(self, batch: TelemetryBatch) -> CoapSummary:
        if self.occupancy is not None:
            self._submit_occupancy(self.occupancy, batch)
        decisions = self.decider.decide_readings(batch, time.time())
        if not decisions:
            return self._plain_summary(len(batch.readings))
        return CoapSummary(
            accepted=len(batch.readings),
            intent=decisions[0].intent.name,
            actions=[action for decision in decisions for action in decision.actions],
        )

    def _plain_summary(self, accepted: int) -> CoapSummary:
        """The summary of a payload that decided nothing (frozen, so shared per count)."""
        summary = self._plain_summaries.get(accepted)
        if summary is None:
            summary = self._plain_summaries[accepted] = CoapSummary(accepted=accepted)
        return summary

    def _submit_occupancy(self, occupancy: OccupancyRecognizer, batch: TelemetryBatch) -> None:
        """Room state comes back later; a change of state becomes a decision (not the answer)."""
        required = occupancy.required
        if len(batch.readings) < len(required):
            return  # most telemetry: cannot name them all
        features = {
            reading_key(r.name): r.value for r in batch.readings if r.value is not None
        }
        if not required <= features.keys():
            return
        try:
            future = occupancy.submit(features)
        except Overloaded:
            self.counters["occupancy_overloaded"] += 1
            return
        future.add_done_callback(lambda done: self._occupancy_done(batch.device_id, done))

    def _occupancy_done(
        self, device_id: str, done: asyncio.Future[tuple[bool, float] | None]
    ) -> None:
        if done.cancelled() or done.exception() is not None or self.occupancy is None:
            self.counters["occupancy_failed"] += 1
            return
        result = done.result()
        if result is None:
            return
        occupied, probability = result
        if self._occupied.get(device_id) == occupied:
            return
        self._occupied[device_id] = occupied
        intent = Intent(
            name="room_occupied" if occupied else "room_vacant",
            confidence=round(probability if occupied else 1.0 - probability, 4),
        )
        self.decider.decide(
            device_id, intent, "local", self.occupancy.version, time.time(), accepted=0
        )

    def _command(self, command: TextCommand) -> Result:
        policy = self.policy
        if policy is None:
            return CoapSummary(accepted=1)
        recognised = policy.submit(command.text)
        summary: asyncio.Future[CoapSummary] = recognised.get_loop().create_future()
        recognised.add_done_callback(lambda done: self._decide(command, done, summary))
        return summary

    def _decide(
        self,
        command: TextCommand,
        recognised: asyncio.Future[Recognition],
        summary: asyncio.Future[CoapSummary],
    ) -> None:
        if summary.done():
            return
        if recognised.cancelled() or recognised.exception() is not None:
            log.warning("recognition_failed", device_id=command.device_id,
                        error=None if recognised.cancelled() else repr(recognised.exception()))
            summary.set_result(CoapSummary(accepted=1))
            return
        recognition = recognised.result()
        intent = recognition.intent
        decision = self.decider.decide(
            command.device_id, intent, recognition.recognizer, recognition.model_version,
            time.time(),
        )
        summary.set_result(
            CoapSummary(accepted=1, intent=intent.name, actions=list(decision.actions))
        )
