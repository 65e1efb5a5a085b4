"""What the gateway decided about a device's command, and what it told the actuators.

A `Decision` is published for every recognised command (audit trail, cloud sync); each of its
`ActuatorCommand`s is sent to one actuator; a `CoapSummary` is the small body of the CoAP
piggybacked response the device gets back.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.telemetry import DeviceId


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class Intent(_Contract):
    """A recognised intent: what the command asks for, and how sure the recogniser is."""

    name: str = Field(min_length=1, description='Intent name, e.g. "lights_off".')
    confidence: float = Field(ge=0.0, le=1.0, description="Recogniser confidence, 0 to 1.")
    slots: dict[str, str] = Field(
        default_factory=dict,
        description='Slot name -> value extracted from the command, e.g. {"room": "kitchen"}.',
    )


class ActuatorCommand(_Contract):
    """One command for one actuator."""

    actuator_id: str = Field(
        min_length=1, max_length=128, description='Actuator the command is for, e.g. "lamp-3".'
    )
    command: dict[str, Any] = Field(
        description='What the actuator is to do, e.g. {"state": "off"}; JSON/CBOR-safe values.'
    )
    issued_at: float = Field(
        description="Gateway clock when the command was issued: UTC seconds since the Unix epoch."
    )
    decision_seq: int | None = Field(
        None, ge=0, description="`seq` of the decision that caused it; null when none did."
    )


class Decision(_Contract):
    """The gateway's decision about one device command: the intent and the resulting actions."""

    device_id: DeviceId
    intent: Intent = Field(description="The recognised intent.")
    actions: list[ActuatorCommand] = Field(
        description="Commands sent to actuators because of this decision; may be empty."
    )
    recognizer: str = Field(
        min_length=1, description='What recognised the intent: "local", "cloud", "rules", ...'
    )
    model_version: str = Field(description="Version of the recognition model or rule set.")
    gateway_id: str = Field(min_length=1, description="The deciding gateway.")
    seq: int = Field(
        ge=0, description="Per-gateway decision sequence number, increasing by one per decision."
    )
    gateway_time: float = Field(
        description="Gateway clock at the decision: UTC seconds since the Unix epoch."
    )


class CoapSummary(_Contract):
    """Body of a CoAP piggybacked response (sent as CBOR): what the gateway made of the request."""

    accepted: int = Field(ge=0, description="Readings or commands accepted from the request.")
    intent: str | None = Field(None, description="Recognised intent name, for a text command.")
    actions: list[ActuatorCommand] = Field(
        default_factory=list, description="Actuator commands issued because of the request."
    )
