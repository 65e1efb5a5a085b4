"""The cloud recogniser: its settings section and its JSON wire contract.

Settings: ``Settings.cloud`` (``EGW_CLOUD__ENABLED``, ``EGW_CLOUD__REQUEST_TOPIC``, ...).

Wire contract (MQTT v5 request/response through the broker, docs/cloud.md): the gateway
publishes a `CloudRequest` (JSON, QoS 0) on the request topic with the MQTT v5 properties
*response topic* (its own, per gateway) and *correlation data* (opaque bytes); the service
answers with a `CloudResponse` on that response topic, echoing the correlation data. A
heartbeat is a request of kind ``heartbeat`` on the same topic.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from schemas.config import _Section
from schemas.decisions import Intent, _Contract
from schemas.telemetry import MAX_COMMAND_TEXT

__all__ = ["CloudConfig", "CloudRequest", "CloudResponse"]

ShedWork = Literal["telemetry_uplink", "decision_summaries"]
"""Work that EGW_CLOUD__SHED_WHEN_DEGRADED can stop while the cloud is unreachable."""
RequestKind = Literal["recognize", "heartbeat"]


class CloudConfig(_Section):
    """The cloud recogniser: edge-first escalation of uncertain commands, heartbeats, failover."""

    enabled: bool = Field(
        False,
        description="Escalate uncertain text commands to a cloud recogniser (needs a broker).",
    )
    request_topic: str = Field(
        "cloud/recognizer/requests",
        description="Broker topic of the cloud recogniser's requests, used as it is (the "
        "mountpoint is not added): one service serves many gateways.",
    )
    response_topic: str = Field(
        "cloud/responses/{gateway_id}",
        description="This gateway's response topic, under the mountpoint; {gateway_id} is "
        "replaced ({site}-{mqttsn.gateway_id}).",
    )
    heartbeat_interval: float = Field(
        5.0, gt=0, description="Seconds between heartbeats; a heartbeat not answered within "
        "one interval is a miss."
    )
    misses_to_degrade: int = Field(
        3, ge=1, description="Consecutive missed heartbeats or request timeouts that switch to "
        "DEGRADED (local model only)."
    )
    successes_to_recover: int = Field(
        3, ge=1, description="Consecutive answered heartbeats that switch DEGRADED back to "
        "ONLINE (hysteresis: a flapping link does not flap the mode)."
    )
    escalate_below: float = Field(
        0.6, ge=0.0, le=1.0, description="While ONLINE, a local answer with a lower confidence "
        "is escalated to the cloud."
    )
    escalate_other: bool = Field(
        True, description="While ONLINE, also escalate every local 'other' answer (only the "
        "cloud knows intents outside the smart-home set)."
    )
    deadline_ms: int = Field(
        150, ge=1, description="Milliseconds an escalated command waits for the cloud before "
        "the fallback decides (a timeout counts as a miss)."
    )
    safe_intent: str = Field(
        "", description="Intent decided when an escalation fails (timeout, error); empty = the "
        "local answer. E.g. 'other' never actuates anything."
    )
    shed_when_degraded: list[ShedWork] = Field(
        default_factory=list,
        description="Non-core work to stop while DEGRADED (the link to the far side is in "
        "trouble): 'telemetry_uplink' keeps normalised telemetry local (not sent to the broker "
        "or spooled; counted), 'decision_summaries' stops the devices/{id}/decision pushes. "
        "Default: nothing is shed. As JSON in the environment, e.g. '[\"telemetry_uplink\"]'.",
    )
    max_pending: int = Field(
        1000, ge=1, description="Requests waiting for the cloud at once; beyond it the local "
        "answer decides at once."
    )

    @model_validator(mode="after")
    def _topics(self) -> Self:
        for name, topic in (("request_topic", self.request_topic),
                            ("response_topic", self.response_topic)):
            if not topic or "+" in topic or "#" in topic or "\x00" in topic:
                raise ValueError(f"cloud {name} must be a topic name without wildcards")
        return self


class CloudRequest(_Contract):
    """What the gateway asks the cloud recogniser (JSON, MQTT v5 with response topic and
    correlation data)."""

    kind: RequestKind = Field(
        description='"recognize" a text command, or "heartbeat" (is the service there?).'
    )
    gateway_id: str = Field(min_length=1, description="The asking gateway.")
    text: str | None = Field(
        None, min_length=1, max_length=MAX_COMMAND_TEXT,
        description="The command text; required for recognize, absent for heartbeat.",
    )
    device_id: str | None = Field(None, description="Device that sent the command, if any.")
    deadline_ms: int = Field(
        ge=1, description="The gateway stops waiting this many milliseconds after sent_at; a "
        "later answer is ignored."
    )
    sent_at: float = Field(description="Gateway clock: UTC seconds since the Unix epoch.")

    @model_validator(mode="after")
    def _text_for_recognize(self) -> Self:
        if (self.kind == "recognize") != (self.text is not None):
            raise ValueError("text is required for recognize and absent for heartbeat")
        return self


class CloudResponse(_Contract):
    """The cloud recogniser's answer, on the request's response topic with its correlation
    data."""

    kind: RequestKind = Field(description="Kind of the request this answers.")
    ok: bool = Field(description="True when the request was served; false with an error.")
    model_version: str = Field(description="Version of the cloud's model.")
    intent: Intent | None = Field(
        None, description="The recognised intent (recognize only): any intent the cloud "
        "knows, also outside the gateway's smart-home set."
    )
    error: str | None = Field(None, description="Why the request was not served (ok false).")
