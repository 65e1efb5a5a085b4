"""Property-based tests of payload normalisation.

What holds, precisely:

* Totality: for any payload (random bytes, or random CBOR/JSON documents, up to 2 KiB) and any
  Content-Format, `normalise_telemetry` and `normalise_command` return a valid model or raise
  PayloadError, nothing else; so do `decode_cbor` and `decode_json_strict`.
* Decoder round trip: a document within the decoders' limits (depth <= 8, integers within
  ±(2**53-1), finite floats, integer/text/byte-string map keys) decodes back to itself.
* SenML round trip: a generated SenML Pack, encoded by cbor2 as SenML-CBOR (or by json as
  SenML-JSON), normalises to readings whose names, values, units, times and sums are the ones
  an independent application of the RFC 8428 rules to the generated records gives.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import struct
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.pipeline import (
    CF_CBOR,
    CF_JSON,
    CF_SENML_CBOR,
    CF_SENML_JSON,
    CF_TEXT,
    PayloadError,
    decode_cbor,
    decode_json_strict,
    normalise_command,
    normalise_telemetry,
)
from gateway.pipeline.cbor import decode_cbor_scanned
from gateway.pipeline.cbor_onepass import NOT_PLAIN, decode_plain
from schemas import TelemetryBatch, TextCommand

NOW = 1_700_000_000.0
SAFE = 2**53 - 1
PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

content_formats = st.sampled_from(
    [None, CF_TEXT, CF_JSON, CF_CBOR, CF_SENML_JSON, CF_SENML_CBOR, 42, 65535]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-SAFE, SAFE),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
keys = st.one_of(st.text(max_size=8), st.integers(-10, 10), st.binary(max_size=4))


def documents(key_strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nested lists and maps of scalars, at most 8 deep (each extend adds one level)."""
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(key_strategy, children, max_size=4),
        ),
        max_leaves=12,
    )


def encoded_documents() -> st.SearchStrategy[bytes]:
    """Random CBOR and JSON documents."""
    cbor_docs = documents(keys).map(cbor2.dumps)
    json_docs = documents(st.text(max_size=8)).map(lambda doc: json.dumps(doc).encode())
    return st.one_of(cbor_docs, json_docs)


# ------------------------------------------------------------------------------ SenML packs

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9:./_-]{0,15}", fullmatch=True)
units = st.sampled_from(["Cel", "V", "A", "%RH", "/", "J", "m/s"])
numbers = st.one_of(
    st.integers(-(10**12), 10**12), st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)
)
values = st.one_of(
    st.tuples(st.just("v"), numbers),
    st.tuples(st.just("vs"), st.text(max_size=12)),
    st.tuples(st.just("vb"), st.booleans()),
    st.tuples(st.just("vd"), st.binary(max_size=12)),
)


