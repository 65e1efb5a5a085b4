"""Telemetry payloads in the four formats the gateway accepts (docs/topics.md).

Only serialisation of our own readings (cbor2/json); parsing stays in the gateway's pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import cbor2

from sensor_sim.generators import UNITS

CONTENT_FORMATS = {"senml-json": 110, "senml-cbor": 112, "json": 50, "cbor": 60}
# SenML-CBOR labels (RFC 8428 Table 4): bn -2, bt -3, n 0, u 1, v 2.


def senml_records(
    device_id: str, values: Mapping[str, float], now: float
) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    for index, (name, value) in enumerate(values.items()):
        record: dict[str, object] = {"n": name, "u": UNITS.get(name, "/"), "v": value}
        if index == 0:
            record = {"bn": f"{device_id}:", "bt": round(now, 3), **record}
        records.append(record)
    return records


def encode_telemetry(fmt: str, device_id: str, values: Mapping[str, float], now: float) -> bytes:
    """The payload for `values` measured at `now` (UTC epoch seconds) in format `fmt`."""
    if fmt == "senml-json":
        return json.dumps(senml_records(device_id, values, now), separators=(",", ":")).encode()
    if fmt == "senml-cbor":  # the records built with their integer labels directly
        records: list[dict[int, object]] = [
            {0: name, 1: UNITS.get(name, "/"), 2: value} for name, value in values.items()
        ]
        if records:
            records[0] = {-2: f"{device_id}:", -3: round(now, 3), **records[0]}
        return cbor2.dumps(records)
    if fmt == "json":
        return json.dumps(dict(values), separators=(",", ":")).encode()
    if fmt == "cbor":
        return cbor2.dumps(dict(values))
    raise ValueError(f"unknown payload format {fmt!r}")
