"""What the optional teacher gives the student: static word vectors and soft targets.

With a teacher (`training.teacher`, all-MiniLM-L6-v2), training adds:

- a word list (the teacher's whole-word WordPiece entries plus every word of the training
  rows) and one frozen teacher vector per word (the word embedded on its own): the student's
  static-word rows, so a synonym never seen in a command still means something;
- a teacher head, a class-balanced L2 logistic regression on the teacher's sentence embeddings
  of the labelled training rows, fitted per calibration fold on that fold's rows only;
- a transfer set, noisy copies of the training texts (`training.augment.perturb`) that carry no
  label, only the head's probabilities (as do the labelled rows).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

from gateway.recognizer.text_model import normalize
from training.augment import perturb
from training.teacher import Teacher

HEAD_C = 16.0  # inverse L2 strength, as in scikit-learn's LogisticRegression(C=...)
_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class Knowledge:
    """The teacher's contributions: vocab, static vectors, cached sentence embeddings."""

    teacher: Teacher
    vocab: tuple[str, ...]
    static: npt.NDArray[np.float32]
    cache: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Teacher sentence embeddings, each text computed once per run."""
        missing = sorted({text for text in texts if text not in self.cache})
        if missing:
            for text, vector in zip(missing, self.teacher.embed(missing), strict=True):
                self.cache[text] = vector
        return np.stack([self.cache[text] for text in texts]).astype(np.float32)


def build_knowledge(teacher: Teacher, training_texts: Sequence[str]) -> Knowledge:
    """The vocab (teacher whole words + training words) and its static vectors."""
    words = {word for word in teacher.tokenizer.vocab if _WORD.fullmatch(word)}
    for text in training_texts:
        words.update(normalize(text).split())
    vocab = tuple(sorted(words))
    return Knowledge(teacher, vocab, teacher.embed(vocab, batch_size=512))


def fit_head(
    x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a class-balanced multinomial logistic regression (L-BFGS, deterministic).

    Minimises ``sum_i w_i * CE_i + |W|^2 / (2 * HEAD_C)`` with ``w_i = n / (classes_present *
    count(y_i))``, scikit-learn's ``class_weight="balanced"``.
    """
    features = torch.from_numpy(x)
    target = torch.from_numpy(y)
    counts = torch.bincount(target, minlength=classes).to(torch.float32)
    present = int((counts > 0).sum())
    row_weight = (len(y) / (present * counts.clamp(min=1.0)))[target]
    weight = torch.zeros((x.shape[1], classes), requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=500,
        history_size=20,
        tolerance_grad=1e-6,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        losses = torch.nn.functional.cross_entropy(
            features @ weight + bias, target, reduction="none"
        )
        loss = (row_weight * losses).sum() + (weight * weight).sum() / (2.0 * HEAD_C)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]
    return weight.detach(), bias.detach()


def head_probs(
    head: tuple[torch.Tensor, torch.Tensor], x: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """The head's softmax probabilities for embeddings ``x``."""
    weight, bias = head
    with torch.no_grad():
        probs = torch.softmax(torch.from_numpy(x) @ weight + bias, dim=1)
    return probs.numpy().astype(np.float32)


def transfer_texts(
    iot_texts: Sequence[str],
    other_texts: Sequence[str],
    *,
    iot_copies: int,
    other_copies: int,
    seed: int,
    words: Sequence[str],
) -> list[str]:
    """The unlabelled transfer set: noisy copies, more of the (rarer) smart-home rows."""
    return perturb(iot_texts, copies=iot_copies, seed=seed, words=words) + perturb(
        other_texts, copies=other_copies, seed=seed + 1, words=words
    )


def soft_targets(
    knowledge: Knowledge,
    labelled: Sequence[str],
    gold: npt.NDArray[np.int64],
    texts: Sequence[str],
    classes: int,
) -> npt.NDArray[np.float32]:
    """Probabilities for ``texts`` of a head fitted on (``labelled``, ``gold``) only."""
    head = fit_head(knowledge.embed(labelled), gold, classes)
    return head_probs(head, knowledge.embed(texts))
