"""The pipeline entry point: what is republished, and when a sender is told to retry."""

from __future__ import annotations

import asyncio

import pytest

from gateway.bridge.null_link import NullLink
from gateway.config import Settings
from gateway.delivery.bus import MessageBus
from gateway.errors import Overloaded
from gateway.pipeline.decide import Decider
from gateway.pipeline.ingest import Pipeline
from gateway.rules.engine import RuleEngine
from gateway.rules.loader import load_rules
from schemas import CoapSummary, Intent, Reading, TelemetryBatch, TextCommand


class FullRecognizer:
    """A recogniser whose queue is full."""

    name = "local"
    version = "test"

    def submit(self, text: str) -> asyncio.Future[Intent]:
        raise Overloaded("recognizer queue full", 1)


class AnsweringRecognizer:
    name = "local"
    version = "test"

    def submit(self, text: str) -> asyncio.Future[Intent]:
        future: asyncio.Future[Intent] = asyncio.get_running_loop().create_future()
        future.set_result(Intent(name="other", confidence=0.9))
        return future


def pipeline_with(recognizer: FullRecognizer | AnsweringRecognizer) -> tuple[Pipeline, list[str]]:
    bus = MessageBus()
    bus.link = NullLink(Settings(), bus.on_broker_message)
    published: list[str] = []
    bus.subscribe("devices/#", lambda topic, payload, qos, retain: published.append(topic))
    decider = Decider(RuleEngine(load_rules()), bus, "site1-1")
    return Pipeline(bus, decider, recognizer), published


def command() -> TextCommand:
    return TextCommand(device_id="panel1", text="lights off", received_at=1.0, source="mqttsn")


async def test_command_refused_by_a_full_recogniser_is_not_republished() -> None:
    """When the recogniser is full the sender is told to retry, and nothing was published, so
    the retry does not put the command on devices/{id}/command twice."""
    pipeline, published = pipeline_with(FullRecognizer())
    with pytest.raises(Overloaded):
        pipeline.ingest_tracked(command())
    assert published == []


async def test_accepted_command_is_republished_once_and_decided() -> None:
    """An accepted command is republished normalised and its summary carries the intent."""
    pipeline, published = pipeline_with(AnsweringRecognizer())
    summary, done = pipeline.ingest_tracked(command())
    assert done is None  # no broker: nothing to wait for
    assert isinstance(summary, asyncio.Future)
    result = await asyncio.wait_for(summary, 1)
    assert isinstance(result, CoapSummary) and result.intent == "other"
    assert published.count("devices/panel1/command") == 1


class Switch:
    """Sheds the named work while `on`."""

    def __init__(self, *work: str) -> None:
        self.work = set(work)
        self.on = False

    def sheds(self, work: str) -> bool:
        return self.on and work in self.work


def telemetry() -> TelemetryBatch:
    reading = Reading(device_id="s1", name="temp", value=21.0, time=1.0)
    return TelemetryBatch(device_id="s1", readings=[reading], received_at=1.0, source="coap")


async def test_shed_telemetry_uplink_stays_local_and_is_counted() -> None:
    """While telemetry uplink is shed, normalised telemetry reaches local subscribers only
    (nothing for the broker or the spool) and each one is counted; afterwards it flows again."""
    bus = MessageBus()
    link = NullLink(Settings(), bus.on_broker_message)
    bus.link = link
    local: list[str] = []
    bus.subscribe("devices/#", lambda topic, payload, qos, retain: local.append(topic))
    switch = Switch("telemetry_uplink")
    pipeline = Pipeline(bus, Decider(RuleEngine(load_rules()), bus, "g"), shedding=switch)
    switch.on = True
    pipeline.ingest_tracked(telemetry())
    assert (local, link.counters["published"]) == (["devices/s1/telemetry"], 0)
    assert pipeline.counters["shed_telemetry_uplink"] == 1
    switch.on = False
    pipeline.ingest_tracked(telemetry())
    assert link.counters["published"] == 1


async def test_shed_decision_summaries_keeps_the_decision() -> None:
    """Shedding decision summaries drops only the devices/{id}/decision push: the decision and
    the actuator command are still published."""
    bus = MessageBus()
    bus.link = NullLink(Settings(), bus.on_broker_message)
    topics: list[str] = []
    bus.subscribe("#", lambda topic, payload, qos, retain: topics.append(topic))
    switch = Switch("decision_summaries")
    decider = Decider(RuleEngine(load_rules()), bus, "g", shedding=switch)
    intent = Intent(name="iot_hue_lightoff", confidence=0.9, slots={"house_place": "kitchen"})
    decider.decide("panel1", intent, "local", "m", 1.0)
    assert "devices/panel1/decision" in topics
    switch.on = True
    topics.clear()
    decider.decide("panel1", intent, "local", "m", 100.0)
    assert topics == ["actuators/light.kitchen/set", "decisions/panel1"]
    assert decider.counters["shed_decision_summaries"] == 1
