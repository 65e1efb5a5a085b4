"""Resolve a SenML Pack (RFC 8428) into self-contained records, exactly as §4.6 describes.

Input is the decoded Pack: a list of records (dicts) from SenML-JSON (text labels, §5) or
SenML-CBOR (integer labels, §6 Table 4). For each record, in order:

* base fields (bn, bt, bu, bv, bs, bver) apply to that record and every later one, until a
  record carries the same base field again (§4);
* name = bn + n; it must be non-empty and use only the §4.5.1 characters (and, a limit of this
  gateway, be at most 256 characters);
* time = bt + t (each 0 when absent); a result below 2**28 is relative to ``now``, anything else
  is absolute POSIX time (§4.5.3);
* unit = u, else bu, else none (§4.5.2); an explicit empty u means "no unit";
* a record has exactly one of v, vs, vb, vd, except that a record with s may have none
  (§4.2); a numeric value is bv + v; sum = bs + s when either is present (§4.5.4);
* a record with base fields only (no n, u, v, vs, vb, vd, s, t or ut; §5.1.7's first record)
  sets those base fields for the records after it and resolves to nothing; any other record
  without a value or a sum is an error, and so is a Pack that resolves to no record at all;
* vd is base64url without padding in JSON; in CBOR it is a byte string (§6), which is re-encoded
  as base64url without padding so that both representations resolve alike;
* bver must be a positive integer no larger than 10 (the version this gateway implements), and
  the same for every record of the Pack (§4.4);
* unknown labels are ignored, except text labels ending in "_" (must-understand), which are an
  error (§4.4). Table 4 is conclusive (§6), so in SenML-CBOR the registered fields must use their
  integer labels; a text label there is an extension label, even when it reads "v";
* ut (update time) is type-checked and dropped: a resolved reading has no use for it.

The resolved records are returned in chronological order (stable, §4.6). Every violation raises
`PayloadError("bad_request", ...)` naming the record's index.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from gateway.pipeline.cbor import PayloadError
from schemas.telemetry import MAX_NAME_LENGTH, MAX_UNIT_LENGTH, SENML_NAME_PATTERN

__all__ = [
    "CBOR_LABELS",
    "RELATIVE_TIME_LIMIT",
    "SENML_VERSION",
    "ResolvedRecord",
    "encode_data_value",
    "resolve_senml",
]

SENML_VERSION: Final = 10
RELATIVE_TIME_LIMIT: Final = 2**28
"""Times (bt + t) below this are relative to "now" (RFC 8428 §4.5.3)."""

JSON_LABELS: Final = frozenset(
    {"bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"}
)
CBOR_LABELS: Final[Mapping[int, str]] = {
    -1: "bver",
    -2: "bn",
    -3: "bt",
    -4: "bu",
    -5: "bv",
    -6: "bs",
    0: "n",
    1: "u",
    2: "v",
    3: "vs",
    4: "vb",
    5: "s",
    6: "t",
    7: "ut",
    8: "vd",
}
"""RFC 8428 §6 Table 4: integer label -> field."""

_NAME = re.compile(SENML_NAME_PATTERN)
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_VALUE_FIELDS: Final = ("v", "vs", "vb", "vd")
_REGULAR_FIELDS: Final = frozenset({"n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"})

Representation = Literal["json", "cbor"]


# Not frozen, with its own __init__: one is built per record, a frozen dataclass sets each
# field through object.__setattr__ and mypyc leaves a generated __init__ interpreted (~40 ns
# compiled against ~1 us). Treat it as immutable.
@dataclass(slots=True, init=False)
class ResolvedRecord:
    """One resolved SenML record (§4.6): no base fields, absolute time, one value or a sum."""

    name: str
    time: float
    unit: str | None
    value: float | None
    string_value: str | None
    bool_value: bool | None
    data_value: str | None
    sum: float | None

    def __init__(
        self,
        name: str,
        time: float,
        *,
        unit: str | None = None,
        value: float | None = None,
        string_value: str | None = None,
        bool_value: bool | None = None,
        data_value: str | None = None,
        sum: float | None = None,
    ) -> None:
        self.name = name
        self.time = time
        self.unit = unit
        self.value = value
        self.string_value = string_value
        self.bool_value = bool_value
        self.data_value = data_value
        self.sum = sum


def encode_data_value(octets: bytes) -> str:
    """Octets as RFC 8428 writes a Data Value: base64url (RFC 4648 §5) with padding omitted."""
    return base64.urlsafe_b64encode(octets).rstrip(b"=").decode("ascii")


def _bad(index: int, diagnostic: str) -> PayloadError:
    return PayloadError("bad_request", f"SenML record {index}: {diagnostic}")


def _finite(index: int, what: str, value: float) -> float:
    if not math.isfinite(value):
        raise _bad(index, f"{what} overflows")
    return value


def _label_text(label: str) -> str:
    return repr(label[:20])


_NUMBER: Final = frozenset({int, float})
_FIELD_TYPES: Final[Mapping[str, frozenset[type]]] = {
    **{field: _NUMBER for field in ("bt", "bv", "bs", "v", "s", "t", "ut")},
    **{field: frozenset({str}) for field in ("bn", "bu", "n", "u", "vs")},
    "vb": frozenset({bool}),
    "bver": frozenset({int}),
}
"""The value types of each field (exact types: a bool is not a number, §4.3)."""
_LABELS: Final[Mapping[Representation, Mapping[Any, tuple[str, frozenset[type]]]]] = {
    "json": {
        **{label: (label, _FIELD_TYPES[label]) for label in JSON_LABELS if label != "vd"},
        "vd": ("vd", frozenset({str})),
    },
    "cbor": {
        **{
            label: (field, _FIELD_TYPES[field])
            for label, field in CBOR_LABELS.items()
            if field != "vd"
        },
        8: ("vd", frozenset({bytes})),
    },
}
"""Per representation: label -> (field, accepted value types)."""


def _fields(
    index: int, record: Mapping[Any, Any], representation: Representation
) -> dict[str, Any]:
    """The record's known fields by JSON label, type-checked; unknown ones dropped,
    must-understand ones refused."""
    labels = _LABELS[representation]
    fields: dict[str, Any] = {}
    for label, value in record.items():
        kind = type(label)
        if kind is not str and kind is not int:  # bool and float keys would alias 1, 2.0 ...
            raise _bad(index, "label is not text or an integer")
        known = labels.get(label)
        if known is not None:
            field, types = known
            if type(value) not in types:
                raise _bad(index, f"{field} has the wrong type")
            fields[field] = value
        elif kind is str and label.endswith("_"):
            raise _bad(index, f"unknown must-understand label {_label_text(label)}")
    return fields


def _data_value(index: int, value: str | bytes) -> str:
    if isinstance(value, bytes):
        return encode_data_value(value)
    if not _BASE64URL.fullmatch(value) or len(value) % 4 == 1:
        raise _bad(index, "vd is not base64url without padding")
    try:
        octets = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise _bad(index, "vd is not base64url without padding") from None
    return encode_data_value(octets)


class _Base:
    """The base fields in force, carried from record to record."""

    __slots__ = ("name", "sum", "time", "unit", "value", "version")

    def __init__(self) -> None:
        self.name = ""
        self.time = 0.0
        self.unit: str | None = None
        self.value = 0.0
        self.sum: float | None = None
        self.version: int | None = None

    def update(self, index: int, fields: Mapping[str, Any]) -> None:
        if "bver" in fields:
            version = fields["bver"]
            if version < 1:
                raise _bad(index, "bver is not a positive integer")
            if version > SENML_VERSION:
                raise _bad(index, f"bver {version} is newer than {SENML_VERSION}")
            current = SENML_VERSION if self.version is None else self.version
            if index > 0 and version != current:
                raise _bad(index, "records of one Pack have different versions")
            self.version = version
        if "bn" in fields:
            self.name = fields["bn"]
        if "bt" in fields:
            self.time = float(fields["bt"])
        if "bu" in fields:
            self.unit = fields["bu"]
        if "bv" in fields:
            self.value = float(fields["bv"])
        if "bs" in fields:
            self.sum = float(fields["bs"])


def _resolve_one(index: int, fields: Mapping[str, Any], base: _Base, now: float) -> ResolvedRecord:
    name = base.name + fields.get("n", "")
    if not name:
        raise _bad(index, "empty name (no bn and no n)")
    if len(name) > MAX_NAME_LENGTH:
        raise _bad(index, f"name longer than {MAX_NAME_LENGTH} characters")
    if not _NAME.fullmatch(name):
        raise _bad(index, "name has characters outside RFC 8428 4.5.1")

    time = _finite(index, "time", base.time + float(fields.get("t", 0.0)))
    if time < RELATIVE_TIME_LIMIT:
        time = _finite(index, "time", now + time)

    unit = fields.get("u", base.unit)
    if unit is not None and len(unit) > MAX_UNIT_LENGTH:
        raise _bad(index, f"unit longer than {MAX_UNIT_LENGTH} characters")

    values = [field for field in _VALUE_FIELDS if field in fields]
    if len(values) > 1:
        raise _bad(index, "more than one value field")
    if not values and "s" not in fields:
        raise _bad(index, "no value and no sum")

    total: float | None = None
    if "s" in fields or base.sum is not None:
        total = _finite(index, "sum", (base.sum or 0.0) + float(fields.get("s", 0.0)))

    value = string_value = bool_value = data_value = None
    if "v" in fields:
        value = _finite(index, "value", base.value + float(fields["v"]))
    elif "vs" in fields:
        string_value = fields["vs"]
    elif "vb" in fields:
        bool_value = fields["vb"]
    elif "vd" in fields:
        data_value = _data_value(index, fields["vd"])

    return ResolvedRecord(
        name=name,
        time=time,
        unit=unit or None,
        value=value,
        string_value=string_value,
        bool_value=bool_value,
        data_value=data_value,
        sum=total,
    )


def resolve_senml(
    records: Any, *, now: float, representation: Representation = "json"
) -> list[ResolvedRecord]:
    """Resolve a decoded SenML Pack (§4.6); ``now`` (epoch seconds) anchors relative times.

    ``representation`` says which labels the records use: "json" (text) or "cbor" (integers).
    """
    if not isinstance(records, list):
        raise PayloadError("bad_request", "SenML Pack is not an array")
    if not records:
        raise PayloadError("bad_request", "SenML Pack has no records")
    base = _Base()
    resolved: list[ResolvedRecord] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise _bad(index, "not a map")
        fields = _fields(index, record, representation)
        base.update(index, fields)
        if _REGULAR_FIELDS.isdisjoint(fields):
            continue  # base fields only, as in §5.1.7: they apply to the records after it
        resolved.append(_resolve_one(index, fields, base, now))
    if not resolved:
        raise PayloadError("bad_request", "SenML Pack has no record with a value")
    if len(resolved) > 1:
        resolved.sort(key=_by_time)
    return resolved


def _by_time(record: ResolvedRecord) -> float:
    return record.time
