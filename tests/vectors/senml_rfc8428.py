"""The SenML examples of RFC 8428 (§5.1.1-§5.1.7 and §6) with their resolved records.

Each Pack's JSON text is the RFC's own, copied from the RFC 8428 text (August 2018); only the
indentation inside the strings differs. The one incomplete example, the SensML stream of §5.1.2
that ends in "...", is the nine records the RFC shows. The §6 CBOR bytes are the RFC's hex dump.

The expected records are what RFC 8428 §4.6 resolution gives, in chronological order (stable:
records with equal times keep their Pack order). §5.1.4 is the RFC's own resolution of §5.1.3,
so that vector's expectation is parsed from the RFC's resolved text. Relative times ("now") are
resolved against `NOW`, a fixed instant; `time` values compare with a 1 µs tolerance (bt + t is
float arithmetic), every other field exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

NOW = 1_700_000_000.0
"""The gateway's "now" for every vector (2023-11-14T22:13:20Z)."""


def resolved(
    name: str,
    time: float,
    unit: str | None = None,
    *,
    value: float | None = None,
    string_value: str | None = None,
    bool_value: bool | None = None,
    data_value: str | None = None,
    sum: float | None = None,
) -> dict[str, Any]:
    """One expected resolved record, with the fields of `ResolvedRecord`."""
    return {
        "name": name,
        "time": time,
        "unit": unit,
        "value": value,
        "string_value": string_value,
        "bool_value": bool_value,
        "data_value": data_value,
        "sum": sum,
    }


@dataclass(frozen=True)
class SenmlVector:
    """One RFC example: the Pack, "now", and its resolved records."""

    section: str
    title: str
    pack_json: str
    expected: tuple[dict[str, Any], ...]
    now: float = NOW
    cbor: bytes | None = field(default=None, repr=False)
    """The RFC's own SenML-CBOR encoding of the same Pack, where it gives one."""


def _from_resolved_json(text: str) -> tuple[dict[str, Any], ...]:
    return tuple(
        resolved(record["n"], record["t"], record.get("u"), value=record["v"])
        for record in json.loads(text)
    )


# §5.1.3, resolved by the RFC in §5.1.4.
MULTIPLE_MEASUREMENTS = """
[
  {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
   "bu":"%RH","v":20},
  {"u":"lon","v":24.30621},
  {"u":"lat","v":60.07965},
  {"t":60,"v":20.3},
  {"u":"lon","t":60,"v":24.30622},
  {"u":"lat","t":60,"v":60.07965},
  {"t":120,"v":20.7},
  {"u":"lon","t":120,"v":24.30623},
  {"u":"lat","t":120,"v":60.07966},
  {"u":"%EL","t":150,"v":98},
  {"t":180,"v":21.2},
  {"u":"lon","t":180,"v":24.30628},
  {"u":"lat","t":180,"v":60.07967}
]
"""

RESOLVED_DATA = """
[
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067464e+09,
   "v":20},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067464e+09,
   "v":24.30621},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067464e+09,
   "v":60.07965},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067524e+09,
   "v":20.3},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067524e+09,
   "v":24.30622},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067524e+09,
   "v":60.07965},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067584e+09,
   "v":20.7},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067584e+09,
   "v":24.30623},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067584e+09,
   "v":60.07966},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%EL","t":1.320067614e+09,
   "v":98},
  {"n":"urn:dev:ow:10e2073a01080063","u":"%RH","t":1.320067644e+09,
   "v":21.2},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lon","t":1.320067644e+09,
   "v":24.30628},
  {"n":"urn:dev:ow:10e2073a01080063","u":"lat","t":1.320067644e+09,
   "v":60.07967}
]
"""

_OW = "urn:dev:ow:10e2073a01080063"
_OW_PREFIX = "urn:dev:ow:10e2073a01080063:"
# §5.1.2's second example (and §6) really has one digit fewer in its base name.
_OW_SHORT_PREFIX = "urn:dev:ow:10e2073a0108006:"
_BT_512 = 1.276020076001e09

