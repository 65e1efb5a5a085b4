"""The device-payload pipeline: normalise -> recognise -> decide.

*normalise* turns a front-end's payload bytes into contract models (`schemas.TelemetryBatch`,
`schemas.TextCommand`): strict bounded CBOR/JSON decoding (`cbor`), RFC 8428 SenML resolution
(`senml`) and one entry per payload kind (`normalise`), shared by the CoAP and MQTT-SN
front-ends. *recognise* turns a text command into an
`schemas.Intent`; *decide* turns an intent into a `schemas.Decision` and its actuator commands.
Every refusal of a payload is a `PayloadError`.
"""

from gateway.pipeline.cbor import PayloadError, PayloadErrorKind, decode_cbor, decode_json_strict
from gateway.pipeline.normalise import (
    CF_CBOR,
    CF_JSON,
    CF_SENML_CBOR,
    CF_SENML_JSON,
    CF_TEXT,
    detect_format,
    normalise_command,
    normalise_telemetry,
    validate_device_id,
)
from gateway.pipeline.senml import ResolvedRecord, resolve_senml

__all__ = [
    "CF_CBOR",
    "CF_JSON",
    "CF_SENML_CBOR",
    "CF_SENML_JSON",
    "CF_TEXT",
    "PayloadError",
    "PayloadErrorKind",
    "ResolvedRecord",
    "decode_cbor",
    "decode_json_strict",
    "detect_format",
    "normalise_command",
    "normalise_telemetry",
    "resolve_senml",
    "validate_device_id",
]
