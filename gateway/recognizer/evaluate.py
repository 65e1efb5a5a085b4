"""Evaluation of the text-intent model: the reproducible validation split, metrics, latency.

The validation split is computed, never stored: `split_examples` takes 20 % of every source
intent of ``intents/iot_train.jsonl`` (sorted by text, shuffled with a fixed seed), so training
and ``edge-gateway model eval --split val`` see exactly the same rows.

Metrics (`evaluate`; rows whose label is not one of the model's labels, e.g. CLINC150's coarse
``smart_home``, count in ``n`` only):

- ``iot_accuracy``: over rows labelled with a smart-home intent; predicting ``other`` is wrong.
- ``false_accept_rate``: rows labelled ``other`` predicted as a smart-home intent.
- ``false_reject_rate``: smart-home rows predicted ``other``.
- ``macro_f1``: the mean F1 of the labels (of the 10) that occur in the gold or predicted rows.
- ``slot_f1``: exact-span micro F1 of (slot, start, end) over the smart-home rows that carry
  slots; no slot is extracted for a row predicted ``other``.
- ``p50_ms`` / ``p99_ms``: single-utterance ``predict([text])`` latency, preprocessing included.
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.recognizer.slots import SlotSpan
from gateway.recognizer.text_model import OTHER, TextIntentModel

__all__ = [
    "EVAL_KEYS",
    "SPLIT_FRACTION",
    "SPLIT_SEED",
    "Example",
    "compute_metrics",
    "default_data_dir",
    "evaluate",
    "format_table",
    "load_examples",
    "load_split",
    "split_examples",
    "throughput",
]

SPLIT_SEED = 20240611
SPLIT_FRACTION = 0.2
TRAIN_FILE = "intents/iot_train.jsonl"
CLINC_VAL_FILE = "intents/clinc150_smarthome_oos_val.jsonl"
EVAL_KEYS = (
    "iot_accuracy",
    "false_accept_rate",
    "false_reject_rate",
    "macro_f1",
    "slot_f1",
    "p50_ms",
    "p99_ms",
    "model_version",
    "model_bytes",
    "n",
)


@dataclass(frozen=True)
class Example:
    """One labelled utterance: text, label (a smart-home intent, ``other``, or a coarse one)."""

    text: str
    label: str
    intent: str = ""
    slots: tuple[SlotSpan, ...] = field(default_factory=tuple)


def _label_of(row: dict[str, Any]) -> str:
    if isinstance(row.get("label"), str):
        return str(row["label"])
    intent = str(row.get("intent", ""))
    if intent.startswith("iot_"):
        return intent
    return OTHER if intent == "oos" else intent  # CLINC150: oos -> other, smart_home stays


def load_examples(path: str | Path) -> list[Example]:
    """Read a JSONL file in the training-data format (``text``, ``label``/``intent``, slots)."""
    examples: list[Example] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                spans = tuple(
                    SlotSpan(str(s["slot"]), str(s["value"]), int(s["start"]), int(s["end"]))
                    for s in row.get("slots") or []
                )
                examples.append(
                    Example(str(row["text"]), _label_of(row), str(row.get("intent", "")), spans)
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{number}: not a labelled utterance: {exc!r}") from exc
    return examples


def split_examples(
    examples: Sequence[Example], *, fraction: float = SPLIT_FRACTION, seed: int = SPLIT_SEED
) -> tuple[list[Example], list[Example]]:
    """(train, validation): ``fraction`` of each source intent, stratified, deterministic."""
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent or example.label].append(example)
    rng = random.Random(seed)
    train: list[Example] = []
    validation: list[Example] = []
    for intent in sorted(by_intent):
        group = sorted(by_intent[intent], key=lambda e: (e.text, e.label))
        rng.shuffle(group)
        cut = round(len(group) * fraction)
        validation.extend(group[:cut])
        train.extend(group[cut:])
    return train, validation


def default_data_dir() -> Path:
    """``EGW_TRAIN_DATA``, else ``../shared/data`` (from the working directory, then the repo)."""
    env = os.environ.get("EGW_TRAIN_DATA")
    if env:
        return Path(env)
    here = Path("../shared/data")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def load_split(name: str, data_dir: str | Path | None = None) -> list[Example]:
    """A named split of the training data: ``train``, ``val`` or ``clinc_val``."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if name == "clinc_val":
        return load_examples(root / CLINC_VAL_FILE)
    train, validation = split_examples(load_examples(root / TRAIN_FILE))
    if name == "val":
        return validation
    if name == "train":
        return train
    raise ValueError(f"unknown split {name!r}: expected train, val or clinc_val")


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def compute_metrics(
    examples: Sequence[Example],
    predicted: Sequence[str],
    labels: Sequence[str],
    predicted_spans: Sequence[Sequence[SlotSpan]] | None = None,
) -> dict[str, float | None]:
    """Label and slot metrics of ``predicted`` (one label per example); None: undefined."""
    known = set(labels)
    iot_total = iot_correct = iot_rejected = other_total = other_accepted = 0
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # tp, fp, fn
    for example, guess in zip(examples, predicted, strict=True):
        if example.label not in known:
            continue
        if example.label == OTHER:
            other_total += 1
            other_accepted += guess != OTHER
        else:
            iot_total += 1
            iot_correct += guess == example.label
            iot_rejected += guess == OTHER
        if guess == example.label:
            counts[guess][0] += 1
        else:
            counts[guess][1] += 1
            counts[example.label][2] += 1
    f1s = [2 * tp / (2 * tp + fp + fn) for tp, fp, fn in counts.values() if tp + fp + fn]
    slot_f1: float | None = None
    if predicted_spans is not None:
        tp = fp = fn = 0
        for example, spans in zip(examples, predicted_spans, strict=True):
            if example.label == OTHER or example.label not in known or not example.slots:
                continue
            gold = {(s.slot, s.start, s.end) for s in example.slots}
            found = {(s.slot, s.start, s.end) for s in spans}
            tp += len(gold & found)
            fp += len(found - gold)
            fn += len(gold - found)
        slot_f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "iot_accuracy": _ratio(iot_correct, iot_total),
        "false_accept_rate": _ratio(other_accepted, other_total),
        "false_reject_rate": _ratio(iot_rejected, iot_total),
        "macro_f1": statistics.fmean(f1s) if f1s else None,
        "slot_f1": slot_f1,
    }


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def evaluate(
    model: TextIntentModel,
    examples: Sequence[Example],
    *,
    latency_samples: int = 1000,
    batch_size: int = 256,
) -> dict[str, Any]:
    """The evaluation report: exactly the keys of `EVAL_KEYS` (metrics rounded to 4 places)."""
    predicted: list[str] = []
    spans: list[list[SlotSpan]] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        decided = model.decide(model.predict_proba([e.text for e in chunk]))
        for example, (name, _) in zip(chunk, decided, strict=True):
            predicted.append(name)
            spans.append(model.slots.extract(example.text) if name != OTHER else [])
    metrics = compute_metrics(examples, predicted, model.labels, spans)

    timings: list[float] = []
    step = max(1, len(examples) // max(1, latency_samples))
    sample = [e.text for e in examples[::step][:latency_samples]]
    for text in sample[:20]:  # warm-up
        model.predict([text])
    for text in sample:
        began = time.perf_counter()
        model.predict([text])
        timings.append((time.perf_counter() - began) * 1000.0)

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    return {
        "iot_accuracy": rounded(metrics["iot_accuracy"]),
        "false_accept_rate": rounded(metrics["false_accept_rate"]),
        "false_reject_rate": rounded(metrics["false_reject_rate"]),
        "macro_f1": rounded(metrics["macro_f1"]),
        "slot_f1": rounded(metrics["slot_f1"]),
        "p50_ms": round(_percentile(timings, 50), 4) if timings else None,
        "p99_ms": round(_percentile(timings, 99), 4) if timings else None,
        "model_version": model.version,
        "model_bytes": model.size_bytes,
        "n": len(examples),
    }


def format_table(report: dict[str, Any], title: str = "") -> str:
    """A readable two-column table of an `evaluate` report."""
    rows: Iterable[tuple[str, Any]] = ((key, report[key]) for key in EVAL_KEYS)
    width = max(len(key) for key in EVAL_KEYS)
    lines = [title] if title else []
    for key, value in rows:
        shown = "n/a" if value is None else value
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)


def throughput(
    model: TextIntentModel,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    workers: int = 1,
    seconds: float = 3.0,
) -> dict[str, float | int]:
    """Utterances per second of ``model.predict`` on batches, from ``workers`` threads at once.

    onnxruntime releases the GIL while it runs, so two workers use two cores for the model part.
    """
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - only for the benchmark

    if not texts:
        raise ValueError("no texts to benchmark")
    batches = [list(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    model.predict(batches[0])  # warm-up

    def work(offset: int) -> int:
        done = 0
        deadline = time.perf_counter() + seconds
        index = offset
        while time.perf_counter() < deadline:
            done += len(model.predict(batches[index % len(batches)]))
            index += 1
        return done

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        total = sum(pool.map(work, range(workers)))
    elapsed = time.perf_counter() - began
    return {
        "utterances_per_s": round(total / elapsed),
        "batch_size": batch_size,
        "workers": workers,
        "intra_op_threads": int(model.intra_op_threads),
        "seconds": round(elapsed, 2),
    }
