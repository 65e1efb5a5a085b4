"""Generate the JSON Schemas of the wire contracts into ``schemas/json/`` (shipped as package data).

The files depend only on the models, so they are the same on every machine;
``tests/unit/test_schemas_fresh.py`` fails when the committed files are stale, missing or extra.
Regenerate them with ``python -m schemas.jsonschema`` (``--check`` only reports). Configuration
sections are documented in ``docs/configuration.md`` instead and have no file here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from pydantic import BaseModel

from schemas.cloud import CloudRequest, CloudResponse
from schemas.decisions import ActuatorCommand, CoapSummary, Decision, Intent
from schemas.status import GatewayStatus
from schemas.telemetry import Reading, TelemetryBatch, TextCommand

__all__ = ["JSON_DIR", "MODELS", "REGENERATE_COMMAND", "render_all", "write_all"]

REGENERATE_COMMAND: Final = "python -m schemas.jsonschema"
JSON_DIR: Final = Path(__file__).resolve().parent / "json"
DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

MODELS: Final[dict[str, type[BaseModel]]] = {
    "reading.json": Reading,
    "telemetry_batch.json": TelemetryBatch,
    "text_command.json": TextCommand,
    "intent.json": Intent,
    "actuator_command.json": ActuatorCommand,
    "decision.json": Decision,
    "coap_summary.json": CoapSummary,
    "gateway_status.json": GatewayStatus,
    "cloud_request.json": CloudRequest,
    "cloud_response.json": CloudResponse,
}
"""File name -> model, for every wire contract."""


def render(model: type[BaseModel]) -> str:
    """One model's JSON Schema (what it accepts) as deterministic JSON text."""
    schema = {"$schema": DIALECT, **model.model_json_schema(mode="validation")}
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """File name -> JSON text, for every model in MODELS."""
    return {name: render(model) for name, model in MODELS.items()}


def write_all(directory: Path = JSON_DIR) -> list[Path]:
    """Write every schema into ``directory`` and delete stale ``*.json`` files there."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render_all()
    for stale in directory.glob("*.json"):
        if stale.name not in rendered:
            stale.unlink()
    written = []
    for name, text in rendered.items():
        path = directory / name
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written


def stale_files(directory: Path = JSON_DIR) -> list[str]:
    """Names of the files that differ from render_all(), are missing, or should not be there."""
    rendered = render_all()
    present = {path.name: path for path in directory.glob("*.json")} if directory.is_dir() else {}
    problems = sorted(set(present) - set(rendered))
    for name, text in rendered.items():
        path = present.get(name)
        if path is None or path.read_text(encoding="utf-8") != text:
            problems.append(name)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE_COMMAND, description=__doc__)
    parser.add_argument("directory", nargs="?", type=Path, default=JSON_DIR)
    parser.add_argument("--check", action="store_true", help="report stale files, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale_files(args.directory)
        for name in problems:
            sys.stderr.write(f"stale: {name}\n")
        return 1 if problems else 0
    for path in write_all(args.directory):
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
