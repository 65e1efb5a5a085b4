"""Room value generators: deterministic, plausible ranges, daily and occupancy shapes."""

from __future__ import annotations

import json

import cbor2

from sensor_sim.generators import RoomModel
from sensor_sim.payloads import encode_telemetry


def day(model: RoomModel, step: float = 600.0) -> list[dict[str, float]]:
    return [model.sample(i * step) for i in range(int(86_400 / step))]


def test_deterministic_for_a_seed() -> None:
    assert day(RoomModel(5, "kitchen")) == day(RoomModel(5, "kitchen"))
    assert day(RoomModel(5, "kitchen")) != day(RoomModel(6, "kitchen"))


def test_ranges() -> None:
    for seed in range(5):
        for s in day(RoomModel(seed, "office")):
            assert 16 <= s["temp"] <= 27
            assert 30 <= s["humidity"] <= 65
            assert 350 <= s["co2"] <= 2000
            assert s["light"] >= 0
            assert 0 <= s["battery"] <= 100
            assert s["smoke"] == 0.0


def test_daily_curve_and_occupancy() -> None:
    samples = day(RoomModel(1, "office"), 3600.0)  # hourly
    assert samples[15]["temp"] > samples[4]["temp"] + 2  # afternoon warmer than night
    assert samples[3]["light"] < 20 < 200 < samples[12]["light"]  # dark night, bright noon
    assert samples[11]["co2"] > samples[3]["co2"] + 300  # office full at 11:00, empty at night


def test_battery_drains() -> None:
    model = RoomModel(0, "hall", battery_days=10)
    first, later = model.sample(0.0), model.sample(5 * 86_400.0)
    assert later["battery"] < first["battery"] - 40


def test_payload_formats() -> None:
    values = {"temp": 21.5, "humidity": 40.0}
    senml = json.loads(encode_telemetry("senml-json", "d1", values, 1.0e9))
    assert senml[0]["bn"] == "d1:" and senml[1] == {"n": "humidity", "u": "%RH", "v": 40.0}
    assert cbor2.loads(encode_telemetry("senml-cbor", "d1", values, 1.0e9))[0][-2] == "d1:"
    assert cbor2.loads(encode_telemetry("cbor", "d1", values, 0)) == values
    assert json.loads(encode_telemetry("json", "d1", values, 0)) == values


def test_only_the_asked_quantities() -> None:
    """A sensor measuring a few quantities gets just those, still within their ranges."""
    values = RoomModel(3, "meeting").sample(10 * 3600.0, ["co2", "temp"])
    assert list(values) == ["co2", "temp"]
    assert 350 <= values["co2"] <= 2000 and 16 <= values["temp"] <= 27
