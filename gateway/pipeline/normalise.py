"""Turn a device payload into a contract model: one entry per payload kind, for every front-end.

CoAP passes the request's Content-Format; MQTT-SN has none and passes None, and the payload is
then sniffed with `detect_format`. Every refusal is a `PayloadError` whose `kind` the front-end
maps to its response (CoAP 4.00 / 4.15 / 4.13) and whose `diagnostic` it may send back.

Telemetry: SenML-CBOR (112), SenML-JSON (110), or a flat CBOR map (60) / JSON object (50) of
``{name: value}`` with number, text or boolean values (and byte strings in CBOR, which become
data values); flat-map readings are stamped with ``now``. Commands: text/plain (0, UTF-8), or a
CBOR map / JSON object that is exactly ``{"text": "..."}``.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

from pydantic import ValidationError

from gateway.pipeline.cbor import PayloadError, decode_cbor, decode_json_strict
from gateway.pipeline.senml import ResolvedRecord, encode_data_value, resolve_senml
from schemas.telemetry import (
    DEVICE_ID_PATTERN,
    MAX_NAME_LENGTH,
    SENML_NAME_PATTERN,
    TelemetryBatch,
    TextCommand,
)

__all__ = [
    "CF_CBOR",
    "CF_JSON",
    "CF_SENML_CBOR",
    "CF_SENML_JSON",
    "CF_TEXT",
    "MAX_READINGS",
    "PayloadError",
    "detect_format",
    "normalise_command",
    "normalise_telemetry",
    "validate_device_id",
]

# CoAP Content-Formats (RFC 7252 §12.3, RFC 8428 §12.3).
CF_TEXT: Final = 0  # text/plain; charset=utf-8
CF_JSON: Final = 50  # application/json
CF_CBOR: Final = 60  # application/cbor
CF_SENML_JSON: Final = 110  # application/senml+json
CF_SENML_CBOR: Final = 112  # application/senml+cbor

DEFAULT_MAX_PAYLOAD: Final = 65536
MAX_READINGS: Final = 4096
"""Readings per payload; more is "too_large" (bounds the work one datagram can cause)."""

Source = Literal["coap", "mqttsn"]

_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_NAME = re.compile(SENML_NAME_PATTERN)
_CBOR_SELF_DESCRIBE = b"\xd9\xd9\xf7"
_JSON_WHITESPACE = b" \t\r\n"


def validate_device_id(device_id: str) -> str:
    """Return the device id, or raise PayloadError("bad_request") when it is not 1-64 of
    A-Z a-z 0-9 . _ -."""
    if not _DEVICE_ID.fullmatch(device_id):
        raise PayloadError("bad_request", "invalid device id")
    return device_id


def detect_format(payload: bytes) -> int:
    """Sniff the Content-Format of a payload that came without one (MQTT-SN).

    A CBOR array (initial byte 0x80-0x9f) is SenML-CBOR and a CBOR map (0xa0-0xbf) a CBOR map,
    also behind the self-described CBOR prefix; after optional JSON white space, "[" is
    SenML-JSON and "{" a JSON object. Anything else is reported as text/plain. No UTF-8 text
    starts with a byte in 0x80-0xbf, and no telemetry or command is a top-level CBOR integer or
    long string (the only CBOR items that start like JSON), so the sniff cannot mistake one for
    the other on any payload that either decoder would accept.
    """
    body = payload.removeprefix(_CBOR_SELF_DESCRIBE)
    if body:
        major = body[0] >> 5
        if major == 4:
            return CF_SENML_CBOR
        if major == 5:
            return CF_CBOR
    start = payload.lstrip(_JSON_WHITESPACE)[:1]
    if start == b"[":
        return CF_SENML_JSON
    if start == b"{":
        return CF_JSON
    return CF_TEXT


def _check_envelope(device_id: str, payload: bytes, max_payload: int) -> None:
    if len(payload) > max_payload:
        raise PayloadError("too_large", f"payload larger than {max_payload} bytes")
    validate_device_id(device_id)


def _validation_diagnostic(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"invalid {where}: {first['msg']}" if where else f"invalid: {first['msg']}"


def _flat_readings(mapping: Any, now: float) -> list[ResolvedRecord]:
    if not isinstance(mapping, dict):
        raise PayloadError("bad_request", "payload is not a map of name -> value")
    if not mapping:
        raise PayloadError("bad_request", "payload map is empty")
    readings: list[ResolvedRecord] = []
    for name, value in mapping.items():
        if not isinstance(name, str):
            raise PayloadError("bad_request", "map key is not a text name")
        if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
            raise PayloadError("bad_request", "map key is not a valid SenML name")
        if isinstance(value, bool):
            readings.append(ResolvedRecord(name=name, time=now, bool_value=value))
        elif isinstance(value, int | float):
            readings.append(ResolvedRecord(name=name, time=now, value=float(value)))
        elif isinstance(value, str):
            readings.append(ResolvedRecord(name=name, time=now, string_value=value))
        elif isinstance(value, bytes):
            readings.append(
                ResolvedRecord(name=name, time=now, data_value=encode_data_value(value))
            )
        else:
            raise PayloadError("bad_request", f"value of {name[:20]!r} is not a scalar")
    return readings


def _records(payload: bytes, detected: int, now: float) -> list[ResolvedRecord]:
    """Decode and resolve by (given or detected) Content-Format; None for an unknown one."""
    if detected in (CF_SENML_CBOR, CF_CBOR):
        decoded = decode_cbor(payload)
    else:
        decoded = decode_json_strict(payload)
    if isinstance(decoded, list | dict) and len(decoded) > MAX_READINGS:
        raise PayloadError("too_large", f"more than {MAX_READINGS} readings")
    if detected == CF_SENML_CBOR:
        return resolve_senml(decoded, now=now, representation="cbor")
    if detected == CF_SENML_JSON:
        return resolve_senml(decoded, now=now, representation="json")
    return _flat_readings(decoded, now)


_TELEMETRY_FORMATS: Final = frozenset({CF_SENML_CBOR, CF_SENML_JSON, CF_CBOR, CF_JSON})


def normalise_telemetry(
    device_id: str,
    payload: bytes,
    content_format: int | None,
    *,
    source: Source,
    now: float,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> TelemetryBatch:
    """Decode and resolve one telemetry payload of ``device_id`` received at ``now``."""
    _check_envelope(device_id, payload, max_payload)
    detected = detect_format(payload) if content_format is None else content_format
    if detected not in _TELEMETRY_FORMATS:
        if content_format is None:
            raise PayloadError("bad_request", "payload is neither CBOR nor JSON")
        raise PayloadError(
            "unsupported_content_format",
            f"content-format {content_format} is not 50, 60, 110 or 112",
        )
    records = _records(payload, detected, now)
    try:
        # One validation of the whole batch from plain data: a Reading built first would be
        # validated again as part of the batch.
        return TelemetryBatch.model_validate(
            {
                "device_id": device_id,
                "readings": [
                    {
                        "device_id": device_id,
                        "name": record.name,
                        "value": record.value,
                        "string_value": record.string_value,
                        "bool_value": record.bool_value,
                        "data_value": record.data_value,
                        "unit": record.unit,
                        "time": record.time,
                        "sum": record.sum,
                    }
                    for record in records
                ],
                "received_at": now,
                "source": source,
                "content_format": content_format,
            }
        )
    except ValidationError as exc:
        raise PayloadError("bad_request", _validation_diagnostic(exc)) from None


def _command_text(value: Any) -> str:
    if not isinstance(value, dict):
        raise PayloadError("bad_request", 'command is not a map {"text": ...}')
    if set(value) != {"text"}:
        raise PayloadError("bad_request", 'command map must have exactly the key "text"')
    text = value["text"]
    if not isinstance(text, str):
        raise PayloadError("bad_request", "command text is not a string")
    return text


def _utf8_text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("bad_request", "command text is not valid UTF-8") from None


def _sniffed_command_text(payload: bytes) -> str:
    """No Content-Format: a CBOR map or JSON object is a command map, anything else is text."""
    decoders = {CF_CBOR: decode_cbor, CF_JSON: decode_json_strict}
    decode = decoders.get(detect_format(payload))
    if decode is not None:
        try:
            value = decode(payload)
        except PayloadError:
            value = None
        if isinstance(value, dict):
            return _command_text(value)
    return _utf8_text(payload)


def normalise_command(
    device_id: str,
    payload: bytes,
    content_format: int | None,
    *,
    source: Source,
    now: float,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> TextCommand:
    """Decode one text command of ``device_id`` received at ``now``."""
    _check_envelope(device_id, payload, max_payload)
    if content_format is None:
        text = _sniffed_command_text(payload)
    elif content_format == CF_TEXT:
        text = _utf8_text(payload)
    elif content_format == CF_JSON:
        text = _command_text(decode_json_strict(payload))
    elif content_format == CF_CBOR:
        text = _command_text(decode_cbor(payload))
    else:
        raise PayloadError(
            "unsupported_content_format", f"content-format {content_format} is not 0, 50 or 60"
        )
    try:
        return TextCommand(device_id=device_id, text=text, received_at=now, source=source)
    except ValidationError as exc:
        raise PayloadError("bad_request", _validation_diagnostic(exc)) from None
