"""Telemetry and text commands as the pipeline hands them on, whatever front-end they came from.

A device's payload (SenML-CBOR, SenML-JSON, a plain CBOR map or JSON object, or text) is turned
into these models by `gateway.pipeline.normalise`; nothing downstream sees the wire encoding.
Times are UTC seconds since the Unix epoch as floats, already resolved (no SenML relative times).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

DEVICE_ID_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"
"""Device ids: 1-64 characters from A-Z a-z 0-9 . _ - (safe in topics, paths and file names)."""

SENML_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9:./_-]*$"
"""RFC 8428 §4.5.1: a resolved name starts with a letter or digit, then A-Z a-z 0-9 - : . / _."""

MAX_NAME_LENGTH: Final = 256
MAX_UNIT_LENGTH: Final = 64
MAX_COMMAND_TEXT: Final = 512

Source = Literal["coap", "mqttsn"]
"""The front-end a message arrived on."""

DeviceId = Annotated[
    str,
    Field(
        pattern=DEVICE_ID_PATTERN,
        description="Device id from the CoAP path or MQTT-SN topic: 1-64 of A-Z a-z 0-9 . _ -.",
    ),
]


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class Reading(_Contract):
    """One resolved measurement: a SenML record (RFC 8428 §4.6) tagged with its device.

    Exactly one of `value`, `string_value`, `bool_value`, `data_value` is set, except that a
    reading with a `sum` may have no value at all (RFC 8428 §4.2: "Exactly one Value field MUST
    appear unless there is a Sum field, in which case it is allowed to have no Value field").
    """

    device_id: DeviceId
    name: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=SENML_NAME_PATTERN,
        description="Resolved SenML name (base name + name), e.g. "
        '"urn:dev:ow:10e2073a01080063:temp" or "temp"; RFC 8428 §4.5.1 characters.',
    )
    value: float | None = Field(
        None, description="Numeric value (SenML v, with the base value added)."
    )
    string_value: str | None = Field(None, description="String value (SenML vs).")
    bool_value: bool | None = Field(None, description="Boolean value (SenML vb).")
    data_value: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="Binary value (SenML vd): base64url, padding omitted, as in RFC 8428 §4.3.",
    )
    unit: str | None = Field(
        None,
        max_length=MAX_UNIT_LENGTH,
        description='Unit (SenML u, else the base unit bu), e.g. "Cel"; null when none applies.',
    )
    time: float = Field(
        description="When the value was measured: UTC seconds since the Unix epoch, resolved "
        "(SenML bt + t; relative times are taken relative to the gateway's clock)."
    )
    sum: float | None = Field(
        None, description="Integrated sum of the values over time (SenML s, with bs added)."
    )

    @model_validator(mode="after")
    def _one_value(self) -> Self:
        # Runs for every reading of every payload: the common case without building a list.
        values = (
            (self.value is not None)
            + (self.string_value is not None)
            + (self.bool_value is not None)
            + (self.data_value is not None)
        )
        if values == 1 or (values == 0 and self.sum is not None):
            return self
        if values == 0:
            raise ValueError("a reading needs a value field, or a sum")
        present = [
            field
            for field in ("value", "string_value", "bool_value", "data_value")
            if getattr(self, field) is not None
        ]
        raise ValueError(f"a reading has exactly one value field, got {', '.join(present)}")


class TelemetryBatch(_Contract):
    """Every reading of one device payload, in chronological order."""

    device_id: DeviceId
    readings: list[Reading] = Field(
        min_length=1, description="The payload's readings, chronological; all of this device."
    )
    received_at: float = Field(
        description="Gateway clock when the payload arrived: UTC seconds since the Unix epoch."
    )
    source: Source = Field(description='Front-end the payload arrived on: "coap" or "mqttsn".')
    content_format: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="CoAP Content-Format of the payload (110 SenML-JSON, 112 SenML-CBOR, "
        "50 JSON, 60 CBOR); null when the front-end had none (MQTT-SN) and it was detected.",
    )

    @model_validator(mode="after")
    def _one_device(self) -> Self:
        device_id = self.device_id
        for reading in self.readings:
            if reading.device_id != device_id:
                raise ValueError("every reading of a batch belongs to the batch's device")
        return self


class TextCommand(_Contract):
    """A natural-language command from a device, e.g. "turn off the kitchen light"."""

    device_id: DeviceId
    text: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_COMMAND_TEXT),
    ] = Field(description="The command text, stripped of surrounding white space; 1-512 chars.")
    received_at: float = Field(
        description="Gateway clock when the command arrived: UTC seconds since the Unix epoch."
    )
    source: Source = Field(description='Front-end the command arrived on: "coap" or "mqttsn".')
