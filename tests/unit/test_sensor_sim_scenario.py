"""Scenario models and loader."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from schemas.scenario import (
    ActuatorClass,
    Faults,
    PanelClass,
    Scenario,
    SensorClass,
    Timing,
)
from sensor_sim.cli import with_overrides
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


def test_every_shipped_scenario_loads() -> None:
    """The four shipped scenarios validate, with the sizes and faults their names promise."""
    assert set(shipped_scenarios()) >= {"smart-home", "building", "stress", "chaos"}
    stress = load_scenario("stress")
    assert len(plan(stress, None, None)) >= 10_000
    building = load_scenario("building")
    assert sum(c.count for c in building.sensors) >= 300
    assert any(c.sleep_duration for c in building.sensors)
    assert {a.protocol for a in building.actuators} == {"mqttsn", "coap"}
    chaos = load_scenario("chaos")
    assert chaos.faults.enabled and chaos.faults.datagram_faults
    assert chaos.faults.reboot_fraction > 0 and chaos.faults.oversleep > 0
    assert not load_scenario("smart-home").faults.enabled


def test_fault_fields_are_validated() -> None:
    """Rates outside 0-1 and an oversleep too short to be noticed are refused."""
    for bad in ("loss = 1.5", "oversleep_factor = 1.2", "reorder_delay = 0", "garbage = -0.1"):
        with pytest.raises(ScenarioError, match="faults"):
            parse_scenario(f'name = "x"\n[faults]\n{bad}\n')
    with pytest.raises(ScenarioError, match=r"faults\.bogus"):
        parse_scenario('name = "x"\n[faults]\nbogus = 1\n')


def test_class_faults_override_the_scenario() -> None:
    """A class's own `faults` table replaces the scenario's for that class."""
    scenario = parse_scenario(
        'name = "x"\n[faults]\nloss = 0.2\n'
        '[[sensors]]\nname = "a"\nids = ["a1"]\n'
        '[[sensors]]\nname = "b"\nids = ["b1"]\n[sensors.faults]\nduplicate = 0.5\n'
    )
    assert scenario.sensors[0].faults is None
    assert scenario.sensors[1].faults is not None
    assert scenario.sensors[1].faults.loss == 0 and scenario.sensors[1].faults.duplicate == 0.5


def test_sleeping_sensors_are_validated() -> None:
    """Sleeping needs MQTT-SN with a session and a report interval within the declared sleep."""
    base = 'name = "x"\n[[sensors]]\nname = "s"\nids = ["s1"]\nsleep_duration = 5\n'
    assert parse_scenario(base + "rate = 0.5\n").sensors[0].sleep_duration == 5
    with pytest.raises(ScenarioError, match="sleep of 5 s"):
        parse_scenario(base + "rate = 0.1\n")
    with pytest.raises(ScenarioError, match="sleep_duration needs"):
        parse_scenario(base + 'protocol = "coap-con"\n')


def test_actuator_protocols() -> None:
    """Actuators are MQTT-SN subscribers by default, CoAP observers on request, nothing else."""
    scenario = parse_scenario('name = "x"\n[[actuators]]\nids = ["a"]\n'
                              '[[actuators]]\nname = "o"\nprotocol = "coap"\nids = ["b"]\n')
    assert [a.protocol for a in scenario.actuators] == ["mqttsn", "coap"]
    with pytest.raises(ScenarioError, match=r"actuators\.0\.protocol"):
        parse_scenario('name = "x"\n[[actuators]]\nids = ["a"]\nprotocol = "zigbee"\n')


def test_fault_and_seed_overrides_from_the_command_line() -> None:
    """`--fault NAME=VALUE` sets the field for the scenario and every class; `--seed` the seed."""
    scenario = parse_scenario(
        'name = "x"\n[[sensors]]\nname = "a"\nids = ["a1"]\n[sensors.faults]\nloss = 0.5\n'
    )
    changed = with_overrides(scenario, ["loss=0.25", "garbage = 0.1"], 42)
    assert changed.seed == 42
    assert changed.faults.loss == 0.25 and changed.faults.garbage == 0.1
    assert changed.sensors[0].faults is not None and changed.sensors[0].faults.loss == 0.25
    with pytest.raises(ScenarioError, match="NAME=VALUE"):
        with_overrides(scenario, ["lossy=1"], None)
    with pytest.raises(ScenarioError, match="--fault"):
        with_overrides(scenario, ["loss=2"], None)


def test_documented_example_is_valid_and_uses_every_field() -> None:
    """docs/simulator.md's full example parses and sets every field of every scenario model."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "simulator.md").read_text()
    example = text.split("### A full example (every field)", 1)[1]
    example = example.split("```toml\n", 1)[1].split("```", 1)[0]
    scenario = parse_scenario(example, origin="docs/simulator.md")
    used: dict[type, set[str]] = {}

    def collect(model: BaseModel) -> None:
        used.setdefault(type(model), set()).update(model.model_fields_set)
        for value in model.__dict__.values():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, BaseModel):
                    collect(item)

    collect(scenario)
    # Sensors and panels share their sending fields: the example may show those once.
    groups = [(Scenario,), (Timing,), (Faults,), (SensorClass, PanelClass), (ActuatorClass,)]
    for group in groups:
        fields = set().union(*(m.model_fields for m in group))
        missing = fields - set().union(*(used.get(m, set()) for m in group))
        assert not missing, (group, missing)
    assert set(PanelClass.model_fields) - set(SensorClass.model_fields) <= used[PanelClass]
