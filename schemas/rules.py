"""The rules file: device registry, actuators, and how intents and readings become commands.

Loaded from TOML (`EGW_RULES__PATH`, default: the rules shipped in `gateway/rules/`). A rule
that names an unknown actuator is a startup error with the file and line.
"""

from __future__ import annotations

import re
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeviceInfo(_Model):
    """A sensor or panel: where it is, so that "turn off the lights" acts in its room."""

    room: str | None = Field(None, description="Room the device is in, e.g. kitchen.")
    type: str | None = Field(None, description="Free-form device type, e.g. panel, thermostat.")


class ActuatorInfo(_Model):
    """Something the gateway can command on `actuators/{id}/set`."""

    type: str = Field(description="Actuator type rules select by, e.g. light, plug, siren.")
    room: str | None = Field(None, description="Room the actuator is in; None = whole site.")


class IntentRule(_Model):
    """A recognised intent -> a command for every actuator of a type in the target room.

    The room is the first of `room_slots` the intent carries (normalised: lower case, spaces to
    underscores), else the commanding device's room; a room in `all_rooms` targets every room.
    `{slot}` in a command's string values is replaced by that slot's value.
    """

    intent: str = Field(description="Intent name, e.g. iot_hue_lightoff.")
    actuator_type: str = Field(description="Which actuators: every one of this type in the room.")
    command: dict[str, Any] = Field(description='The command, e.g. {"state": "off"}.')
    room_slots: list[str] = Field(["house_place"], description="Slots that name the room.")
    require_slots: list[str] = Field([], description="Slots without which nothing is done.")
    cooldown_s: float = Field(0.0, ge=0, description="Minimum seconds between equal commands.")


class SensorRule(_Model):
    """A threshold on a reading, with hysteresis: fires once when crossed, re-arms when clear."""

    name: str = Field(description="Rule name, used in decisions and logs.")
    reading: str = Field(description="Reading name, e.g. smoke or temp (last SenML name part).")
    above: float | None = Field(None, description="Fire when the value rises above this.")
    below: float | None = Field(None, description="Fire when the value falls below this.")
    clear: float = Field(description="Re-arm once the value is back past this (hysteresis).")
    intent: str = Field(description="Event intent the decision carries, e.g. smoke_detected.")
    actuator_type: str | None = Field(None, description="Command actuators of this type...")
    actuators: list[str] = Field([], description="...and/or these actuator ids.")
    command: dict[str, Any] = Field({}, description="Command sent to each selected actuator.")
    same_room: bool = Field(True, description="Only actuators in the reporting device's room.")
    cooldown_s: float = Field(0.0, ge=0, description="Minimum seconds between firings.")

    @model_validator(mode="after")
    def _one_direction(self) -> Self:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"sensor rule {self.name!r} needs exactly one of above/below")
        if self.above is not None and self.clear > self.above:
            raise ValueError(f"sensor rule {self.name!r}: clear must be <= above")
        if self.below is not None and self.clear < self.below:
            raise ValueError(f"sensor rule {self.name!r}: clear must be >= below")
        return self


class RulesFile(_Model):
    """The whole rules file."""

    version: str = Field(description="Rule set version, recorded in every decision it makes.")
    all_rooms: list[str] = Field(
        ["house", "home", "all", "everywhere", "flat", "apartment"],
        description="Room slot values that mean every room.",
    )
    devices: dict[str, DeviceInfo] = Field({}, description="Device id -> where it is.")
    actuators: dict[str, ActuatorInfo] = Field({}, description="Actuator id -> type and room.")
    intent_rules: list[IntentRule] = Field([], description="Intent -> actuator commands.")
    sensor_rules: list[SensorRule] = Field([], description="Reading thresholds -> commands.")

    @model_validator(mode="after")
    def _ids_fit_in_topics(self) -> Self:
        for kind, ids in (("device", self.devices), ("actuator", self.actuators)):
            for name in ids:
                if not _ID.fullmatch(name):
                    raise ValueError(f"{kind} id {name!r} must be 1-64 of A-Z a-z 0-9 . _ -")
        return self
