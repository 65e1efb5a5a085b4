"""Payload normalisation: every Content-Format path, MQTT-SN sniffing, the strict CBOR and JSON
decoders, device ids, text commands and every PayloadError kind."""

from __future__ import annotations

import json
import time
from typing import Any

import cbor2
import pytest

from gateway.errors import GatewayError
from gateway.pipeline import (
    CF_CBOR,
    CF_JSON,
    CF_SENML_CBOR,
    CF_SENML_JSON,
    CF_TEXT,
    PayloadError,
    decode_cbor,
    decode_json_strict,
    detect_format,
    normalise_command,
    normalise_telemetry,
    validate_device_id,
)
from gateway.pipeline.normalise import MAX_READINGS
from schemas import TelemetryBatch, TextCommand
from tests.vectors.senml_rfc8428 import CBOR_EXAMPLE, NOW, VECTORS

MULTIPLE_TYPES = next(vector for vector in VECTORS if vector.section == "5.1.5")
SELF_DESCRIBE = b"\xd9\xd9\xf7"


def telemetry(
    payload: bytes, content_format: int | None, device_id: str = "dev-1", **kwargs: Any
) -> TelemetryBatch:
    return normalise_telemetry(
        device_id, payload, content_format, source=kwargs.pop("source", "coap"), now=NOW, **kwargs
    )


def command(
    payload: bytes, content_format: int | None, device_id: str = "dev-1", **kwargs: Any
) -> TextCommand:
    return normalise_command(
        device_id, payload, content_format, source=kwargs.pop("source", "mqttsn"), now=NOW, **kwargs
    )


def refused(kind: str, match: str, call: Any, *args: Any, **kwargs: Any) -> PayloadError:
    with pytest.raises(PayloadError, match=match) as info:
        call(*args, **kwargs)
    assert info.value.kind == kind
    assert len(info.value.diagnostic) <= 100
    return info.value


# ---------------------------------------------------------------------------------- telemetry


def test_senml_cbor() -> None:
    """Content-Format 112: the RFC §6 bytes become a batch of seven readings of the device."""
    batch = telemetry(CBOR_EXAMPLE, CF_SENML_CBOR)
    assert batch.device_id == "dev-1" and batch.content_format == CF_SENML_CBOR
    assert batch.source == "coap" and batch.received_at == NOW
    assert len(batch.readings) == 7
    first = batch.readings[0]
    assert first.device_id == "dev-1"
    assert first.name == "urn:dev:ow:10e2073a0108006:current"
    assert (first.value, first.unit) == (1.2, "A")
    assert first.time == pytest.approx(1276020071.001)


def test_senml_json() -> None:
    """Content-Format 110: every SenML value type becomes the matching reading field."""
    batch = telemetry(MULTIPLE_TYPES.pack_json.encode(), CF_SENML_JSON, source="mqttsn")
    by_name = {reading.name.rsplit(":", 1)[1]: reading for reading in batch.readings}
    assert by_name["temp"].value == 23.1 and by_name["temp"].unit == "Cel"
    assert by_name["label"].string_value == "Machine Room"
    assert by_name["open"].bool_value is False
    assert by_name["nfv-reader"].data_value == "aGkgCg"
    assert all(reading.time == NOW for reading in batch.readings)
    assert batch.source == "mqttsn"


def test_cbor_map() -> None:
    """Content-Format 60: a flat map of name -> number, text, boolean or bytes, stamped now."""
    payload = cbor2.dumps({"temp": 21.5, "count": 3, "mode": "eco", "open": True, "raw": b"hi"})
    readings = {r.name: r for r in telemetry(payload, CF_CBOR).readings}
    assert readings["temp"].value == 21.5
    assert readings["count"].value == 3.0
    assert readings["mode"].string_value == "eco"
    assert readings["open"].bool_value is True
    assert readings["raw"].data_value == "aGk"
    assert all(r.time == NOW and r.unit is None for r in readings.values())


