"""Train the reference cloud recogniser: every source intent of the training file, ONNX out.

    nice -n 10 python -m training.train_cloud [--data-dir ../shared/data] \
        [--out sensor_sim/cloud/models]

Self-contained on purpose (it shares nothing with the local model's training code). Data:
``intents/iot_train.jsonl`` (HWU64 + SLURP, CC BY 4.0). Labels are the **source** ``intent``
field (``alarm_set``, ``weather_query``, ``iot_hue_lightoff``, ...), not the coarse ``label``:
that is what makes the cloud's intent set larger than the gateway's. Source intents with fewer
than ``MIN_ROWS`` rows (a handful of malformed HWU64 names such as ``set`` or ``post``) are
merged into ``other``, the reject class the run time needs.

Steps (deterministic for the same data and torch build):

1. A stratified 10 % of the rows is held back as a validation split (a re-split of the training
   file, so its accuracy is a sanity check, *not* an independent evaluation).
2. Features are the gateway's own hashed word/char n-grams (`gateway.recognizer.text_model.
   Featurizer`, ``BITS`` bits), so the service needs only numpy and onnxruntime at run time.
3. The model is linear: one row of class logits per hash bucket, summed with the feature
   weights, plus a bias, softmax (a multinomial logistic regression over hashed n-grams),
   trained with Adam and weight decay on the other 90 %.
4. Export: the table is stored as int8 with one float32 scale per bucket; the graph is
   ``Gather -> Cast -> Mul(weights * scale) -> ReduceSum -> Add -> Softmax`` with inputs
   ``ids``/``weights`` and output ``probs`` -- the contract `TextIntentModel` loads. The
   exported model is checked against the de-quantised network on the validation rows.
5. The manifest (labels, features, threshold, sha256, metrics, provenance, gazetteer of slot
   values from every annotated row) and ``ATTRIBUTION.md`` are written next to the model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from gateway.recognizer.evaluate import default_data_dir
from gateway.recognizer.text_model import OTHER, Featurizer, TextIntentModel, normalize
from training.text_provenance import IOT_TRAIN_CITATIONS, IOT_TRAIN_PROVENANCE

DATA_FILE = "intents/iot_train.jsonl"
MODEL_NAME = "intent_cloud.onnx"
MANIFEST_NAME = "intent_cloud.manifest.json"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "sensor_sim" / "cloud" / "models"
MIN_ROWS = 5
BITS = 15
CHAR_NGRAMS = (2, 3, 4, 5)
VALIDATION_FRACTION = 0.1
THRESHOLD = 0.3
EPOCHS = 12
BATCH = 64
LEARNING_RATE = 0.02
WEIGHT_DECAY = 1e-6
SEED = 20240601
MAX_MODEL_BYTES = 5 * 1024 * 1024
GAZETTEER_PRECISION = 0.5

PROVENANCE = IOT_TRAIN_PROVENANCE  # the cloud model learns from iot_train.jsonl only


def read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def label_set(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Sorted source intents with at least MIN_ROWS rows, plus ``other``."""
    counts = Counter(str(row["intent"]) for row in rows)
    return [*sorted(name for name, n in counts.items() if n >= MIN_ROWS and name != OTHER), OTHER]


def split(labels: npt.NDArray[np.int64], rng: np.random.Generator) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64]
]:
    """Stratified (train, validation) row indices."""
    train: list[int] = []
    val: list[int] = []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        cut = round(len(rows) * VALIDATION_FRACTION) if len(rows) >= 10 else 0
        val.extend(rows[:cut].tolist())
        train.extend(rows[cut:].tolist())
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(val), dtype=np.int64)