CURRENT_WITH_HISTORY_EXPECTED = (
    resolved(_OW_SHORT_PREFIX + "current", _BT_512 - 5, "A", value=1.2),
    resolved(_OW_SHORT_PREFIX + "current", _BT_512 - 4, "A", value=1.3),
    resolved(_OW_SHORT_PREFIX + "current", _BT_512 - 3, "A", value=1.4),
    resolved(_OW_SHORT_PREFIX + "current", _BT_512 - 2, "A", value=1.5),
    resolved(_OW_SHORT_PREFIX + "current", _BT_512 - 1, "A", value=1.6),
    resolved(_OW_SHORT_PREFIX + "voltage", _BT_512, "V", value=120.1),
    resolved(_OW_SHORT_PREFIX + "current", _BT_512, "A", value=1.7),
)

# §6: "a dump of the CBOR example for the same sensor measurement as in Section 5.1.2".
CBOR_EXAMPLE = bytes.fromhex(
    "87a721781b75726e3a6465763a6f773a"  # 0000
    "3130653230373361303130383030363a"  # 0010
    "22fb41d303a15b001062236141200500"  # 0020
    "67766f6c7461676501615602fb405e06"  # 0030
    "6666666666a3006763757272656e7406"  # 0040
    "2402fb3ff3333333333333a300676375"  # 0050
    "7272656e74062302fb3ff4cccccccccc"  # 0060
    "cda3006763757272656e74062202fb3f"  # 0070
    "f6666666666666a3006763757272656e"  # 0080
    "74062102f93e00a3006763757272656e"  # 0090
    "74062002fb3ff999999999999aa30067"  # 00a0
    "63757272656e74060002fb3ffb333333"  # 00b0
    "333333"  # 00c0
)
"""The §6 hex dump (0xc3 = 195 bytes); its 1.5 is a half-precision float (f9 3e00)."""

