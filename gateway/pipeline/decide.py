"""Decisions: what the rules make of an intent, published for the back office and the actuators.

Every decision goes to `decisions/{device_id}`, each of its commands to `actuators/{id}/set`, both
on the bus: local actuators get them at once, broker or not. The device the decision is about also
gets a short summary on `devices/{device_id}/decision` (local subscribers only): the same CBOR body
a CoAP request gets in its response, for devices whose decision comes after their request was
answered (MQTT-SN publishes, occupancy changes) - MQTT-SN devices subscribe to it, CoAP devices
observe `/ps/devices/{device_id}/decision`.
"""

from __future__ import annotations

from collections import Counter
from itertools import count
from typing import Protocol

import cbor2
import structlog

from gateway.delivery.bus import MessageBus
from gateway.errors import BrokerUnavailable
from gateway.pipeline.namespace import actuator_topic
from gateway.rules.engine import PlannedCommand, RuleEngine
from gateway.sequence import first_seq
from schemas import ActuatorCommand, CoapSummary, Decision, Intent, TelemetryBatch

log = structlog.get_logger(__name__)


class Shedding(Protocol):
    """Says whether a piece of non-core work is stopped right now (the cloud failover)."""

    def sheds(self, work: str) -> bool: ...


class Decider:
    def __init__(
        self, engine: RuleEngine, bus: MessageBus, gateway_id: str,
        shedding: Shedding | None = None,
    ) -> None:
        self.engine = engine
        self._shedding = shedding
        self._bus = bus
        self._gateway_id = gateway_id
        self._seq = count(first_seq())
        self.counters: Counter[str] = Counter()
        self.decisions: Counter[tuple[str, str]] = Counter()  # (intent, recognizer) -> count

    def decide(
        self, device_id: str, intent: Intent, recognizer: str, model_version: str, now: float,
        *, accepted: int = 1,
    ) -> Decision:
        """The decision about a recognised command (with no actions for `other`); `accepted` is
        what the device's summary reports as accepted (0 for a decision made later, on state)."""
        planned = self.engine.commands_for_intent(device_id, intent, now)
        return self._issue(
            device_id, intent, planned, recognizer=recognizer, model_version=model_version,
            now=now, accepted=accepted,
        )

    def decide_readings(self, batch: TelemetryBatch, now: float) -> list[Decision]:
        """Decisions for the sensor rules this batch fired (usually none)."""
        return [
            self._issue(batch.device_id, event.intent, event.commands, recognizer="rules",
                        model_version=self.engine.version, now=now,
                        accepted=len(batch.readings))
            for event in self.engine.events_for_readings(batch.device_id, batch.readings, now)
        ]

    def _issue(
        self,
        device_id: str,
        intent: Intent,
        planned: list[PlannedCommand],
        *,
        recognizer: str,
        model_version: str,
        now: float,
        accepted: int,
    ) -> Decision:
        seq = next(self._seq)
        actions = [
            ActuatorCommand(actuator_id=p.actuator_id, command=p.command, issued_at=now,
                            decision_seq=seq)
            for p in planned
        ]
        decision = Decision(
            device_id=device_id, intent=intent, actions=actions, recognizer=recognizer,
            model_version=model_version, gateway_id=self._gateway_id, seq=seq, gateway_time=now,
        )
        self.decisions[intent.name, recognizer] += 1
        log.info("decision", device_id=device_id, intent=intent.name, seq=seq,
                 actuators=[a.actuator_id for a in actions], recognizer=recognizer)
        for action in actions:
            self._publish(actuator_topic(action.actuator_id), action.model_dump_json().encode())
        self._publish(f"decisions/{device_id}", decision.model_dump_json().encode())
        if self._shedding is not None and self._shedding.sheds("decision_summaries"):
            self.counters["shed_decision_summaries"] += 1
            return decision
        summary = CoapSummary(accepted=accepted, intent=intent.name, actions=actions)
        self._bus.publish_local(
            f"devices/{device_id}/decision",
            cbor2.dumps(summary.model_dump(mode="json", exclude_none=True)),
            qos=1,
        )
        return decision

    def _publish(self, topic: str, payload: bytes) -> None:
        try:
            self._bus.publish(topic, payload, qos=1)
        except BrokerUnavailable:
            # Local subscribers already have it; only the uplink copy is refused.
            self.counters["uplink_refused"] += 1
