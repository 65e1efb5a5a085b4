"""Load a scenario: a shipped name (`smart-home`) or a path to a TOML/JSON file."""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas.scenario import Scenario


class ScenarioError(ValueError):
    """A scenario that cannot be found, parsed or validated; the message is for people."""


def shipped_scenarios() -> list[str]:
    """Names of the scenarios in sensor_sim/scenarios/."""
    folder = resources.files("sensor_sim") / "scenarios"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir()
                  if p.name.endswith(".toml"))


def _read(source: str) -> tuple[str, str]:
    path = Path(source)
    if path.suffix in {".toml", ".json"} or path.exists():
        if not path.is_file():
            raise ScenarioError(f"scenario file {source} does not exist")
        return path.read_text(encoding="utf-8"), path.suffix
    resource = resources.files("sensor_sim") / "scenarios" / f"{source}.toml"
    if not resource.is_file():
        raise ScenarioError(
            f"no scenario {source!r}: give a file path or one of {', '.join(shipped_scenarios())}"
        )
    return resource.read_text(encoding="utf-8"), ".toml"


def parse_scenario(text: str, suffix: str = ".toml", origin: str = "<scenario>") -> Scenario:
    """Validate a scenario text; ScenarioError lists every problem with its location."""
    try:
        data: Any = json.loads(text) if suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"{origin}: not valid {suffix.lstrip('.').upper()}: {exc}") from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [f"{origin}: {exc.error_count()} problem(s):"]
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            lines.append(f"  {where}: {error['msg']}")
        raise ScenarioError("\n".join(lines)) from exc


def load_scenario(source: str) -> Scenario:
    """A shipped scenario by name, or a scenario file by path."""
    text, suffix = _read(source)
    return parse_scenario(text, suffix, origin=source)
