"""Scenario models and loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor_sim.fleet import plan, scale_counts
from sensor_sim.scenario import ScenarioError, load_scenario, parse_scenario, shipped_scenarios


def test_shipped_smart_home_loads_by_name() -> None:
    scenario = load_scenario("smart-home")
    assert "smart-home" in shipped_scenarios()
    assert scenario.sensors[0].device_ids()[0] == "thermo1"
    assert [d.device_id for d in plan(scenario, None, None) if d.device_id.startswith("panel")] \
        == ["panel1", "panel2", "panel3"]


def test_load_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\n[[sensors]]\nname = "t"\nid_prefix = "t"\ncount = 2\n')
    assert load_scenario(str(path)).sensors[0].device_ids() == ["t1", "t2"]


def test_unknown_name_lists_shipped() -> None:
    with pytest.raises(ScenarioError, match="smart-home"):
        load_scenario("no-such-scenario")


def test_validation_errors_are_readable() -> None:
    text = ('name = "x"\n[[sensors]]\nname = "t"\ncount = 2\nprotocol = "carrier-pigeon"\n'
            '[[sensors]]\nname = "q"\nid_prefix = "q"\nprotocol = "mqttsn-qos-1"\n')
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, origin="x.toml")
    message = str(info.value)
    assert message.startswith("x.toml: ")
    assert "sensors.0.protocol" in message
    assert "predefined_topic_id" in message


def test_bad_toml() -> None:
    with pytest.raises(ScenarioError, match="not valid TOML"):
        parse_scenario("name = ", origin="y")


def test_duplicate_ids_rejected() -> None:
    text = ('name = "x"\n[[sensors]]\nname = "a"\nids = ["d1"]\n'
            '[[panels]]\nname = "p"\nids = ["d1"]\nutterances = ["hi"]\n')
    with pytest.raises(ScenarioError, match="used twice"):
        parse_scenario(text)


def test_scaling_devices_and_rate() -> None:
    assert scale_counts([4, 1, 1], 12) == [8, 2, 2]
    assert sum(scale_counts([3, 3, 1], 10)) == 10
    devices = plan(load_scenario("smart-home"), 60, 120.0)
    sensors = [d for d in devices if not d.device_id.startswith("panel")]
    assert len(sensors) == 60
    assert sum(d.rate for d in sensors) == pytest.approx(120.0)
