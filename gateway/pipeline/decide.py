"""Decisions: what the rules make of an intent, published for the back office and the actuators.

Every decision goes to `decisions/{device_id}`, each of its commands to `actuators/{id}/set`, both
on the bus: local actuators get them at once, broker or not.
"""

from __future__ import annotations

from collections import Counter
from itertools import count

import structlog

from gateway.delivery.bus import MessageBus
from gateway.errors import BrokerUnavailable
from gateway.pipeline.namespace import actuator_topic
from gateway.rules.engine import PlannedCommand, RuleEngine
from gateway.sequence import first_seq
from schemas import ActuatorCommand, Decision, Intent, TelemetryBatch

log = structlog.get_logger(__name__)


class Decider:
    def __init__(self, engine: RuleEngine, bus: MessageBus, gateway_id: str) -> None:
        self.engine = engine
        self._bus = bus
        self._gateway_id = gateway_id
        self._seq = count(first_seq())
        self.counters: Counter[str] = Counter()

    def decide(
        self, device_id: str, intent: Intent, recognizer: str, model_version: str, now: float
    ) -> Decision:
        """The decision about a recognised command (with no actions for `other`)."""
        planned = self.engine.commands_for_intent(device_id, intent, now)
        return self._issue(
            device_id, intent, planned, recognizer=recognizer, model_version=model_version, now=now
        )

    def decide_readings(self, batch: TelemetryBatch, now: float) -> list[Decision]:
        """Decisions for the sensor rules this batch fired (usually none)."""
        return [
            self._issue(batch.device_id, event.intent, event.commands, recognizer="rules",
                        model_version=self.engine.version, now=now)
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
        self.counters[f"decisions_{intent.name}"] += 1
        log.info("decision", device_id=device_id, intent=intent.name, seq=seq,
                 actuators=[a.actuator_id for a in actions], recognizer=recognizer)
        for action in actions:
            self._publish(actuator_topic(action.actuator_id), action.model_dump_json().encode())
        self._publish(f"decisions/{device_id}", decision.model_dump_json().encode())
        return decision

    def _publish(self, topic: str, payload: bytes) -> None:
        try:
            self._bus.publish(topic, payload, qos=1)
        except BrokerUnavailable:
            # Local subscribers already have it; only the uplink copy is refused.
            self.counters["uplink_refused"] += 1