@st.composite
def senml_packs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A valid SenML Pack in JSON labels, vd as bytes: base fields on the first record only."""
    first: dict[str, Any] = {}
    for label, strategy in [
        ("bn", names.map(lambda name: name + ":")),
        ("bt", st.one_of(st.floats(1.3e9, 2e9), st.integers(-1000, 0))),
        ("bu", units),
        ("bv", numbers),
        ("bs", numbers),
        ("bver", st.integers(1, 10)),
    ]:
        if draw(st.booleans()):
            first[label] = draw(strategy)
    pack = []
    for index in range(draw(st.integers(1, 6))):
        record = dict(first) if index == 0 else {}
        if "bn" not in record or draw(st.booleans()):
            record["n"] = draw(names)
        if draw(st.booleans()):
            record["u"] = draw(units)
        if draw(st.booleans()):
            record["t"] = draw(st.integers(-3600, 3600))
        value = draw(st.one_of(st.none(), values)) if draw(st.booleans()) else draw(values)
        if value is not None:
            record[value[0]] = value[1]
        if value is None or draw(st.booleans()):
            record["s"] = draw(numbers)
        pack.append(record)
    return pack


def expected_readings(pack: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """RFC 8428 §4.6 applied to a Pack whose base fields are all in its first record."""
    base = pack[0]
    result = []
    for record in pack:
        time = base.get("bt", 0) + record.get("t", 0)
        if time < 2**28:
            time += NOW
        value = None
        if "v" in record:
            value = float(base.get("bv", 0)) + float(record["v"])
        total = None
        if "s" in record or "bs" in base:
            total = float(base.get("bs", 0)) + float(record.get("s", 0))
        data = record.get("vd")
        result.append(
            (
                base.get("bn", "") + record.get("n", ""),
                float(time),
                record.get("u", base.get("bu")),
                value,
                record.get("vs"),
                record.get("vb"),
                None if data is None else base64.urlsafe_b64encode(data).rstrip(b"=").decode(),
                total,
            )
        )
    result.sort(key=lambda reading: reading[1])
    return result


def as_tuples(batch: TelemetryBatch) -> list[tuple[Any, ...]]:
    return [
        (
            r.name,
            r.time,
            r.unit,
            r.value,
            r.string_value,
            r.bool_value,
            r.data_value,
            r.sum,
        )
        for r in batch.readings
    ]


def to_cbor_labels(pack: list[dict[str, Any]]) -> list[dict[int, Any]]:
    labels = {
        "bver": -1, "bn": -2, "bt": -3, "bu": -4, "bv": -5, "bs": -6,
        "n": 0, "u": 1, "v": 2, "vs": 3, "vb": 4, "s": 5, "t": 6, "ut": 7, "vd": 8,
    }  # fmt: skip
    return [{labels[label]: value for label, value in record.items()} for record in pack]


def to_json_text(pack: list[dict[str, Any]]) -> bytes:
    def encode(value: Any) -> Any:
        if isinstance(value, bytes):
            return base64.urlsafe_b64encode(value).rstrip(b"=").decode()
        return value

    return json.dumps([{k: encode(v) for k, v in record.items()} for record in pack]).encode()


def same(actual: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> bool:
    if len(actual) != len(expected):
        return False
    for got, want in zip(actual, expected, strict=True):
        if not math.isclose(got[1], want[1], rel_tol=0, abs_tol=1e-6):
            return False
        if got[:1] + got[2:] != want[:1] + want[2:]:
            return False
    return True


def mangled(data: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """The data as is, or cut short by up to 64 bytes and extended by up to 4 random bytes."""
    cut = st.tuples(data, st.integers(0, 64), st.binary(max_size=4)).map(
        lambda parts: parts[0][: max(0, len(parts[0]) - parts[1])] + parts[2]
    )
    return st.one_of(data, cut).filter(lambda payload: len(payload) <= 2048)


payloads = st.one_of(
    st.binary(max_size=2048),
    mangled(encoded_documents()),
    mangled(senml_packs().map(lambda pack: cbor2.dumps(to_cbor_labels(pack)))),
    mangled(senml_packs().map(to_json_text)),
)


@PROFILE
@given(payload=payloads, content_format=content_formats)
def test_normalise_is_total(payload: bytes, content_format: int | None) -> None:
    """Any payload with any Content-Format becomes a valid model or raises PayloadError."""
    for entry in (normalise_telemetry, normalise_command):
        try:
            result = entry("dev-1", payload, content_format, source="coap", now=NOW)
        except PayloadError as error:
            assert error.kind in ("bad_request", "unsupported_content_format", "too_large")
            assert len(error.diagnostic) <= 100 and error.diagnostic.isascii()
        else:
            assert isinstance(result, TelemetryBatch | TextCommand)
            # A model that validated also serialises: no NaN, no lone surrogates.
            type(result).model_validate_json(result.model_dump_json())


@PROFILE
@given(payload=payloads)
def test_decoders_are_total(payload: bytes) -> None:
    """decode_cbor and decode_json_strict return a value or raise PayloadError, nothing else."""
    for decode in (decode_cbor, decode_json_strict):
        try:
            decode(payload)
        except PayloadError as error:
            assert error.kind == "bad_request"


@PROFILE
@given(document=documents(keys))
def test_cbor_round_trip(document: Any) -> None:
    """A document within the limits, encoded by cbor2, decodes back to itself."""
    assert decode_cbor(cbor2.dumps(document)) == document


@PROFILE
@given(document=documents(st.text(max_size=8)))
def test_json_round_trip(document: Any) -> None:
    """A document within the limits, encoded by json, decodes back to itself."""
    assert decode_json_strict(json.dumps(document).encode()) == document


@PROFILE
@given(pack=senml_packs())
def test_senml_cbor_round_trip(pack: list[dict[str, Any]]) -> None:
    """A generated Pack sent as SenML-CBOR normalises to exactly its resolved readings."""
    batch = normalise_telemetry(
        "dev-1", cbor2.dumps(to_cbor_labels(pack)), CF_SENML_CBOR, source="coap", now=NOW
    )
    assert same(as_tuples(batch), expected_readings(pack))


@PROFILE
@given(pack=senml_packs())
def test_senml_json_round_trip(pack: list[dict[str, Any]]) -> None:
    """The same Pack sent as SenML-JSON with no Content-Format normalises to the same readings."""
    batch = normalise_telemetry("dev-1", to_json_text(pack), None, source="mqttsn", now=NOW)
    assert same(as_tuples(batch), expected_readings(pack))


_plain_scalars = (
    st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | st.binary(max_size=8) | st.booleans() | st.none()
)
_plain_values = st.recursive(
    _plain_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.integers(-50, 50) | st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def _typed(value: object) -> object:
    """The value with every scalar's type beside it (1 == 1.0 == True would hide a mix-up)."""
    if isinstance(value, list):
        return [_typed(item) for item in value]
    if isinstance(value, dict):
        return {(type(key), key): _typed(item) for key, item in value.items()}
    return (type(value), value)


