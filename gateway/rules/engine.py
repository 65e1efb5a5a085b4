"""Turns intents and readings into actuator commands, as the rules file says.

Pure and synchronous: the caller passes the clock. State: hysteresis per (rule, device) and the
last time each command was sent, for cooldowns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas import Intent, Reading
from schemas.rules import IntentRule, RulesFile, SensorRule

_ROOM_SEPARATORS = re.compile(r"[\s\-]+")
_SLOT_TEMPLATE = re.compile(r"\{([a-z_]+)\}")


@dataclass(slots=True, init=False)
class PlannedCommand:
    """One per decided command: not frozen, with its own __init__ (see `packets.Publish`)."""

    actuator_id: str
    command: dict[str, Any]

    def __init__(self, actuator_id: str, command: dict[str, Any]) -> None:
        self.actuator_id = actuator_id
        self.command = command


@dataclass(frozen=True, slots=True)
class SensorEvent:
    """A sensor rule fired: the event intent and what to command."""

    intent: Intent
    commands: list[PlannedCommand]


def normalise_room(value: str) -> str:
    return _ROOM_SEPARATORS.sub("_", value.strip().lower())


def reading_key(name: str) -> str:
    """The last part of a SenML name: urn:dev:ow:10e2073a01080063:temp -> temp."""
    return name[max(name.rfind(":"), name.rfind("/")) + 1 :]


class RuleEngine:
    def __init__(self, rules: RulesFile) -> None:
        self.rules = rules
        self._by_intent: dict[str, list[IntentRule]] = {}
        for rule in rules.intent_rules:
            self._by_intent.setdefault(rule.intent, []).append(rule)
        self._by_reading: dict[str, list[SensorRule]] = {}
        for sensor_rule in rules.sensor_rules:
            self._by_reading.setdefault(sensor_rule.reading, []).append(sensor_rule)
        self._all_rooms = {normalise_room(room) for room in rules.all_rooms}
        self._armed: dict[tuple[str, str], bool] = {}
        self._last_sent: dict[tuple[str, str], float] = {}
        self._last_fired: dict[tuple[str, str], float] = {}

    @property
    def version(self) -> str:
        return self.rules.version

    def commands_for_intent(
        self, device_id: str, intent: Intent, now: float
    ) -> list[PlannedCommand]:
        planned: list[PlannedCommand] = []
        for rule in self._by_intent.get(intent.name, ()):
            if any(slot not in intent.slots for slot in rule.require_slots):
                continue
            rooms = self._target_rooms(device_id, rule.room_slots, intent.slots)
            command = _fill(rule.command, intent.slots)
            for actuator_id in self._actuators(rule.actuator_type, rooms):
                if self._cooled_down(actuator_id, command, rule.cooldown_s, now):
                    planned.append(PlannedCommand(actuator_id, command))
        return planned

    def events_for_readings(
        self, device_id: str, readings: Iterable[Reading], now: float
    ) -> list[SensorEvent]:
        events: list[SensorEvent] = []
        for reading in readings:
            if reading.value is None:
                continue
            for rule in self._by_reading.get(reading_key(reading.name), ()):
                if self._crossed(rule, device_id, reading.value, now):
                    events.append(self._fire(rule, device_id, reading, now))
        return events

    def _crossed(self, rule: SensorRule, device_id: str, value: float, now: float) -> bool:
        key = (rule.name, device_id)
        armed = self._armed.get(key, True)
        if rule.above is not None:
            triggered, cleared = value > rule.above, value <= rule.clear
        else:
            assert rule.below is not None
            triggered, cleared = value < rule.below, value >= rule.clear
        if armed and triggered:
            if now - self._last_fired.get(key, float("-inf")) < rule.cooldown_s:
                return False
            self._armed[key] = False
            self._last_fired[key] = now
            return True
        if not armed and cleared:
            self._armed[key] = True
        return False

    def _fire(self, rule: SensorRule, device_id: str, reading: Reading, now: float) -> SensorEvent:
        slots = {"reading": reading.name, "value": f"{reading.value:g}", "rule": rule.name}
        ids = list(rule.actuators)
        if rule.actuator_type is not None:
            rooms = self._device_rooms(device_id) if rule.same_room else None
            ids.extend(self._actuators(rule.actuator_type, rooms))
        commands = [
            PlannedCommand(actuator_id, dict(rule.command))
            for actuator_id in dict.fromkeys(ids)
            if rule.command
        ]
        return SensorEvent(Intent(name=rule.intent, confidence=1.0, slots=slots), commands)

    def _target_rooms(
        self, device_id: str, room_slots: list[str], slots: Mapping[str, str]
    ) -> frozenset[str] | None:
        """The rooms a command acts in; None = every room (also when the rule names no slot)."""
        if not room_slots:
            return None
        for slot in room_slots:
            if slot in slots:
                room = normalise_room(slots[slot])
                return None if room in self._all_rooms else frozenset({room})
        return self._device_rooms(device_id)

    def _device_rooms(self, device_id: str) -> frozenset[str]:
        """The device's room; none if unknown (then only site-wide actuators match)."""
        device = self.rules.devices.get(device_id)
        if device is None or device.room is None:
            return frozenset()
        return frozenset({normalise_room(device.room)})

    def _actuators(self, actuator_type: str, rooms: frozenset[str] | None) -> list[str]:
        return [
            actuator_id
            for actuator_id, info in self.rules.actuators.items()
            if info.type == actuator_type
            and (rooms is None or info.room is None or normalise_room(info.room) in rooms)
        ]

    def _cooled_down(
        self, actuator_id: str, command: dict[str, Any], cooldown: float, now: float
    ) -> bool:
        key = (actuator_id, _command_key(command))
        if now - self._last_sent.get(key, float("-inf")) < cooldown:
            return False
        self._last_sent[key] = now
        return True


def _command_key(command: Mapping[str, Any]) -> str:
    """A canonical text of the command, for de-duplication (True, 1 and 1.0 stay distinct)."""
    items = sorted(command.items())
    if all(value is None or isinstance(value, str | int | float) for _, value in items):
        return repr(items)  # flat commands, the usual ones: cheaper than JSON
    return json.dumps(command, sort_keys=True)


def _fill(command: Mapping[str, Any], slots: Mapping[str, str]) -> dict[str, Any]:
    """Replace {slot} in string values by the slot's value."""
    return {
        key: _SLOT_TEMPLATE.sub(lambda m: slots.get(m.group(1), m.group(0)), value)
        if isinstance(value, str) else value
        for key, value in command.items()
    }