def gazetteer(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Lower-case slot value -> its most frequent slot name, over every annotated row.

    A value is kept only when at least GAZETTEER_PRECISION of its occurrences in the texts are
    annotated as a slot, which drops common words that were annotated now and then ("what",
    "me").
    """
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        for span in row.get("slots") or ():
            value = " ".join(str(span["value"]).lower().split())
            if len(value) >= 2 and len(value.split()) <= 4:
                votes[value][str(span["slot"])] += 1
    seen: Counter[str] = Counter()
    for row in rows:
        words = normalize(str(row["text"])).split()
        for n in range(1, 5):
            seen.update(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    return {
        value: slots.most_common(1)[0][0]
        for value, slots in sorted(votes.items())
        if slots.total() >= GAZETTEER_PRECISION * seen.get(normalize(value), slots.total())
    }


class HashedLinear(nn.Module):
    """logits = sum_j weight_j * table[id_j] + bias."""

    def __init__(self, buckets: int, classes: int) -> None:
        super().__init__()
        self.table = nn.EmbeddingBag(buckets, classes, mode="sum")
        nn.init.zeros_(self.table.weight)
        self.bias = nn.Parameter(torch.zeros(classes))

    def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.table(ids, per_sample_weights=weights) + self.bias
        return logits


def fit(
    ids: npt.NDArray[np.int64], weights: npt.NDArray[np.float32], labels: npt.NDArray[np.int64],
    buckets: int, classes: int,
) -> HashedLinear:
    torch.manual_seed(SEED)
    model = HashedLinear(buckets, classes)
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    loss_fn = nn.CrossEntropyLoss()
    ids_t, weights_t = torch.from_numpy(ids), torch.from_numpy(weights)
    labels_t = torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        order = torch.randperm(len(labels_t), generator=generator)
        total = 0.0
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            optimiser.zero_grad()
            loss = loss_fn(model(ids_t[batch], weights_t[batch]), labels_t[batch])
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        sys.stderr.write(f"epoch {epoch + 1}/{EPOCHS}: loss {total / len(order):.4f}\n")
    return model


def quantise(
    table: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """Per-bucket symmetric int8 and its scale: table ~= q * scale[:, None]."""
    peak = np.abs(table).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    return np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8), scale


def export(q: npt.NDArray[np.int8], scale: npt.NDArray[np.float32],
           bias: npt.NDArray[np.float32]) -> bytes:
    classes = q.shape[1]
    nodes = [
        helper.make_node("Gather", ["table_q", "ids"], ["rows_q"], axis=0),
        helper.make_node("Cast", ["rows_q"], ["rows"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["scale", "ids"], ["row_scale"], axis=0),
        helper.make_node("Mul", ["weights", "row_scale"], ["feature_weight"]),
        helper.make_node("Unsqueeze", ["feature_weight", "last_axis"], ["feature_weight3"]),
        helper.make_node("Mul", ["rows", "feature_weight3"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "feature_axis"], ["summed"], keepdims=0),
        helper.make_node("Add", ["summed", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "intent_cloud",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "features"]),
            helper.make_tensor_value_info("weights", TensorProto.FLOAT, ["batch", "features"]),
        ],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", classes])],
        initializer=[
            numpy_helper.from_array(q, "table_q"),
            numpy_helper.from_array(scale, "scale"),
            numpy_helper.from_array(bias.astype(np.float32), "bias"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_axis"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "feature_axis"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)],
        producer_name="edge-intent-gateway training/train_cloud.py",
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def attribution(version: str, sha256: str) -> str:
    rows = "\n".join(
        f"| {p['source']} | {p['repository']} @ {p['commit']} | {p['licence']} |"
        for p in PROVENANCE
    )
    return f"""# Attribution: the reference cloud recogniser's model

`{MODEL_NAME}` (version `{version}`, sha256 `{sha256}`) is a model trained on text from the
data sets below. Their licences require attribution wherever the data or a model trained on it
is distributed: keep this file (and the `provenance` of `{MANIFEST_NAME}`) with the model.

| source | repository @ commit | licence |
|---|---|---|
{rows}

{IOT_TRAIN_CITATIONS}

Changes made: the utterances were lower-cased and hashed into n-gram features; source intents
with fewer than {MIN_ROWS} rows were merged into `other`. The model's weights are derived from
the data; no utterance is stored in the model. The slot gazetteer in the manifest lists slot
values (places, devices, dates, times, names, ...) taken from the annotated rows.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    rows = read_rows(data_dir / DATA_FILE)
    labels = label_set(rows)
    index = {name: i for i, name in enumerate(labels)}
    y = np.array([index.get(str(row["intent"]), index[OTHER]) for row in rows], dtype=np.int64)
    train, val = split(y, np.random.default_rng(SEED))
    featurizer = Featurizer(bits=BITS, char_ngrams=CHAR_NGRAMS)
    texts = [str(row["text"]) for row in rows]
    ids, weights = featurizer([texts[i] for i in train])
    model = fit(ids, weights, y[train], featurizer.buckets, len(labels))

    table = model.table.weight.detach().numpy().astype(np.float32)
    bias = model.bias.detach().numpy().astype(np.float32)
    q, scale = quantise(table)
    model_bytes = export(q, scale, bias)
    if len(model_bytes) > MAX_MODEL_BYTES:
        raise SystemExit(f"model is {len(model_bytes)} bytes, above {MAX_MODEL_BYTES}")
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    version = f"cloud-{sha256[:8]}"
    manifest: dict[str, Any] = {
        "name": "intent_cloud",
        "version": version,
        "file": MODEL_NAME,
        "sha256": sha256,
        "size_bytes": len(model_bytes),
        "format": "ONNX (opset 17, IR 8)",
        "inputs": {
            "ids": "int64 [batch, features]: hashed n-gram bucket per feature (0-padded)",
            "weights": "float32 [batch, features]: feature weight, 0 for padding",
        },
        "outputs": {"probs": f"float32 [batch, {len(labels)}]: softmax over labels"},
        "labels": labels,
        "threshold": THRESHOLD,
        "decision": "argmax label; 'other' when 'other' wins or the best probability is "
        "below the threshold",
        "features": featurizer.describe(),
        "architecture": {
            "type": "linear over hashed n-grams (multinomial logistic regression), int8 table "
            "with one scale per bucket",
            "buckets": featurizer.buckets,
            "classes": len(labels),
        },
        "training": {
            "command": "python -m training.train_cloud",
            "data": DATA_FILE,
            "label_field": "intent (source intent); fewer than "
            f"{MIN_ROWS} rows -> {OTHER}",
            "rows": len(rows),
            "train_rows": len(train),
            "validation_rows": len(val),
            "epochs": EPOCHS,
            "learning_rate": LEARNING_RATE,
            "weight_decay": WEIGHT_DECAY,
            "seed": SEED,
            "torch": torch.__version__,
        },
        "slots": {
            "method": "gazetteer of slot values from every annotated training row, matched "
            "case-insensitively on word boundaries, longest first",
            "gazetteer": gazetteer(rows),
        },
        "provenance": PROVENANCE,
        "licence_note": "Trained on CC BY 4.0 text (HWU64, SLURP): ship ATTRIBUTION.md with "
        "the model.",
        "created_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }
    val_texts = [texts[i] for i in val]
    with torch.no_grad():
        val_ids, val_weights = featurizer(val_texts)
        reference = torch.softmax(
            HashedLinearReference(q, scale, bias)(val_ids, val_weights), dim=-1
        ).numpy()
    loaded = TextIntentModel(manifest, model_bytes)
    probs = loaded.predict_proba(val_texts)
    parity = float(np.abs(probs - reference).max())
    if parity > 1e-4:
        raise SystemExit(f"onnxruntime differs from the de-quantised network by {parity}")
    accuracy = float((probs.argmax(axis=1) == y[val]).mean())
    decided = [name for name, _ in loaded.decide(probs)]
    iot = [i for i, row in enumerate(val) if labels[y[row]].startswith("iot_")]
    manifest["metrics"] = {
        "note": "on the stratified 10 % validation re-split of the training file (not an "
        "independent evaluation)",
        "accuracy_argmax": round(accuracy, 4),
        "accuracy_with_threshold": round(
            float(np.mean([decided[i] == labels[y[row]] for i, row in enumerate(val)])), 4
        ),
        "smart_home_accuracy_argmax": round(
            float(np.mean([probs[i].argmax() == y[val[i]] for i in iot])), 4
        ),
        "onnx_parity_max_abs": parity,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / MODEL_NAME).write_bytes(model_bytes)
    (args.out / MANIFEST_NAME).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (args.out / "ATTRIBUTION.md").write_text(attribution(version, sha256), encoding="utf-8")
    summary = {"version": version, "size_bytes": len(model_bytes), "labels": len(labels),
               **manifest["metrics"]}
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


class HashedLinearReference:
    """The exported computation in numpy/torch, from the quantised table (for the parity check)."""

    def __init__(self, q: npt.NDArray[np.int8], scale: npt.NDArray[np.float32],
                 bias: npt.NDArray[np.float32]) -> None:
        self.table = torch.from_numpy(q.astype(np.float32) * scale[:, None])
        self.bias = torch.from_numpy(bias)

    def __call__(
        self, ids: npt.NDArray[np.int64], weights: npt.NDArray[np.float32]
    ) -> torch.Tensor:
        rows = self.table[torch.from_numpy(ids)]
        return (rows * torch.from_numpy(weights)[..., None]).sum(dim=1) + self.bias


if __name__ == "__main__":
    raise SystemExit(main())
