"""The rules file and the rule engine: intents and readings to actuator commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.rules.engine import PlannedCommand, RuleEngine, reading_key
from gateway.rules.loader import load_rules
from schemas import Intent, Reading


def engine() -> RuleEngine:
    return RuleEngine(load_rules())


def intent(name: str, **slots: str) -> Intent:
    return Intent(name=name, confidence=0.9, slots=slots)


def reading(name: str, value: float, device: str = "thermo1") -> Reading:
    return Reading(device_id=device, name=name, value=value, time=0.0)


def test_shipped_rules_load() -> None:
    """The default rules file validates and every reference in it resolves."""
    rules = load_rules()
    assert rules.version and "light.kitchen" in rules.actuators


def test_light_off_in_the_named_room() -> None:
    """iot_hue_lightoff with house_place=kitchen turns off light.kitchen only."""
    planned = engine().commands_for_intent(
        "panel2", intent("iot_hue_lightoff", house_place="kitchen"), 0
    )
    assert planned == [PlannedCommand("light.kitchen", {"state": "off"})]


def test_room_defaults_to_the_commanding_device_and_spaces_are_normalised() -> None:
    """Without a room slot the panel's own room is used; 'Living Room' matches living_room."""
    e = engine()
    assert e.commands_for_intent("panel1", intent("iot_hue_lighton"), 0) == [
        PlannedCommand("light.kitchen", {"state": "on"})
    ]
    assert e.commands_for_intent(
        "panel1", intent("iot_wemo_off", house_place="Living Room"), 1
    ) == [PlannedCommand("plug.living_room", {"state": "off"})]


def test_whole_house_targets_every_room() -> None:
    """house_place=house means every light."""
    planned = engine().commands_for_intent(
        "panel1", intent("iot_hue_lightoff", house_place="house"), 0
    )
    assert {p.actuator_id for p in planned} == {
        "light.kitchen",
        "light.living_room",
        "light.bedroom",
        "light.bathroom",
        "light.hall",
        "light.office",
    }


def test_slot_values_fill_command_templates_and_required_slots_are_enforced() -> None:
    """The colour slot fills {color_type}; without it the colour rule does nothing."""
    e = engine()
    assert e.commands_for_intent("panel3", intent("iot_hue_lightchange", color_type="blue"), 0) == [
        PlannedCommand("light.bedroom", {"color": "blue"})
    ]
    assert e.commands_for_intent("panel3", intent("iot_hue_lightchange"), 1) == []


def test_unknown_device_without_room_slot_commands_nothing_room_bound() -> None:
    """A device not in the registry cannot mean 'my room'; site-wide actuators still work."""
    e = engine()
    assert e.commands_for_intent("stranger", intent("iot_hue_lightoff"), 0) == []
    assert e.commands_for_intent("stranger", intent("iot_cleaning"), 0) == [
        PlannedCommand("vacuum.home", {"action": "start"})
    ]


def test_threshold_fires_once_then_rearms_after_hysteresis() -> None:
    """over_temperature fires above 30, not again until the value fell to 28 or below."""
    e = engine()
    values = [25.0, 31.0, 32.0, 29.0, 31.0, 27.5, 31.0]
    fired = [
        bool(e.events_for_readings("thermo1", [reading("temp", v)], float(i) * 1000))
        for i, v in enumerate(values)
    ]
    assert fired == [False, True, False, False, False, False, True]


def test_cooldown_suppresses_refiring() -> None:
    """Within cooldown_s a re-armed rule does not fire again."""
    e = engine()
    assert e.events_for_readings("thermo1", [reading("temp", 31.0)], 0.0)
    e.events_for_readings("thermo1", [reading("temp", 20.0)], 10.0)
    assert not e.events_for_readings("thermo1", [reading("temp", 31.0)], 20.0)
    assert e.events_for_readings("thermo1", [reading("temp", 31.0)], 400.0)


def test_smoke_sounds_the_siren_and_senml_names_match_by_last_part() -> None:
    """A smoke reading named urn:...:smoke above 0.5 gives smoke_detected and the hall siren."""
    (event,) = engine().events_for_readings(
        "smoke1", [reading("urn:dev:x:smoke", 0.9, "smoke1")], 0
    )
    assert event.intent.name == "smoke_detected"
    assert event.commands == [PlannedCommand("siren.hall", {"state": "on"})]


def test_low_battery_is_an_event_without_commands() -> None:
    """A below-threshold rule with no actuators yields the event intent and no commands."""
    (event,) = engine().events_for_readings("smoke1", [reading("battery", 5.0, "smoke1")], 0)
    assert (event.intent.name, event.commands) == ("low_battery", [])


def test_same_command_to_same_actuator_respects_intent_cooldown(tmp_path: Path) -> None:
    """An intent rule with cooldown_s does not resend an equal command inside the window."""
    path = tmp_path / "rules.toml"
    path.write_text(
        'version = "t"\n[actuators]\n"light.a" = { type = "light", room = "a" }\n'
        '[[intent_rules]]\nintent = "on"\nactuator_type = "light"\ncommand = { state = "on" }\n'
        "cooldown_s = 5\n"
    )
    e = RuleEngine(load_rules(path))
    assert e.commands_for_intent("d", intent("on", house_place="a"), 0)
    assert not e.commands_for_intent("d", intent("on", house_place="a"), 3)
    assert e.commands_for_intent("d", intent("on", house_place="a"), 6)


def test_unknown_actuator_is_an_error_with_file_and_line(tmp_path: Path) -> None:
    """A sensor rule naming an actuator that does not exist fails to load, naming file:line."""
    path = tmp_path / "rules.toml"
    path.write_text(
        'version = "t"\n[actuators]\n"siren.a" = { type = "siren" }\n\n[[sensor_rules]]\n'
        'name = "smoke"\nreading = "smoke"\nabove = 0.5\nclear = 0.2\nintent = "x"\n'
        'actuators = ["siren.b"]\n'
    )
    with pytest.raises(ConfigError, match=rf"{path}:11: .*unknown actuator 'siren.b'"):
        load_rules(path)


def test_invalid_rules_name_the_problem(tmp_path: Path) -> None:
    """Schema errors and TOML syntax errors are ConfigErrors naming the file."""
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'version = "t"\n[[sensor_rules]]\nname = "x"\nreading = "t"\nclear = 1\nintent = "i"\n'
    )
    with pytest.raises(ConfigError, match="exactly one of above/below"):
        load_rules(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("version = \n")
    with pytest.raises(ConfigError, match=str(broken)):
        load_rules(broken)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("urn:dev:ow:10e2073a01080063:temp", "temp"),
        ("temp", "temp"),
        ("room/kitchen:co2", "co2"),
        ("urn:dev:mac:0024befffe804ff1/smoke", "smoke"),
    ],
)
def test_reading_key_is_the_last_part_of_a_senml_name(name: str, key: str) -> None:
    """Sensor rules match the last ':' or '/'-separated part of a resolved SenML name."""
    assert reading_key(name) == key