VECTORS: tuple[SenmlVector, ...] = (
    SenmlVector(
        "5.1.1",
        "single data point",
        '[\n  {"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}\n]',
        (resolved(_OW, NOW, "Cel", value=23.1),),
    ),
    SenmlVector(
        "5.1.2",
        "multiple data points, now",
        """
[
  {"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},
  {"n":"current","u":"A","v":1.2}
]
""",
        (
            resolved(_OW_PREFIX + "voltage", NOW, "V", value=120.1),
            resolved(_OW_PREFIX + "current", NOW, "A", value=1.2),
        ),
    ),
    SenmlVector(
        "5.1.2",
        "current at each second of the last five",
        """
[
  {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,
   "bu":"A","bver":5,
   "n":"voltage","u":"V","v":120.1},
  {"n":"current","t":-5,"v":1.2},
  {"n":"current","t":-4,"v":1.3},
  {"n":"current","t":-3,"v":1.4},
  {"n":"current","t":-2,"v":1.5},
  {"n":"current","t":-1,"v":1.6},
  {"n":"current","v":1.7}
]
""",
        CURRENT_WITH_HISTORY_EXPECTED,
        cbor=CBOR_EXAMPLE,
    ),
    SenmlVector(
        "5.1.2",
        "SensML stream (the nine records shown)",
        """
[
  {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
   "bu":"%RH","v":21.2},
  {"t":10,"v":21.3},
  {"t":20,"v":21.4},
  {"t":30,"v":21.4},
  {"t":40,"v":21.5},
  {"t":50,"v":21.5},
  {"t":60,"v":21.5},
  {"t":70,"v":21.6},
  {"t":80,"v":21.7}
]
""",
        tuple(
            resolved(_OW, 1.320067464e09 + offset, "%RH", value=value)
            for offset, value in (
                (0, 21.2),
                (10, 21.3),
                (20, 21.4),
                (30, 21.4),
                (40, 21.5),
                (50, 21.5),
                (60, 21.5),
                (70, 21.6),
                (80, 21.7),
            )
        ),
    ),
    SenmlVector(
        "5.1.3",
        "multiple measurements (resolved in 5.1.4)",
        MULTIPLE_MEASUREMENTS,
        _from_resolved_json(RESOLVED_DATA),
    ),
    SenmlVector(
        "5.1.4",
        "resolved data resolves to itself",
        RESOLVED_DATA,
        _from_resolved_json(RESOLVED_DATA),
    ),
    SenmlVector(
        "5.1.5",
        "multiple data types",
        """
[
  {"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},
  {"n":"label","vs":"Machine Room"},
  {"n":"open","vb":false},
  {"n":"nfv-reader","vd":"aGkgCg"}
]
""",
        (
            resolved(_OW_PREFIX + "temp", NOW, "Cel", value=23.1),
            resolved(_OW_PREFIX + "label", NOW, string_value="Machine Room"),
            resolved(_OW_PREFIX + "open", NOW, bool_value=False),
            resolved(_OW_PREFIX + "nfv-reader", NOW, data_value="aGkgCg"),
        ),
    ),
    SenmlVector(
        "5.1.6",
        "collection of resources",
        """
[
  {"bn":"2001:db8::2/","bt":1.320078429e+09,
   "n":"temperature","u":"Cel","v":25.2},
  {"n":"humidity","u":"%RH","v":30},
  {"bn":"2001:db8::1/","n":"temperature","u":"Cel","v":12.3},
  {"n":"humidity","u":"%RH","v":67}
]
""",
        (
            resolved("2001:db8::2/temperature", 1.320078429e09, "Cel", value=25.2),
            resolved("2001:db8::2/humidity", 1.320078429e09, "%RH", value=30),
            resolved("2001:db8::1/temperature", 1.320078429e09, "Cel", value=12.3),
            resolved("2001:db8::1/humidity", 1.320078429e09, "%RH", value=67),
        ),
    ),
    SenmlVector(
        "5.1.7",
        "setting an actuator: thermostat",
        """
[
  {"bn":"urn:dev:ow:10e2073a01080063:"},
  {"n":"temp","u":"Cel","v":23.1},
  {"n":"heat","u":"/","v":1},
  {"n":"fan","u":"/","v":0}
]
""",
        (
            resolved(_OW_PREFIX + "temp", NOW, "Cel", value=23.1),
            resolved(_OW_PREFIX + "heat", NOW, "/", value=1),
            resolved(_OW_PREFIX + "fan", NOW, "/", value=0),
        ),
    ),
    SenmlVector(
        "5.1.7",
        "setting an actuator: two lights on at the same time",
        """
[
  {"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":1},
  {"n":"2001:db8::4","v":1}
]
""",
        (
            resolved("2001:db8::3", 1.320078429e09, "/", value=1),
            resolved("2001:db8::4", 1.320078429e09, "/", value=1),
        ),
    ),
    SenmlVector(
        "5.1.7",
        "setting an actuator: dim now, off 100 ms later",
        """
[
  {"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":0.5},
  {"n":"2001:db8::4","v":0.5},
  {"n":"2001:db8::3","t":0.1,"v":0},
  {"n":"2001:db8::4","t":0.1,"v":0}
]
""",
        (
            resolved("2001:db8::3", 1.320078429e09, "/", value=0.5),
            resolved("2001:db8::4", 1.320078429e09, "/", value=0.5),
            resolved("2001:db8::3", 1.3200784291e09, "/", value=0),
            resolved("2001:db8::4", 1.3200784291e09, "/", value=0),
        ),
    ),
)
"""Every example, in the RFC's order."""

CBOR_DIAGNOSTIC = [
    {
        -2: "urn:dev:ow:10e2073a0108006:",
        -3: 1276020076.001,
        -4: "A",
        -1: 5,
        0: "voltage",
        1: "V",
        2: 120.1,
    },
    {0: "current", 6: -5, 2: 1.2},
    {0: "current", 6: -4, 2: 1.3},
    {0: "current", 6: -3, 2: 1.4},
    {0: "current", 6: -2, 2: 1.5},
    {0: "current", 6: -1, 2: 1.6},
    {0: "current", 6: 0, 2: 1.7},
]
"""§6's CBOR diagnostic notation of `CBOR_EXAMPLE`, as Python values."""
