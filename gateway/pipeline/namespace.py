"""The topic/path namespace both front-ends share (docs/topics.md)."""

from __future__ import annotations

from typing import Literal

Kind = Literal["telemetry", "command"]


def classify(topic: str) -> tuple[Kind, str] | None:
    """("telemetry" | "command", device id) for `devices/{id}/telemetry|command`, else None."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "devices" or not parts[1]:
        return None
    if parts[2] == "telemetry":
        return "telemetry", parts[1]
    if parts[2] == "command":
        return "command", parts[1]
    return None


def actuator_topic(actuator_id: str) -> str:
    return f"actuators/{actuator_id}/set"
