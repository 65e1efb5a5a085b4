"""Load and check the rules file; errors name the file and, where it can be found, the line."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from gateway.errors import ConfigError
from schemas.rules import RulesFile

DEFAULT_RULES = "default.toml"


def load_rules(path: Path | None = None) -> RulesFile:
    """The rules at `path`, or the shipped default; ConfigError on any problem."""
    if path is None:
        source = resources.files("gateway.rules").joinpath(DEFAULT_RULES)
        text, where = source.read_text(encoding="utf-8"), f"<package>/gateway/rules/{DEFAULT_RULES}"
    else:
        try:
            text, where = path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the rules file: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    try:
        rules = RulesFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{where}: {loc}: {first['msg']}") from exc
    _check_references(rules, text, where)
    return rules


def _check_references(rules: RulesFile, text: str, where: str) -> None:
    for rule in rules.sensor_rules:
        for actuator_id in rule.actuators:
            if actuator_id not in rules.actuators:
                line = _line_of(text, "actuators", actuator_id)
                raise ConfigError(
                    f"{where}:{line}: sensor rule {rule.name!r} names unknown actuator "
                    f"{actuator_id!r}"
                )
    types = {actuator.type for actuator in rules.actuators.values()}
    for intent_rule in rules.intent_rules:
        if intent_rule.actuator_type not in types:
            line = _line_of(text, "actuator_type", intent_rule.actuator_type)
            raise ConfigError(
                f"{where}:{line}: intent rule {intent_rule.intent!r} names actuator type "
                f"{intent_rule.actuator_type!r}, which no actuator has"
            )
    for sensor_rule in rules.sensor_rules:
        if sensor_rule.actuator_type is not None and sensor_rule.actuator_type not in types:
            line = _line_of(text, "actuator_type", sensor_rule.actuator_type)
            raise ConfigError(
                f"{where}:{line}: sensor rule {sensor_rule.name!r} names actuator type "
                f"{sensor_rule.actuator_type!r}, which no actuator has"
            )


def _line_of(text: str, key: str, value: str) -> int | str:
    """1-based line where `key` is set to (or lists) `value`; '?' if it cannot be found."""
    quoted = f'"{value}"'
    lines = text.splitlines()
    for need_key in (True, False):
        for number, line in enumerate(lines, start=1):
            if quoted in line and (key in line or not need_key):
                return number
    return "?"
