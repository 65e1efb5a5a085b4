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
from schemas import CoapSummary, Intent, TextCommand


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
