"""Shipped model files: find the manifest, read the model, refuse anything that does not match.

Both local models (text intents, occupancy) are an ONNX file plus a JSON manifest that records
its sha256 and size; a model is loaded only when both match.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnxruntime as ort

from gateway.errors import GatewayError


class ModelIntegrityError(GatewayError):
    """A model file or manifest is missing, malformed, or does not match its manifest."""


def packaged_dir() -> Path:
    """The directory of the models that ship inside the ``gateway`` package."""
    return Path(str(importlib.resources.files("gateway") / "models"))


def read_artifact(
    path: str | Path | None, manifest_name: str
) -> tuple[dict[str, Any], bytes, Path]:
    """(manifest, model bytes, model file) for the packaged model (None), a model directory, a
    manifest or an .onnx file beside its manifest; ModelIntegrityError on any problem."""
    target = packaged_dir() if path is None else Path(path)
    if target.is_dir():
        manifest_path = target / manifest_name
    elif target.suffix == ".json":
        manifest_path = target
    elif target.suffix == ".onnx":
        manifest_path = target.parent / manifest_name
    else:
        raise ModelIntegrityError(f"{target}: not a model directory, a manifest or an .onnx file")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelIntegrityError(f"no model manifest at {manifest_path}") from exc
    except json.JSONDecodeError as exc:
        raise ModelIntegrityError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("file"), str):
        raise ModelIntegrityError(f"{manifest_path}: the manifest names no model file")
    model_file = target if target.suffix == ".onnx" else manifest_path.parent / manifest["file"]
    try:
        model_bytes = model_file.read_bytes()
    except FileNotFoundError as exc:
        raise ModelIntegrityError(f"model file {model_file} not found") from exc
    return manifest, model_bytes, model_file


def verify(manifest: Mapping[str, Any], model_bytes: bytes, model_file: Path | None) -> str:
    """The model's sha256, after checking it and the size against the manifest."""
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != manifest.get("sha256"):
        raise ModelIntegrityError(
            f"model file {model_file or '(bytes)'} has sha256 {digest}, but its manifest says"
            f" {manifest.get('sha256')}: refusing to load a modified or mismatched model"
        )
    if len(model_bytes) != manifest.get("size_bytes"):
        raise ModelIntegrityError(
            f"model file {model_file or '(bytes)'} has {len(model_bytes)} bytes, its manifest"
            f" says {manifest.get('size_bytes')}"
        )
    return digest


def cpu_session(model_bytes: bytes, intra_op_threads: int = 1) -> ort.InferenceSession:
    """One sequential onnxruntime CPU session (created once per model)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelIntegrityError(f"onnxruntime cannot load the model: {exc}") from exc
