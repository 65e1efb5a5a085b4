"""The room-occupancy model at run time: readings -> (occupied, probability), numpy + onnxruntime.

The packaged model (``gateway/models/occupancy.onnx``, trained by ``training/train_occupancy.py``
on UCI Occupancy Detection) is a logistic regression on standardised readings. Its manifest names
the features the graph takes, in order, with their units and the reading names accepted for each
(``temp`` or ``temperature`` in degC, ``humidity`` in %RH, ``light`` in lux, ``co2`` in ppm,
``humidity_ratio`` in kg/kg). A reading set that lacks one of the features the model uses (or
whose value is not a finite number) gets ``None``: no value is imputed.

``predict`` takes a batch (one onnxruntime call), so it can run behind a `MicroBatcher` in a
worker thread, off the event loop. The model file's sha256 and size are checked against the
manifest before a session is made from the very same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.recognizer.artifact import ModelIntegrityError, cpu_session, read_artifact, verify

__all__ = [
    "MANIFEST_NAME",
    "MODEL_NAME",
    "FeatureSpec",
    "Occupancy",
    "OccupancyModel",
]

MODEL_NAME = "occupancy.onnx"
MANIFEST_NAME = "occupancy.manifest.json"

Occupancy = tuple[bool, float]
"""(occupied, probability of occupied)."""


@dataclass(frozen=True)
class FeatureSpec:
    """One input column of the graph: canonical name, unit and the reading names accepted."""

    name: str
    unit: str
    aliases: tuple[str, ...]


def _number(value: object) -> float | None:
    """A finite float, or None (missing, not a number, NaN/inf, bool)."""
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int | float | np.integer | np.floating):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class OccupancyModel:
    """``predict(rows)`` -> ``[(occupied, probability) | None, ...]``, one per reading set."""

    def __init__(
        self,
        manifest: Mapping[str, Any],
        model_bytes: bytes,
        *,
        threshold: float | None = None,
        model_file: Path | None = None,
    ) -> None:
        """Build from a manifest and the model bytes it describes (checked: sha256 and size)."""
        digest = verify(manifest, model_bytes, model_file)
        try:
            order = manifest["inputs"]["features"]["order"]
            self.features: tuple[FeatureSpec, ...] = tuple(
                FeatureSpec(
                    name=str(item["name"]),
                    unit=str(item["unit"]),
                    aliases=tuple(str(alias) for alias in item.get("aliases", [item["name"]])),
                )
                for item in order
            )
            default_threshold = float(manifest["threshold"])
            self.version: str = str(manifest["version"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelIntegrityError(f"malformed occupancy manifest: {exc!r}") from exc
        if not self.features:
            raise ModelIntegrityError("the occupancy manifest lists no input features")
        self.threshold = default_threshold if threshold is None else float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {self.threshold}")
        self.manifest: dict[str, Any] = dict(manifest)
        self.sha256: str = digest
        self.size_bytes: int = len(model_bytes)
        self.model_file = model_file
        self._session = cpu_session(model_bytes, 1)
        inputs = self._session.get_inputs()
        outputs = [output.name for output in self._session.get_outputs()]
        if [i.name for i in inputs] != ["features"] or "probability" not in outputs:
            raise ModelIntegrityError(
                f"expected input 'features' and output 'probability', got"
                f" {[i.name for i in inputs]} -> {outputs}"
            )

    @classmethod
    def load(
        cls, path: str | Path | None = None, *, threshold: float | None = None
    ) -> OccupancyModel:
        """Load the packaged model (default) or a directory, manifest or .onnx file.

        Raises `ModelIntegrityError` when the manifest is missing or malformed, or when the
        model file's sha256 or size differs from the manifest.
        """
        manifest, model_bytes, model_file = read_artifact(path, MANIFEST_NAME)
        return cls(manifest, model_bytes, threshold=threshold, model_file=model_file)

    @property
    def required(self) -> tuple[str, ...]:
        """The canonical names of the features the model uses, in graph order."""
        return tuple(spec.name for spec in self.features)

    def vector(self, row: Mapping[str, object]) -> list[float] | None:
        """The row's feature vector in graph order, or None if a required feature is missing."""
        values: list[float] = []
        for spec in self.features:
            value: float | None = None
            for alias in spec.aliases:
                if alias in row:
                    value = _number(row[alias])
                    break
            if value is None:
                return None
            values.append(value)
        return values

    def predict_proba(self, matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """P(occupied) for a ``[batch, len(required)]`` float32 matrix, one onnxruntime call."""
        if matrix.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        (prob,) = self._session.run(["probability"], {"features": matrix})
        return np.asarray(prob, dtype=np.float32).reshape(-1)

    def predict(self, rows: Sequence[Mapping[str, object]]) -> list[Occupancy | None]:
        """One ``(occupied, probability)`` per reading set, ``None`` where a feature is missing.

        Batched: the complete rows go through onnxruntime in one call. Readings are keyed by
        name (``temp``/``temperature``, ``humidity``, ``light``, ``co2``, ``humidity_ratio``);
        extra keys are ignored.
        """
        vectors = [self.vector(row) for row in rows]
        complete = [vector for vector in vectors if vector is not None]
        results: list[Occupancy | None] = [None] * len(rows)
        if not complete:
            return results
        probs = self.predict_proba(np.asarray(complete, dtype=np.float32)).tolist()
        position = 0
        for index, vector in enumerate(vectors):
            if vector is None:
                continue
            probability = min(max(float(probs[position]), 0.0), 1.0)
            results[index] = (probability >= self.threshold, probability)
            position += 1
        return results

    def __repr__(self) -> str:
        return (
            f"OccupancyModel(version={self.version!r}, sha256={self.sha256[:12]}...,"
            f" features={list(self.required)}, threshold={self.threshold})"
        )