def test_json_object() -> None:
    """Content-Format 50: a flat JSON object of name -> number, text or boolean."""
    batch = telemetry(b'{"temp": -4.5, "door": false, "state": "ok"}', CF_JSON)
    assert [(r.name, r.value, r.bool_value, r.string_value) for r in batch.readings] == [
        ("temp", -4.5, None, None),
        ("door", None, False, None),
        ("state", None, None, "ok"),
    ]


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b'{"temp": {"c": 1}}', "not a scalar"),
        (b'{"temp": [1]}', "not a scalar"),
        (b'{"temp": null}', "not a scalar"),
        (b"{}", "map is empty"),
        (b"[1]", "not a map of name"),
        (b'{"bad name": 1}', "not a valid SenML name"),
        (b'{"x": 1, "x": 2}', "duplicate"),
    ],
)
def test_flat_json_errors(payload: bytes, match: str) -> None:
    """Nested, null or badly named values in a flat object are bad requests (4.00)."""
    refused("bad_request", match, telemetry, payload, CF_JSON)


def test_flat_cbor_map_needs_text_keys() -> None:
    """An integer key in a flat CBOR map is a bad request."""
    refused("bad_request", "not a text name", telemetry, cbor2.dumps({1: 2.0}), CF_CBOR)


@pytest.mark.parametrize(
    ("payload", "content_format"),
    [
        (cbor2.dumps([{0: "t", 2: 1}]), CF_SENML_CBOR),
        (SELF_DESCRIBE + cbor2.dumps([{0: "t", 2: 1}]), CF_SENML_CBOR),
        (cbor2.dumps({"t": 1}), CF_CBOR),
        (b' \n[{"n":"t","v":1}]', CF_SENML_JSON),
        (b'{"t": 1}', CF_JSON),
    ],
)
def test_mqttsn_payload_without_content_format(payload: bytes, content_format: int) -> None:
    """With no Content-Format the payload is sniffed, and the batch records that it had none."""
    assert detect_format(payload) == content_format
    batch = telemetry(payload, None, source="mqttsn")
    assert batch.content_format is None
    assert [(r.name, r.value) for r in batch.readings] == [("t", 1.0)]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", CF_TEXT),
        (b"turn off the light", CF_TEXT),
        (b"\x80", CF_SENML_CBOR),
        (b"\x9f\xff", CF_SENML_CBOR),
        (b"\xa0", CF_CBOR),
        (b"\xbf\xff", CF_CBOR),
        (SELF_DESCRIBE + b"\xa0", CF_CBOR),
        (b"\t[", CF_SENML_JSON),
        (b"\r\n{", CF_JSON),
        (b"\x01", CF_TEXT),
        ("\u00e9t\u00e9".encode(), CF_TEXT),
    ],
)
def test_detect_format(payload: bytes, expected: int) -> None:
    """CBOR arrays/maps by their initial byte, JSON by its first significant character."""
    assert detect_format(payload) == expected


def test_undetectable_telemetry_is_a_bad_request() -> None:
    """A sniffed payload that is neither CBOR nor JSON is a bad request, not a format error."""
    refused("bad_request", "neither CBOR nor JSON", telemetry, b"temp=21", None)


@pytest.mark.parametrize("content_format", [CF_TEXT, 41, 111, 113, 11060])
def test_unsupported_telemetry_content_format(content_format: int) -> None:
    """Content-Formats other than 50, 60, 110 and 112 are refused as unsupported (4.15)."""
    refused("unsupported_content_format", str(content_format), telemetry, b"{}", content_format)


def test_too_large_payload() -> None:
    """A payload above max_payload is too large (4.13), before any decoding."""
    refused("too_large", "larger than 65536", telemetry, b"\xff" * 65537, CF_SENML_CBOR)
    refused("too_large", "larger than 10", telemetry, b'{"temp": 21.5}', CF_JSON, max_payload=10)
    refused("too_large", "larger than 10", command, b"x" * 11, CF_TEXT, max_payload=10)


def test_too_many_readings() -> None:
    """More than MAX_READINGS records in one payload is too large."""
    payload = cbor2.dumps([{0: "t", 2: 1}] * (MAX_READINGS + 1))
    refused("too_large", "readings", telemetry, payload, CF_SENML_CBOR)
    assert len(telemetry(cbor2.dumps([{0: "t", 2: 1}] * MAX_READINGS), 112).readings) == 4096


