"""Shared fixtures: a private mosquitto per test and independent paho recorders."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.helpers import MosquittoProcess, MqttRecorder


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A started mosquitto on a free 127.0.0.1 port, stopped at teardown no matter what."""
    broker = MosquittoProcess(tmp_path / "mosquitto")
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mqtt_recorder(
    mosquitto: MosquittoProcess,
) -> Iterator[Callable[..., MqttRecorder]]:
    """Factory: ``mqtt_recorder("edge/#", qos=1)`` -> a subscribed recorder on ``mosquitto``."""
    recorders: list[MqttRecorder] = []

    def make(topic_filter: str, qos: int = 1, *, mqtt5: bool = False) -> MqttRecorder:
        recorder = MqttRecorder(mosquitto.host, mosquitto.port, topic_filter, qos, mqtt5=mqtt5)
        recorders.append(recorder)
        return recorder.start()

    try:
        yield make
    finally:
        for recorder in recorders:
            recorder.stop()


# CI runs a fixed, reproducible set of examples (a failure there can be replayed exactly);
# developers' runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
