"""The packaged occupancy model with the real onnxruntime: integrity, decisions, missing data."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from gateway.recognizer.occupancy import MANIFEST_NAME, MODEL_NAME, OccupancyModel
from gateway.recognizer.text_model import ModelIntegrityError

MODELS = Path(__file__).resolve().parents[2] / "gateway" / "models"

OFFICE = {"light": 450.0, "co2": 900.0, "temp": 22.5, "humidity": 27.0}
DARK = {"light": 0.0, "co2": 440.0, "temperature": 20.5, "humidity": 25.0}


@pytest.fixture(scope="module")
def model() -> OccupancyModel:
    """The packaged model, loaded once for the module."""
    return OccupancyModel.load()


def test_packaged_model_loads_and_matches_its_manifest(model: OccupancyModel) -> None:
    """sha256 and size are verified; the manifest documents features, metrics and licence."""
    manifest = json.loads((MODELS / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert model.sha256 == manifest["sha256"] and model.size_bytes == manifest["size_bytes"]
    assert model.size_bytes <= 200_000
    assert model.required == tuple(manifest["features_used"]) and "light" in model.required
    assert manifest["provenance"][0]["licence"] == "CC BY 4.0"
    assert "LAST 20 %" in manifest["validation_split"]["what"]
    assert manifest["metrics"]["validation_split"]["accuracy"] >= 0.95
    assert "occupancy.onnx" in (MODELS / "ATTRIBUTION.md").read_text(encoding="utf-8")


def test_tampered_model_file_is_refused(tmp_path: Path) -> None:
    """A model file that differs from its manifest's sha256 is not loaded."""
    copy = tmp_path / "models"
    copy.mkdir()
    for name in (MODEL_NAME, MANIFEST_NAME):
        shutil.copy(MODELS / name, copy / name)
    OccupancyModel.load(copy)  # the untouched copy loads
    data = bytearray((copy / MODEL_NAME).read_bytes())
    data[-5] ^= 0x01
    (copy / MODEL_NAME).write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        OccupancyModel.load(copy)
    with pytest.raises(ModelIntegrityError, match="sha256"):
        OccupancyModel.load(copy / MODEL_NAME)
    (copy / MANIFEST_NAME).unlink()
    with pytest.raises(ModelIntegrityError, match="manifest"):
        OccupancyModel.load(copy)


def test_lit_office_is_occupied_and_dark_room_vacant(model: OccupancyModel) -> None:
    """A lit office with elevated CO2 is occupied; a dark room at outdoor CO2 is vacant."""
    office, dark = model.predict([OFFICE, DARK])
    assert office is not None and dark is not None
    assert office[0] is True and office[1] > 0.5
    assert dark[0] is False and dark[1] < 0.5
    assert all(0.0 <= p <= 1.0 for _, p in (office, dark))


def test_missing_or_invalid_features_give_none(model: OccupancyModel) -> None:
    """No value is imputed: a row lacking a required feature (or with NaN / text) is None."""
    without = {key: value for key, value in OFFICE.items() if key not in model.required}
    bad: dict[str, object] = {**OFFICE, "light": math.nan}
    text: dict[str, object] = {**OFFICE, "light": "bright"}
    results = model.predict([without, OFFICE, {}, bad, text])
    assert results[0] is None and results[2] is None and results[3] is None
    assert results[4] is None
    assert results[1] is not None and results[1][0] is True
    assert model.predict([]) == []
    assert model.predict([{}]) == [None]


def test_batch_equals_single_rows(model: OccupancyModel) -> None:
    """A batch gives the same answers as one row at a time (one onnxruntime call per batch)."""
    rows = [{"light": float(lux), "co2": 600.0, "temp": 21.0} for lux in range(0, 1000, 37)]
    batch = model.predict(rows)
    single = [model.predict([row])[0] for row in rows]
    assert batch == single
    occupied = [result[0] for result in batch if result is not None]
    assert occupied == sorted(occupied)  # monotone in light for this model