@pytest.mark.parametrize(
    ("payload", "content_format", "match"),
    [
        (b"", CF_SENML_CBOR, "empty payload"),
        (b"\x81", CF_SENML_CBOR, "truncated"),
        (cbor2.dumps([{0: "t", 2: 1}]) + b"\x00", CF_SENML_CBOR, "trailing"),
        (b'[{"n":"t","v":1}', CF_SENML_JSON, "invalid document"),
        (b'[{"n":"t","v":NaN}]', CF_SENML_JSON, "NaN"),
        (b'[{"n":"t","v":1,"crit_":1}]', CF_SENML_JSON, "must-understand"),
        (b'[{"n":"t"}]', CF_SENML_JSON, "no value"),
        (cbor2.dumps([{0: "t", 2: 1e308, -5: 1e308}]), CF_SENML_CBOR, "overflows"),
    ],
)
def test_malformed_telemetry(payload: bytes, content_format: int, match: str) -> None:
    """Malformed CBOR/JSON and invalid SenML are bad requests (4.00)."""
    refused("bad_request", match, telemetry, payload, content_format)


@pytest.mark.parametrize("device_id", ["d", "sensor-1.a_B", "x" * 64])
def test_valid_device_ids(device_id: str) -> None:
    """Device ids of 1-64 letters, digits, dots, underscores and hyphens are valid."""
    assert validate_device_id(device_id) == device_id
    assert telemetry(b'{"t": 1}', CF_JSON, device_id=device_id).device_id == device_id


@pytest.mark.parametrize(
    "device_id", ["", "x" * 65, "a/b", "a b", "dev+1", "d\u00e9v", "dev\n", "#", "a:b"]
)
def test_invalid_device_ids(device_id: str) -> None:
    """Empty, long, or otherwise-charactered device ids are bad requests for both entries."""
    refused("bad_request", "invalid device id", validate_device_id, device_id)
    refused("bad_request", "invalid device id", telemetry, b'{"t": 1}', CF_JSON, device_id)
    refused("bad_request", "invalid device id", command, b"hello", CF_TEXT, device_id)


# ----------------------------------------------------------------------------------- commands


@pytest.mark.parametrize(
    ("payload", "content_format"),
    [
        (b"  turn off the light\n", CF_TEXT),
        (b'{"text": "turn off the light"}', CF_JSON),
        (cbor2.dumps({"text": " turn off the light "}), CF_CBOR),
        (b"turn off the light", None),
        (b'  {"text": "turn off the light"}', None),
        (cbor2.dumps({"text": "turn off the light"}), None),
        (SELF_DESCRIBE + cbor2.dumps({"text": "turn off the light"}), None),
    ],
)
def test_command_forms(payload: bytes, content_format: int | None) -> None:
    """text/plain, JSON and CBOR {"text": ...}, given or sniffed, give the same stripped text."""
    result = command(payload, content_format)
    assert result.text == "turn off the light"
    assert (result.device_id, result.source, result.received_at) == ("dev-1", "mqttsn", NOW)


@pytest.mark.parametrize(
    "payload", [b"{lights} off", b'["lights", "off"]', b"[1]", "\u00e9teins".encode()]
)
def test_sniffed_non_map_is_text(payload: bytes) -> None:
    """Without a Content-Format, anything that is not a CBOR or JSON map is UTF-8 text."""
    assert command(payload, None).text == payload.decode().strip()


