"""Decisions: sequence numbers, publication on the bus, local delivery with no broker."""

from __future__ import annotations

import json

from gateway.bridge.null_link import NullLink
from gateway.config import Settings
from gateway.delivery.bus import MessageBus
from gateway.pipeline.decide import Decider
from gateway.rules.engine import RuleEngine
from gateway.rules.loader import load_rules
from schemas import ActuatorCommand, Decision, Intent, Reading, TelemetryBatch


def make_bus() -> MessageBus:
    bus = MessageBus()
    bus.link = NullLink(Settings(), bus.on_broker_message)
    return bus


async def test_decision_reaches_a_local_actuator_and_the_decision_topic() -> None:
    """A light-off intent publishes the actuator command and the decision on the bus."""
    bus = make_bus()
    got: list[tuple[str, bytes]] = []
    bus.subscribe("actuators/+/set", lambda t, p, q, r: got.append((t, p)))
    bus.subscribe("decisions/#", lambda t, p, q, r: got.append((t, p)))
    decider = Decider(RuleEngine(load_rules()), bus, "site1-1")
    intent = Intent(name="iot_hue_lightoff", confidence=0.95, slots={"house_place": "kitchen"})
    decision = decider.decide("panel2", intent, "local", "m1", 100.0)
    assert [t for t, _ in got] == ["actuators/light.kitchen/set", "decisions/panel2"]
    command = ActuatorCommand.model_validate_json(got[0][1])
    assert command.command == {"state": "off"} and command.decision_seq == decision.seq
    assert Decision.model_validate_json(got[1][1]) == decision
    assert (decision.recognizer, decision.model_version, decision.gateway_id) == (
        "local", "m1", "site1-1"
    )


async def test_sequence_numbers_increase_and_outlive_a_restart() -> None:
    """Each decision gets the next seq; a new decider (restart) starts above the old ones."""
    bus = make_bus()
    first = Decider(RuleEngine(load_rules()), bus, "g")
    other = Intent(name="other", confidence=0.2)
    a = first.decide("panel1", other, "local", "m", 0).seq
    b = first.decide("panel1", other, "local", "m", 0).seq
    restarted = Decider(RuleEngine(load_rules()), bus, "g")
    c = restarted.decide("panel1", other, "local", "m", 0).seq
    assert a < b < c


async def test_sensor_rule_decision_from_readings() -> None:
    """A smoke reading over the threshold yields a rules decision commanding the siren."""
    bus = make_bus()
    decider = Decider(RuleEngine(load_rules()), bus, "g")
    batch = TelemetryBatch(
        device_id="smoke1",
        readings=[Reading(device_id="smoke1", name="smoke", value=0.9, time=1.0)],
        received_at=1.0, source="coap", content_format=112,
    )
    (decision,) = decider.decide_readings(batch, 1.0)
    assert decision.recognizer == "rules" and decision.intent.name == "smoke_detected"
    assert [a.actuator_id for a in decision.actions] == ["siren.hall"]
    assert json.loads(decision.model_dump_json())["model_version"] == "demo-home-1"
