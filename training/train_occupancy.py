"""Train, export and check the room-occupancy model (logistic regression -> ONNX).

    python -m training.train_occupancy [--data-dir ../shared/data] [--out gateway/models]

Data: ``sensors/occupancy_datatraining.txt`` (UCI Occupancy Detection, training file; one row a
minute, 2015-02-04 .. 2015-02-10; CC BY 4.0). Steps (deterministic: the same data gives a
byte-identical ``occupancy.onnx``):

1. Rows are sorted by timestamp and split by time: the first 80 % train, the **last 20 %** is the
   validation split (no shuffling: minutes next to each other are nearly identical, so a random
   split would leak). Every reported metric is on that split; nothing of it is trained on.
2. Feature selection on the training part only: leave-one-day-out cross-validation of a
   standardised logistic regression for every subset of the five readings that contains ``light``
   (a subset without light is far worse on every fold). The subset with the best mean fold
   accuracy wins; ties (within 0.001) go to the smaller subset.
3. The final model (same recipe) is fitted on the whole training part and written as a tiny ONNX
   graph: ``(x - mean) / std`` -> MatMul -> Add -> Sigmoid, input ``features`` float32
   ``[batch, k]``, output ``probability`` float32 ``[batch, 1]`` (probability of "occupied").
   onnxruntime is checked against scikit-learn on the validation rows (max |diff| <= 1e-5).
4. The manifest (feature order and units, coefficients, metrics, provenance, sha256) is written
   next to the model and the occupancy section of ``ATTRIBUTION.md`` is added or replaced.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import itertools
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import sklearn
from onnx import TensorProto, helper
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

from gateway.recognizer.evaluate import default_data_dir

DATA_FILE = "sensors/occupancy_datatraining.txt"
MODEL_NAME = "occupancy.onnx"
MANIFEST_NAME = "occupancy.manifest.json"
VALIDATION_FRACTION = 0.2
THRESHOLD = 0.5
C = 1.0
OPSET = 17

# (canonical name, CSV column, unit, names accepted at run time)
COLUMNS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("temperature", "Temperature", "degC", ("temperature", "temp")),
    ("humidity", "Humidity", "%RH", ("humidity",)),
    ("light", "Light", "lux", ("light",)),
    ("co2", "CO2", "ppm", ("co2",)),
    ("humidity_ratio", "HumidityRatio", "kg water / kg dry air", ("humidity_ratio",)),
)

PROVENANCE = {
    "source": "UCI Occupancy Detection (Candanedo & Feldheim, 2016), datatraining.txt",
    "repository": "LuisM78/Occupancy-detection-data",
    "commit": "ba2b1d7b53a71292ff61b867d3e16f0e539c7eb6",
    "uci_id": 357,
    "licence": "CC BY 4.0",
    "citation": "Luis M. Candanedo, Veronique Feldheim. Accurate occupancy detection of an office "
    "room from light, temperature, humidity and CO2 measurements using statistical learning "
    "models. Energy and Buildings 112 (2016) 28-39.",
}

ATTRIBUTION_BEGIN = "<!-- occupancy-model: begin -->"
ATTRIBUTION_END = "<!-- occupancy-model: end -->"

Array = npt.NDArray[np.float64]


def log(message: str) -> None:
    sys.stderr.write(f"[train_occupancy] {message}\n")
    sys.stderr.flush()


def load_rows(path: Path) -> tuple[list[dt.datetime], Array, npt.NDArray[np.int64]]:
    """(timestamps, readings [n, 5] in COLUMNS order, occupancy 0/1), sorted by time."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        # The file's header has one name fewer than its rows: the first field is a row number.
        names = header if len(header) > 0 and header[0] != "date" else ["row", *header]
        index = {name: i for i, name in enumerate(names)}
        records = []
        for fields in reader:
            if not fields:
                continue
            stamp = dt.datetime.fromisoformat(fields[index["date"]])
            values = [float(fields[index[column]]) for _, column, _, _ in COLUMNS]
            records.append((stamp, values, int(float(fields[index["Occupancy"]]))))
    records.sort(key=lambda record: record[0])
    stamps = [record[0] for record in records]
    x = np.asarray([record[1] for record in records], dtype=np.float64)
    y = np.asarray([record[2] for record in records], dtype=np.int64)
    return stamps, x, y