@pytest.mark.parametrize(
    ("payload", "content_format", "match"),
    [
        (b"", CF_TEXT, "invalid text"),
        (b" \t\n", None, "invalid text"),
        (b"x" * 513, CF_TEXT, "at most 512"),
        (b"\xff\xfe", CF_TEXT, "not valid UTF-8"),
        (b"\x80\x01", None, "not valid UTF-8"),
        (b'{"txt": "x"}', CF_JSON, 'exactly the key "text"'),
        (b'{"txt": "x"}', None, 'exactly the key "text"'),
        (b'{"text": "x", "lang": "en"}', CF_JSON, 'exactly the key "text"'),
        (b'{"text": 1}', CF_JSON, "not a string"),
        (cbor2.dumps({"text": b"x"}), CF_CBOR, "not a string"),
        (b'["x"]', CF_JSON, "not a map"),
        (b"turn off", CF_JSON, "invalid document"),
        (b"turn off", CF_CBOR, "CBOR"),
    ],
)
def test_command_errors(payload: bytes, content_format: int | None, match: str) -> None:
    """Empty, overlong, non-UTF-8 or wrongly shaped commands are bad requests."""
    refused("bad_request", match, command, payload, content_format)


@pytest.mark.parametrize("content_format", [CF_SENML_JSON, CF_SENML_CBOR, 42])
def test_unsupported_command_content_format(content_format: int) -> None:
    """Commands accept only Content-Formats 0, 50 and 60."""
    refused("unsupported_content_format", "is not 0, 50 or 60", command, b"x", content_format)


# --------------------------------------------------------------------------- strict decoders


def test_payload_error_shape() -> None:
    """PayloadError is a GatewayError with kind and a sanitised diagnostic of <= 100 chars."""
    error = PayloadError("too_large", "x\u00e9\n" + "y" * 200)
    assert isinstance(error, GatewayError)
    assert error.kind == "too_large"
    assert len(error.diagnostic) == 100 and error.diagnostic.startswith("x??y")
    assert error.diagnostic.endswith("...")
    assert str(error).startswith("too_large: ")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\xa2\x61a\x01\x61a\x02", "duplicate map key"),
        (b"\xa2\x01\x01\x01\x02", "duplicate map key"),
        (b"\xbf\x01\x01\x01\x02\xff", "duplicate map key"),
        (b"\x81" * 9 + b"\x00", "nested deeper than 8"),
        (b"\x9f" * 9 + b"\xff" * 9, "nested deeper than 8"),
        (b"\x1b\x00\x20\x00\x00\x00\x00\x00\x00", r"integer outside \+-\(2\*\*53-1\)"),
        (b"\x3b\x00\x20\x00\x00\x00\x00\x00\x00", "integer outside"),
        (b"\xc2\x41\x01", "tag 2 is not allowed"),
        (b"\xc1\x1a\x51\x4b\x67\xb0", "tag 1 is not allowed"),
        (b"\xd9\xd9\xf7\xd9\xd9\xf7\x01", "tag 55799 is not allowed"),
        (b"\xc4\x82\x19\x01\x91\x01", "exponent out of range"),
        (b"\xc4\x82\x01\x61a", "mantissa is not an integer"),
        (b"\xc4\x81\x01", "not \\[exponent, mantissa\\]"),
        (b"\xc4\x82\x19\x01\x2c\x1b\x00\x1f\xff\xff\xff\xff\xff\xff", "fraction too large"),
        (b"\xf7", "simple value"),
        (b"\xf0", "simple value"),
        (b"\xf8\x20", "simple value"),
        (b"\xf9\x7c\x00", "NaN or infinite"),
        (b"\xfa\x7f\xc0\x00\x00", "NaN or infinite"),
        (b"\xfb\xff\xf0\x00\x00\x00\x00\x00\x00", "NaN or infinite"),
        (b"\x5f\x41a\xff", "indefinite-length string"),
        (b"\x7f\x61a\xff", "indefinite-length string"),
        (b"\x1f", "indefinite-length integer"),
        (b"\x1c", "reserved additional information"),
        (b"\xff", "unexpected break"),
        (b"\x81\xff", "unexpected break"),
        (b"\xbf\x01\xff", "map ends after a key"),
        (b"\x62\xc3\x28", "not valid UTF-8"),
        (b"\xa1\x81\x01\x02", "map key is not an integer or a string"),
        (b"\xa1\xf5\x01", "map key is not an integer or a string"),
        (b"\x01\x02", "trailing bytes"),
        (b"", "empty payload"),
        (b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff", "truncated"),
        (b"\xbb\x00\x00\x00\x01\x00\x00\x00\x00\xa0", "truncated"),
        (b"\x5b\x00\x00\x00\x01\x00\x00\x00\x00", "truncated"),
    ],
)
def test_decode_cbor_refusals(data: bytes, match: str) -> None:
    """Every rule of the strict CBOR decoder is enforced with a bad_request PayloadError."""
    refused("bad_request", match, decode_cbor, data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x9f\x01\x02\xff", [1, 2]),
        (b"\xbf\x61a\x01\xff", {"a": 1}),
        (b"\x81" * 8 + b"\x00", [[[[[[[[0]]]]]]]]),
        (b"\xc4\x82\x21\x19\x6a\xb3", 273.15),
        (b"\xf9\x3e\x00", 1.5),
        (b"\xa3\x01\x02\x61a\x03\x41a\x04", {1: 2, "a": 3, b"a": 4}),
        (b"\x1b\x00\x1f\xff\xff\xff\xff\xff\xff", 2**53 - 1),
        (b"\x83\xf4\xf5\xf6", [False, True, None]),
        (SELF_DESCRIBE + b"\x80", []),
    ],
)
def test_decode_cbor_accepts(data: bytes, expected: Any) -> None:
    """Indefinite containers, depth 8, decimal fractions, half floats and safe integers decode."""
    result = decode_cbor(data)
    assert result == expected and type(result) is type(expected)


