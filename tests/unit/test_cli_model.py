"""The model commands of edge-gateway: recognize, model eval (JSON and table), errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.recognizer.evaluate import EVAL_KEYS, default_data_dir
from gateway.recognizer.text_model import MODEL_NAME
from schemas import Intent

runner = CliRunner()
MODELS = Path(__file__).resolve().parents[2] / "gateway" / "models"
ROWS = [
    {
        "text": "switch off the lights in the hall",
        "label": "iot_hue_lightoff",
        "slots": [{"slot": "house_place", "value": "hall", "start": 29, "end": 33}],
    },
    {"text": "please make me an espresso", "label": "iot_coffee", "slots": []},
    {"text": "who won the football game last night", "label": "other", "slots": []},
    {"text": "remind me to call mum", "label": "other"},
]


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's EGW_INTENT_MODEL must not redirect the commands."""
    monkeypatch.delenv("EGW_INTENT_MODEL", raising=False)


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    """A tiny JSONL file in the training-data format."""
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    return path


def test_recognize_prints_an_intent_json() -> None:
    """recognize prints one Intent as JSON, with the intent and its slots."""
    result = runner.invoke(app, ["recognize", "turn off the kitchen lights"])
    assert result.exit_code == 0, result.output
    intent = Intent.model_validate_json(result.stdout)
    assert intent.name == "iot_hue_lightoff" and intent.slots == {"house_place": "kitchen"}


def test_model_eval_json_has_exactly_the_keys(data_file: Path) -> None:
    """model eval --json prints one JSON object with exactly the documented keys."""
    result = runner.invoke(app, ["model", "eval", "--data", str(data_file), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert tuple(report) == EVAL_KEYS and report["n"] == len(ROWS)
    assert report["slot_f1"] == 1.0 and report["false_accept_rate"] == 0.0


def test_model_eval_without_json_prints_a_table(data_file: Path) -> None:
    """Without --json, model eval prints a readable table of the same keys."""
    result = runner.invoke(app, ["model", "eval", "--data", str(data_file)])
    assert result.exit_code == 0, result.output
    assert all(key in result.stdout for key in EVAL_KEYS)


def test_model_eval_on_the_validation_split() -> None:
    """model eval --split val evaluates the reproducible split of the training data."""
    data = default_data_dir() / "intents" / "iot_train.jsonl"
    assert data.is_file(), f"the training data is expected at {data} (shared/ beside the clone)"
    result = runner.invoke(app, ["model", "eval", "--split", "val", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 1983 and report["false_accept_rate"] <= 0.005


def test_eval_needs_exactly_one_data_source(data_file: Path) -> None:
    """Giving both or neither of --data and --split is an error with exit status 2."""
    both = runner.invoke(app, ["model", "eval", "--data", str(data_file), "--split", "val"])
    neither = runner.invoke(app, ["model", "eval"])
    assert both.exit_code == neither.exit_code == 2


def test_recognize_refuses_a_tampered_model(tmp_path: Path) -> None:
    """recognize exits with status 2 and names the sha256 mismatch for a modified model."""
    copy = tmp_path / "models"
    shutil.copytree(MODELS, copy)
    with (copy / MODEL_NAME).open("ab") as handle:
        handle.write(b"\0")
    result = runner.invoke(app, ["recognize", "--model", str(copy), "lights on"])
    assert result.exit_code == 2
    assert "sha256" in result.stderr


def test_model_train_refuses_a_missing_teacher_before_training(tmp_path: Path) -> None:
    """model train --teacher names a file that must exist: a missing one fails before training."""
    out = tmp_path / "out"
    missing = tmp_path / "no-such-teacher.whl"
    result = runner.invoke(app, ["model", "train", "--teacher", str(missing), "--out", str(out)])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not out.exists()