def fit(x: Array, y: npt.NDArray[np.int64]) -> tuple[Array, Array, LogisticRegression]:
    """Standardise with the training rows' mean/std, then a lbfgs logistic regression."""
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    model = LogisticRegression(C=C, solver="lbfgs", max_iter=1000)
    model.fit((x - mean) / std, y)
    return mean, std, model


def predict_proba(mean: Array, std: Array, model: LogisticRegression, x: Array) -> Array:
    return np.asarray(model.predict_proba((x - mean) / std)[:, 1], dtype=np.float64)


def select_features(
    x: Array, y: npt.NDArray[np.int64], days: list[str]
) -> tuple[tuple[int, ...], list[dict[str, Any]]]:
    """Leave-one-day-out CV on the training part; best mean accuracy, ties -> fewer features."""
    light = [name for name, *_ in COLUMNS].index("light")
    others = [i for i in range(len(COLUMNS)) if i != light]
    day_array = np.asarray(days)
    unique_days = sorted(set(days))
    results: list[dict[str, Any]] = []
    for size in range(len(others) + 1):
        for extra in itertools.combinations(others, size):
            subset = tuple(sorted((light, *extra)))
            fold_acc = []
            for day in unique_days:
                test = day_array == day
                mean, std, model = fit(x[~test][:, subset], y[~test])
                guess = predict_proba(mean, std, model, x[test][:, subset]) >= THRESHOLD
                fold_acc.append(float(accuracy_score(y[test], guess)))
            results.append(
                {
                    "features": [COLUMNS[i][0] for i in subset],
                    "mean_accuracy": round(float(np.mean(fold_acc)), 4),
                    "fold_accuracy": {
                        d: round(a, 4) for d, a in zip(unique_days, fold_acc, strict=True)
                    },
                    "_subset": subset,
                }
            )
    best = max(result["mean_accuracy"] for result in results)
    near = [r for r in results if r["mean_accuracy"] >= best - 0.001]
    chosen: tuple[int, ...] = min(near, key=lambda r: (len(r["_subset"]), -r["mean_accuracy"]))[
        "_subset"
    ]
    for result in results:
        del result["_subset"]
    results.sort(key=lambda r: -r["mean_accuracy"])
    return chosen, results


def build_onnx(mean: Array, std: Array, coef: Array, intercept: float) -> bytes:
    """The graph: probability = sigmoid(((x - mean) / std) @ coef + intercept)."""
    k = len(mean)
    f32 = np.float32
    inits = [
        onnx.numpy_helper.from_array(mean.astype(f32).reshape(1, k), "mean"),
        onnx.numpy_helper.from_array(std.astype(f32).reshape(1, k), "std"),
        onnx.numpy_helper.from_array(coef.astype(f32).reshape(k, 1), "coef"),
        onnx.numpy_helper.from_array(np.asarray([intercept], dtype=f32), "intercept"),
    ]
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["standardised"]),
        helper.make_node("MatMul", ["standardised", "coef"], ["product"]),
        helper.make_node("Add", ["product", "intercept"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes,
        "occupancy_logreg",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", k])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edge-intent-gateway/training.train_occupancy",
        producer_version="1",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def metrics(y: npt.NDArray[np.int64], prob: Array) -> dict[str, Any]:
    guess = (prob >= THRESHOLD).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, guess, labels=[0, 1]).ravel())
    return {
        "accuracy": round(float(accuracy_score(y, guess)), 4),
        "f1_occupied": round(float(f1_score(y, guess)), 4),
        "precision_occupied": round(tp / max(tp + fp, 1), 4),
        "recall_occupied": round(tp / max(tp + fn, 1), 4),
        "roc_auc": round(float(roc_auc_score(y, prob)), 4),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "n": len(y),
        "occupied": int(y.sum()),
    }