def test_decode_cbor_depth_limit_is_a_parameter() -> None:
    """max_depth is the caller's; a nonsensical one is a programming error (ValueError)."""
    refused("bad_request", "nested deeper than 1", decode_cbor, b"\x81\x81\x00", max_depth=1)
    assert decode_cbor(b"\x81\x81\x00", max_depth=2) == [[0]]
    with pytest.raises(ValueError, match="max_depth"):
        decode_cbor(b"\x00", max_depth=0)


def test_decoders_are_bounded_on_hostile_input() -> None:
    """Huge declared lengths and deep nesting of a 64 KiB payload are refused in well under 1 s."""
    hostile = [
        b"\x9b" + b"\xff" * 8,
        b"\x9f" * 65536,
        b"\x81" * 65536,
        b"\xbf" + b"\x00" * 65535,
        b"[" * 65536,
        b'{"a":' * 13000,
        b'"' + b"\\" * 65533 + b'"',
    ]
    for data in hostile:
        started = time.perf_counter()
        for decode in (decode_cbor, decode_json_strict):
            with pytest.raises(PayloadError):
                decode(data)
        assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b'{"a": 1, "a": 2}', "duplicate object key"),
        (b"[NaN]", "NaN is not allowed"),
        (b"[Infinity]", "Infinity is not allowed"),
        (b"[-Infinity]", "-Infinity is not allowed"),
        (b"[1e999]", "number too large"),
        (b"[9007199254740992]", "integer outside"),
        (b"[" + b"9" * 5000 + b"]", "integer outside"),
        (b'{"a": 1} x', "invalid document"),
        (b"[1]]", "invalid document"),
        (b"[" * 9 + b"]" * 9, "nested deeper than 8"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b'["\\ud800"]', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b"\xef\xbb\xbf[]", "invalid document"),
        (b"", "invalid document"),
    ],
)
def test_decode_json_refusals(data: bytes, match: str) -> None:
    """Every rule of the strict JSON decoder is enforced with a bad_request PayloadError."""
    refused("bad_request", match, decode_json_strict, data)


def test_decode_json_accepts() -> None:
    """Plain JSON, brackets inside strings and depth exactly 8 decode."""
    assert decode_json_strict(b' {"a": [1, 2.5, "x]]]", true, null]} ') == {
        "a": [1, 2.5, "x]]]", True, None]
    }
    assert decode_json_strict(b'["\\"[[[[[[[[[["]') == ['"[[[[[[[[[[']
    deep = b"[" * 8 + b"]" * 8
    assert decode_json_strict(deep) == json.loads(deep)
    assert decode_json_strict(b'["\\ud83d\\ude00"]') == ["\U0001f600"]
