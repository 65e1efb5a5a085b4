"""SenML resolution (RFC 8428 §4.6): the RFC's examples in JSON and CBOR, base fields, time
rules and every refusal."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from typing import Any

import cbor2
import pytest

from gateway.pipeline.cbor import PayloadError, decode_cbor
from gateway.pipeline.senml import CBOR_LABELS, RELATIVE_TIME_LIMIT, resolve_senml
from tests.vectors.senml_rfc8428 import (
    CBOR_DIAGNOSTIC,
    CBOR_EXAMPLE,
    CURRENT_WITH_HISTORY_EXPECTED,
    NOW,
    VECTORS,
    SenmlVector,
)

CBOR_LABEL_OF = {label: key for key, label in CBOR_LABELS.items()}


def to_cbor_pack(pack: list[dict[str, Any]]) -> list[dict[Any, Any]]:
    """The SenML-CBOR form of a SenML-JSON Pack: integer labels, vd as a byte string."""
    converted = []
    for record in pack:
        out: dict[Any, Any] = {}
        for label, value in record.items():
            if label == "vd":
                out[CBOR_LABEL_OF[label]] = base64.urlsafe_b64decode(
                    value + "=" * (-len(value) % 4)
                )
            else:
                out[CBOR_LABEL_OF.get(label, label)] = value
        converted.append(out)
    return converted


def assert_resolves_to(records: list[Any], expected: tuple[dict[str, Any], ...]) -> None:
    got = [asdict(record) for record in records]
    assert len(got) == len(expected)
    for actual, wanted in zip(got, expected, strict=True):
        assert actual["time"] == pytest.approx(wanted["time"], abs=1e-6, rel=0)
        assert {**actual, "time": 0} == {**wanted, "time": 0}


def resolve_json(pack: list[dict[str, Any]], now: float = NOW) -> list[Any]:
    return resolve_senml(pack, now=now, representation="json")


def refused(pack: Any, match: str, representation: str = "json") -> PayloadError:
    with pytest.raises(PayloadError, match=match) as info:
        resolve_senml(pack, now=NOW, representation=representation)  # type: ignore[arg-type]
    assert info.value.kind == "bad_request"
    return info.value


VECTOR_IDS = [f"{vector.section} {vector.title}" for vector in VECTORS]


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_rfc_vector_json(vector: SenmlVector) -> None:
    """Each RFC 8428 example in SenML-JSON resolves to the expected records."""
    assert_resolves_to(resolve_json(json.loads(vector.pack_json), vector.now), vector.expected)


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_rfc_vector_cbor(vector: SenmlVector) -> None:
    """Each RFC 8428 example, encoded as SenML-CBOR, resolves to the same records."""
    data = cbor2.dumps(to_cbor_pack(json.loads(vector.pack_json)))
    records = resolve_senml(decode_cbor(data), now=vector.now, representation="cbor")
    assert_resolves_to(records, vector.expected)


def test_rfc_cbor_example_bytes() -> None:
    """The §6 hex dump decodes to the §6 diagnostic notation and resolves like §5.1.2."""
    decoded = decode_cbor(CBOR_EXAMPLE)
    assert decoded == CBOR_DIAGNOSTIC
    records = resolve_senml(decoded, now=NOW, representation="cbor")
    assert_resolves_to(records, CURRENT_WITH_HISTORY_EXPECTED)


def test_rfc_cbor_example_is_the_json_example() -> None:
    """The §6 bytes are the §5.1.2 Pack in CBOR, but for an explicit t of 0 in the last record."""
    vector = next(vector for vector in VECTORS if vector.cbor is not None)
    assert vector.cbor == CBOR_EXAMPLE
    pack = to_cbor_pack(json.loads(vector.pack_json))
    pack[-1][CBOR_LABEL_OF["t"]] = 0
    assert decode_cbor(CBOR_EXAMPLE) == pack


def test_base_fields_carry_forward_until_changed() -> None:
    """bn, bt, bu, bv and bs apply to their record and later ones until a record changes them."""
    pack = [
        {"bn": "a:", "bt": 2e9, "bu": "Cel", "bv": 10, "bs": 100, "n": "x", "v": 1},
        {"n": "y", "v": 2, "s": 5},
        {"bn": "b:", "bv": 20, "n": "x", "v": 3, "u": "K"},
        {"bu": "V", "bs": 0, "n": "z", "t": 1, "v": 4},
    ]
    got = [asdict(record) for record in resolve_json(pack)]
    assert [(r["name"], r["time"], r["unit"], r["value"], r["sum"]) for r in got] == [
        ("a:x", 2e9, "Cel", 11.0, 100.0),
        ("a:y", 2e9, "Cel", 12.0, 105.0),
        ("b:x", 2e9, "K", 23.0, 100.0),
        ("b:z", 2e9 + 1, "V", 24.0, 0.0),
    ]


def test_base_value_applies_only_to_numeric_values() -> None:
    """bv is added to v and leaves string, boolean and data values alone."""
    pack = [{"bv": 5, "n": "s", "vs": "on"}, {"n": "b", "vb": True}, {"n": "n", "v": 1}]
    got = resolve_json(pack)
    assert [(r.value, r.string_value, r.bool_value) for r in got] == [
        (None, "on", None),
        (None, None, True),
        (6.0, None, None),
    ]


def test_sum_without_value_and_without_base_sum() -> None:
    """A record with only a sum resolves with no value; without s or bs there is no sum."""
    got = resolve_json([{"n": "energy", "u": "J", "s": 42.5}, {"n": "power", "v": 1}])
    assert (got[0].value, got[0].sum) == (None, 42.5)
    assert got[1].sum is None


def test_base_only_record_sets_bases_for_later_records() -> None:
    """A record with only base fields (§5.1.7) yields nothing but applies to later records."""
    got = resolve_json([{"bn": "dev:", "bu": "%"}, {"n": "level", "v": 50}])
    assert [(r.name, r.unit) for r in got] == [("dev:level", "%")]


def test_name_may_come_from_base_name_alone() -> None:
    """Without n, the base name is the whole name."""
    assert resolve_json([{"bn": "urn:dev:mac:0024befffe804ff1", "v": 1}])[0].name == (
        "urn:dev:mac:0024befffe804ff1"
    )


def test_explicit_empty_unit_overrides_base_unit() -> None:
    """u = "" means no unit even when a base unit is in force."""
    got = resolve_json([{"bu": "Cel", "n": "a", "v": 1}, {"n": "b", "u": "", "v": 2}])
    assert [r.unit for r in got] == ["Cel", None]


@pytest.mark.parametrize(
    ("bt", "t", "expected"),
    [
        (None, None, NOW),
        (None, -5, NOW - 5),
        (None, 10, NOW + 10),
        (None, RELATIVE_TIME_LIMIT - 1, NOW + RELATIVE_TIME_LIMIT - 1),
        (None, RELATIVE_TIME_LIMIT, RELATIVE_TIME_LIMIT),
        (None, 1.5e9, 1.5e9),
        (1.5e9, -60, 1.5e9 - 60),
        (-100, 40, NOW - 60),
        (RELATIVE_TIME_LIMIT - 10, 10, RELATIVE_TIME_LIMIT),
        (RELATIVE_TIME_LIMIT - 10, 9, NOW + RELATIVE_TIME_LIMIT - 1),
    ],
)
def test_relative_and_absolute_times(bt: float | None, t: float | None, expected: float) -> None:
    """bt + t below 2**28 is relative to now; from 2**28 on it is absolute (§4.5.3)."""
    record: dict[str, Any] = {"n": "x", "v": 1}
    if bt is not None:
        record["bt"] = bt
    if t is not None:
        record["t"] = t
    assert resolve_json([record])[0].time == expected


def test_records_come_out_in_chronological_order() -> None:
    """Resolved records are sorted by time, stably for equal times (§4.6)."""
    pack = [
        {"bt": 2e9, "n": "c", "v": 3, "t": 10},
        {"n": "a", "v": 1, "t": -10},
        {"n": "b1", "v": 2},
        {"n": "b2", "v": 2},
    ]
    assert [r.name for r in resolve_json(pack)] == ["a", "b1", "b2", "c"]


def test_data_values() -> None:
    """vd is base64url without padding in JSON, bytes in CBOR; both resolve to base64url."""
    assert resolve_json([{"n": "d", "vd": ""}])[0].data_value == ""
    assert resolve_json([{"n": "d", "vd": "-_8"}])[0].data_value == "-_8"
    cbor_pack = [{0: "d", 8: b"\xfb\xff"}]
    assert resolve_senml(cbor_pack, now=NOW, representation="cbor")[0].data_value == "-_8"


def test_unknown_labels_are_ignored() -> None:
    """Unknown labels not ending in "_" are ignored in both representations."""
    assert resolve_json([{"n": "x", "v": 1, "foo": {"nested": [1]}, "ut_x": 1}])[0].value == 1
    cbor_pack = [{0: "x", 2: 1, 99: "?", -99: 0, "ext": True}]
    assert resolve_senml(cbor_pack, now=NOW, representation="cbor")[0].value == 1


def test_update_time_is_checked_and_dropped() -> None:
    """ut must be a number and does not appear in the resolved record."""
    assert resolve_json([{"n": "x", "v": 1, "ut": 60}])[0].value == 1
    refused([{"n": "x", "v": 1, "ut": "60"}], "ut has the wrong type")


def test_bver_up_to_ten_is_accepted() -> None:
    """Versions 1 to 10 are understood; a repeated equal version is fine."""
    assert resolve_json([{"bver": 10, "n": "x", "v": 1}, {"bver": 10, "n": "y", "v": 2}])
    assert resolve_json([{"bver": 1, "n": "x", "v": 1}])


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("pack", "match"),
    [
        ([{"v": 1}], "record 0: empty name"),
        ([{"bn": "", "n": "", "v": 1}], "record 0: empty name"),
        ([{"n": "temp reading", "v": 1}], "outside RFC 8428"),
        ([{"n": "-temp", "v": 1}], "outside RFC 8428"),
        ([{"bn": "dev:", "n": "temp?", "v": 1}], "outside RFC 8428"),
        ([{"n": "t\u00e9", "v": 1}], "outside RFC 8428"),
        ([{"n": "x" * 257, "v": 1}], "longer than 256"),
        ([{"n": "x", "u": "u" * 65, "v": 1}], "unit longer than 64"),
    ],
)
def test_name_and_unit_errors(pack: list[dict[str, Any]], match: str) -> None:
    """Empty names, names outside the §4.5.1 character set and overlong names are refused."""
    refused(pack, match)


def test_must_understand_label_json() -> None:
    """An unknown JSON label ending in "_" is an error (§4.4)."""
    error = refused([{"n": "x", "v": 1, "crit_": 1}], "must-understand label 'crit_'")
    assert error.diagnostic.startswith("SenML record 0:")


def test_must_understand_label_cbor() -> None:
    """An unknown CBOR text label ending in "_" is an error as well."""
    refused([{0: "x", 2: 1, "crit_": 1}], "must-understand", "cbor")


@pytest.mark.parametrize(
    "pack",
    [
        [{"n": "x"}],
        [{"n": "x", "u": "Cel"}],
        [{"bs": 5, "n": "x"}],
        [{"n": "a", "v": 1}, {"n": "x", "t": 5}],
    ],
)
def test_missing_value(pack: list[dict[str, Any]]) -> None:
    """A record with a regular field but no value and no sum of its own is refused."""
    refused(pack, "no value and no sum")


@pytest.mark.parametrize(
    "pack", [[{"n": "x", "v": 1, "vs": "1"}], [{"n": "x", "vb": True, "vd": "AA"}]]
)
def test_two_values(pack: list[dict[str, Any]]) -> None:
    """A record with two value fields is refused."""
    refused(pack, "more than one value field")


@pytest.mark.parametrize(
    ("pack", "match"),
    [
        ([{"bver": 11, "n": "x", "v": 1}], "bver 11 is newer than 10"),
        ([{"bver": 0, "n": "x", "v": 1}], "not a positive integer"),
        ([{"bver": 5.0, "n": "x", "v": 1}], "bver has the wrong type"),
        ([{"bver": True, "n": "x", "v": 1}], "bver has the wrong type"),
        ([{"bver": 5, "n": "x", "v": 1}, {"bver": 6, "n": "y", "v": 1}], "different versions"),
        ([{"n": "x", "v": 1}, {"bver": 5, "n": "y", "v": 1}], "record 1: .*different versions"),
    ],
)
def test_version_errors(pack: list[dict[str, Any]], match: str) -> None:
    """bver above 10, not a positive integer, or differing within a Pack is refused."""
    refused(pack, match)


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"n": "x", "v": "1"}, "v"),
        ({"n": "x", "v": True}, "v"),
        ({"n": "x", "vb": 1}, "vb"),
        ({"n": "x", "vs": 1}, "vs"),
        ({"n": 1, "v": 1}, "n"),
        ({"bn": ["a"], "v": 1}, "bn"),
        ({"n": "x", "u": 1, "v": 1}, "u"),
        ({"n": "x", "t": "now", "v": 1}, "t"),
        ({"n": "x", "bt": None, "v": 1}, "bt"),
        ({"n": "x", "s": "1"}, "s"),
    ],
)
def test_wrong_types(record: dict[str, Any], field: str) -> None:
    """A field whose value has the wrong JSON type is refused, naming the field."""
    refused([record], f"{field} has the wrong type")


@pytest.mark.parametrize("vd", ["aGk=", "a+b/", "a", "aGkgC g"])
def test_bad_json_data_values(vd: str) -> None:
    """vd must be base64url with padding omitted."""
    refused([{"n": "x", "vd": vd}], "vd is not base64url")


def test_cbor_data_value_must_be_bytes() -> None:
    """In SenML-CBOR vd is a byte string; a text string is refused (§6)."""
    refused([{0: "x", 8: "aGk"}], "vd has the wrong type", "cbor")


def test_cbor_text_labels_are_extensions_not_fields() -> None:
    """In SenML-CBOR, a text "v" is an (ignored) extension label, so the record has no value."""
    refused([{0: "x", "v": 1}], "no value and no sum", "cbor")


def test_json_integer_labels_are_not_fields() -> None:
    """JSON labels are text; an integer key in a JSON-representation Pack is ignored."""
    refused([{"n": "x", 2: 1}], "no value and no sum")


@pytest.mark.parametrize(
    ("pack", "match"),
    [
        ({"n": "x", "v": 1}, "not an array"),
        ([], "no records"),
        ([[{"n": "x"}]], "record 0: not a map"),
        ([{"bn": "x"}], "no record with a value"),
        ([{b"n": "x", 2: 1}], "label is not text or an integer"),
    ],
)
def test_pack_shape_errors(pack: Any, match: str) -> None:
    """A Pack that is not a non-empty array of maps with a value is refused."""
    refused(pack, match, "cbor")


@pytest.mark.parametrize(
    "record",
    [
        {"n": "x", "bv": 1e308, "v": 1e308},
        {"n": "x", "bs": -1e308, "s": -1e308},
        {"n": "x", "bt": 1e308, "t": 1e308, "v": 1},
    ],
)
def test_overflow_is_refused(record: dict[str, Any]) -> None:
    """Base and regular values whose sum overflows a double are refused."""
    refused([record], "overflows")


def test_diagnostics_are_short_and_safe() -> None:
    """A diagnostic quoting a long, non-ASCII label stays within 100 printable ASCII chars."""
    error = refused([{"n": "x", "v": 1, "\u00e9\n" * 80 + "_": 1}], "must-understand")
    assert len(error.diagnostic) <= 100
    assert error.diagnostic.isascii() and error.diagnostic.isprintable()
