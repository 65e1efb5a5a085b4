"""The committed JSON Schemas in schemas/json match the models."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.jsonschema import JSON_DIR, MODELS, REGENERATE_COMMAND, render_all, write_all


def test_committed_schemas_are_fresh() -> None:
    """Every file in schemas/json equals render_all(), none is missing and none is extra."""
    expected = render_all()
    present = {path.name: path for path in JSON_DIR.glob("*.json")}
    missing = sorted(set(expected) - set(present))
    extra = sorted(set(present) - set(expected))
    stale = sorted(
        name
        for name, path in present.items()
        if name in expected and path.read_text(encoding="utf-8") != expected[name]
    )
    assert not (missing or extra or stale), (
        f"schemas/json is out of date (missing {missing}, extra {extra}, stale {stale}); "
        f"regenerate it with: {REGENERATE_COMMAND}"
    )


def test_rendering_is_deterministic() -> None:
    """Rendering twice gives the same texts, each valid JSON ending in exactly one newline."""
    first = render_all()
    assert first == render_all()
    assert set(first) == set(MODELS)
    for text in first.values():
        assert text.endswith("}\n")
        json.loads(text)


def test_every_property_is_documented() -> None:
    """Every model and every property in every schema carries a description."""
    for name, text in render_all().items():
        schema = json.loads(text)
        for model_schema in [schema, *schema.get("$defs", {}).values()]:
            assert model_schema.get("description"), name
            for prop, body in model_schema["properties"].items():
                assert body.get("description"), f"{name}: {prop} has no description"


def test_write_all_replaces_stale_and_extra_files(tmp_path: Path) -> None:
    """write_all writes every schema, overwrites stale ones and deletes unknown *.json files."""
    (tmp_path / "old_model.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "reading.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("kept\n", encoding="utf-8")
    write_all(tmp_path)
    expected = render_all()
    assert sorted(path.name for path in tmp_path.glob("*.json")) == sorted(expected)
    for name, text in expected.items():
        assert (tmp_path / name).read_text(encoding="utf-8") == text
    assert (tmp_path / "notes.txt").exists()