def _loose_head(major: int, argument: int, widths: st.DataObject) -> bytes:
    """A head with the argument in the shortest form or, at random, in a longer one."""
    sizes = [size for size in (0, 1, 2, 4, 8) if argument < (24 if size == 0 else 1 << (8 * size))]
    size = widths.draw(st.sampled_from(sizes))
    if size == 0:
        return bytes([major << 5 | argument])
    info = {1: 24, 2: 25, 4: 26, 8: 27}[size]
    return bytes([major << 5 | info]) + argument.to_bytes(size, "big")


def _loose_cbor(value: object, widths: st.DataObject) -> bytes:
    """Valid CBOR for a plain value, not always in the shortest form (cbor2 always is)."""
    if value is None or isinstance(value, bool):
        return {None: b"\xf6", False: b"\xf4", True: b"\xf5"}[value]
    if isinstance(value, int):
        major, argument = (0, value) if value >= 0 else (1, -1 - value)
        return _loose_head(major, argument, widths)
    if isinstance(value, float):
        forms = [b"\xfb" + struct.pack(">d", value)]
        for code, fmt in ((b"\xfa", ">f"), (b"\xf9", ">e")):
            with contextlib.suppress(OverflowError, struct.error):
                if struct.unpack(fmt, struct.pack(fmt, value))[0] == value:
                    forms.append(code + struct.pack(fmt, value))
        return widths.draw(st.sampled_from(forms))
    if isinstance(value, bytes | str):
        raw = value if isinstance(value, bytes) else value.encode()
        return _loose_head(2 if isinstance(value, bytes) else 3, len(raw), widths) + raw
    if isinstance(value, list):
        return _loose_head(4, len(value), widths) + b"".join(
            _loose_cbor(item, widths) for item in value
        )
    assert isinstance(value, dict)
    return _loose_head(5, len(value), widths) + b"".join(
        _loose_cbor(key, widths) + _loose_cbor(item, widths) for key, item in value.items()
    )


@settings(max_examples=400, deadline=None)
@given(_plain_values, st.data())
def test_one_pass_decoder_serves_plain_items_as_the_scanner_would(
    value: object, widths: st.DataObject
) -> None:
    """A plain item within the limits, in any head width, is decoded by the one-pass decoder
    (not left to the scanner) to exactly - types included - what the scanner path gives."""
    encoded = _loose_cbor(value, widths)
    decoded = decode_plain(encoded, 8)
    try:
        decode_cbor_scanned(encoded, 8)
    except PayloadError:  # only nesting deeper than 8 can make a generated value invalid
        assert decoded is NOT_PLAIN
        return
    assert decoded is not NOT_PLAIN
    assert _typed(decoded) == _typed(decode_cbor_scanned(encoded, 8))
    assert _typed(decode_cbor(encoded)) == _typed(decoded)


@settings(max_examples=600, deadline=None)
@given(payloads | st.integers(-(2**64), 2**64 - 1).map(cbor2.dumps))
def test_one_pass_decoder_never_accepts_what_the_scanner_refuses(payload: bytes) -> None:
    """On any bytes the one-pass decoder declines, or agrees with the scanner path."""
    decoded = decode_plain(payload, 8)
    if decoded is NOT_PLAIN:
        return
    assert _typed(decode_cbor_scanned(payload, 8)) == _typed(decoded)


@pytest.mark.parametrize(
    ("encoded", "why"),
    [
        (b"\xa2\x01\x02\x01\x03", "duplicate key"),
        (b"\x01\x02", "trailing bytes"),
        (b"\x9f\x01\xff", "indefinite length"),
        (b"\xc4\x82\x21\x19\x6a\xb3", "tag (decimal fraction: the scanner path's)"),
        (b"\x1b\x00\x20\x00\x00\x00\x00\x00\x00", "integer beyond 2**53 - 1"),
        (b"\x3b\x00\x1f\xff\xff\xff\xff\xff\xff", "integer -2**53"),
        (b"\xf9\x7c\x00", "infinity"),
        (b"\xf7", "undefined"),
        (b"\x62\xc3\x28", "invalid UTF-8"),
        (b"\x85\x01", "array longer than the bytes left"),
        (b"\x81" * 9 + b"\x01", "nested deeper than 8"),
    ],
)
def test_one_pass_decoder_declines(encoded: bytes, why: str) -> None:
    assert decode_plain(encoded, 8) is NOT_PLAIN, why


@pytest.mark.parametrize("value", [2**53 - 1, -(2**53 - 1), 0, -1, 23, 24, -24, -25, 65536])
def test_one_pass_decoder_takes_integers_up_to_the_limit(value: int) -> None:
    encoded = cbor2.dumps(value)
    assert decode_plain(encoded, 8) == value == decode_cbor_scanned(encoded, 8)