def attribution_section(manifest: dict[str, Any]) -> str:
    p = PROVENANCE
    table_row = (
        f"| {p['source']} | {p['repository']} @ {p['commit']} | {p['licence']}"
        f" (UCI ML Repository, id {p['uci_id']}) |"
    )
    return f"""{ATTRIBUTION_BEGIN}
## Attribution: the occupancy model

`{MODEL_NAME}` (version `{manifest["version"]}`, sha256 `{manifest["sha256"]}`) is a logistic
regression trained on the UCI Occupancy Detection data set. Its licence requires attribution
wherever the data or a model trained on it is distributed: keep this section (and the
`provenance` of `{MANIFEST_NAME}`) with the model.

| source | repository @ commit | licence |
|---|---|---|
{table_row}

- {p["citation"]}
  Licence: Creative Commons Attribution 4.0 International, https://creativecommons.org/licenses/by/4.0/

Changes made: the rows were sorted by time and split 80/20 by time; a standardised logistic
regression was fitted on the first 80 % ({", ".join(manifest["features_used"])}). The model
stores only the per-feature mean, standard deviation, coefficients and intercept; no row of the
data is stored in it.
{ATTRIBUTION_END}
"""


def update_attribution(path: Path, section: str) -> None:
    """Add the occupancy section, or replace an earlier one; keep everything else."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start, end = text.find(ATTRIBUTION_BEGIN), text.find(ATTRIBUTION_END)
    if start >= 0 and end > start:
        text = text[:start] + section + text[end + len(ATTRIBUTION_END) + 1 :]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    path.write_text(text, encoding="utf-8")


def run(data_dir: Path | None, out: Path) -> dict[str, Any]:
    data_dir = data_dir or default_data_dir()
    data_path = data_dir / DATA_FILE
    stamps, x_all, y_all = load_rows(data_path)
    n = len(y_all)
    cut = n - round(VALIDATION_FRACTION * n)
    x_train, y_train = x_all[:cut], y_all[:cut]
    x_val, y_val = x_all[cut:], y_all[cut:]
    days = [stamp.date().isoformat() for stamp in stamps[:cut]]
    log(
        f"{n} rows; train {cut} ({stamps[0]} .. {stamps[cut - 1]}), val {n - cut} "
        f"({stamps[cut]} .. {stamps[-1]})"
    )

    subset, cv = select_features(x_train, y_train, days)
    names = [COLUMNS[i][0] for i in subset]
    log(f"leave-one-day-out CV chose {names} (mean accuracy {cv[0]['mean_accuracy']})")

    mean, std, model = fit(x_train[:, subset], y_train)
    coef = np.asarray(model.coef_[0], dtype=np.float64)
    intercept = float(model.intercept_[0])
    model_bytes = build_onnx(mean, std, coef, intercept)

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    (onnx_prob,) = session.run(["probability"], {"features": x_val[:, subset].astype(np.float32)})
    onnx_prob = np.asarray(onnx_prob, dtype=np.float64)[:, 0]
    sk_prob = predict_proba(mean, std, model, x_val[:, subset])
    parity = float(np.max(np.abs(onnx_prob - sk_prob)))
    agreement = float(np.mean((onnx_prob >= THRESHOLD) == (sk_prob >= THRESHOLD)))
    if parity > 1e-5 or agreement < 1.0:
        raise SystemExit(f"onnxruntime/scikit-learn mismatch: max diff {parity}, agree {agreement}")

    val_metrics = metrics(y_val, onnx_prob)
    train_metrics = metrics(y_train, predict_proba(mean, std, model, x_train[:, subset]))
    majority = round(float(max(y_val.mean(), 1 - y_val.mean())), 4)

    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_NAME
    model_path.write_bytes(model_bytes)
    digest = hashlib.sha256(model_bytes).hexdigest()
    manifest: dict[str, Any] = {
        "name": "occupancy",
        "version": f"{stamps[-1]:%Y%m%d}-{digest[:8]}",
        "file": MODEL_NAME,
        "sha256": digest,
        "size_bytes": len(model_bytes),
        "task": "binary: is the room occupied, from one set of simultaneous readings",
        "inputs": {
            "features": {
                "dtype": "float32",
                "shape": ["batch", len(subset)],
                "order": [
                    {"name": COLUMNS[i][0], "unit": COLUMNS[i][2], "aliases": list(COLUMNS[i][3])}
                    for i in subset
                ],
            }
        },
        "outputs": {
            "probability": {
                "dtype": "float32",
                "shape": ["batch", 1],
                "meaning": "probability that the room is occupied",
            }
        },
        "threshold": THRESHOLD,
        "features_used": names,
        "features_accepted": {
            name: {"unit": unit, "aliases": list(aliases)} for name, _, unit, aliases in COLUMNS
        },
        "model": {
            "kind": "logistic regression on standardised readings (sklearn lbfgs, L2, C=1.0)",
            "graph": "probability = Sigmoid(((features - mean) / std) @ coef + intercept), "
            f"ONNX opset {OPSET}",
            "mean": {name: round(float(v), 6) for name, v in zip(names, mean, strict=True)},
            "std": {name: round(float(v), 6) for name, v in zip(names, std, strict=True)},
            "coef_per_std": {name: round(float(v), 6) for name, v in zip(names, coef, strict=True)},
            "intercept": round(intercept, 6),
            "explanation": "the logit grows by coef_per_std for each standard deviation a "
            "reading is above the training mean",
        },
        "metrics": {
            "validation_split": val_metrics,
            "validation_majority_baseline_accuracy": majority,
            "training_part": train_metrics,
        },
        "validation_split": {
            "what": "time-ordered split of the training file (NOT an independent held-out set): "
            "rows sorted by timestamp, the LAST 20 % are validation, the first 80 % train",
            "file": DATA_FILE,
            "fraction": VALIDATION_FRACTION,
            "train_rows": cut,
            "train_range": [stamps[0].isoformat(), stamps[cut - 1].isoformat()],
            "validation_rows": n - cut,
            "validation_range": [stamps[cut].isoformat(), stamps[-1].isoformat()],
        },
        "feature_selection": {
            "method": "leave-one-day-out CV of the same recipe on the training part only; best "
            "mean accuracy, ties within 0.001 -> fewer features",
            "candidates": cv,
        },
        "parity": {
            "rows": n - cut,
            "max_abs_prob_diff_vs_sklearn": parity,
            "decision_agreement": agreement,
        },
        "training": {
            "seed": "none needed: lbfgs on a fixed, time-sorted matrix is deterministic",
            "data_files": {DATA_FILE: hashlib.sha256(data_path.read_bytes()).hexdigest()},
            "scikit-learn": sklearn.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "command": "python -m training.train_occupancy [--data-dir ../shared/data] "
            "[--out gateway/models]",
        },
        "provenance": [PROVENANCE],
        "licence_note": "Trained on CC BY 4.0 data (UCI Occupancy Detection): ship "
        "ATTRIBUTION.md with the model.",
        "created_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    update_attribution(out / "ATTRIBUTION.md", attribution_section(manifest))
    log(f"wrote {model_path} ({len(model_bytes)} bytes, sha256 {digest})")
    log(f"validation split: {json.dumps(val_metrics)}")
    return manifest


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m training.train_occupancy [--data-dir D] [--out O]``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("gateway/models"))
    args = parser.parse_args(argv)
    run(args.data_dir, args.out)


if __name__ == "__main__":
    main()
