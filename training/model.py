"""The student network (PyTorch): n-gram embedding-bag, ReLU, linear, softmax.

``forward`` takes the padded ``ids``/``weights`` matrices of `gateway.recognizer.text_model.
Featurizer`, exactly what the exported ONNX graph takes. Ids below ``buckets`` are hashed
n-grams (a trainable table); ids from ``buckets`` on are vocab words whose rows are frozen
static vectors from the teacher times a trainable projection (``static @ project``, folded into
one table at export, so the graph is the same either way). Targets are the labels, optionally
mixed with the teacher's soft probabilities (distillation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from gateway.recognizer.text_model import Featurizer

UNLABELLED = -100  # a transfer row: only the teacher's probabilities train on it


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (all recorded in the manifest)."""

    bits: int = 16
    char_ngrams: tuple[int, ...] = (2, 3, 4, 5)
    dim: int = 32
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    dropout: float = 0.2
    iot_oversample: int = 6
    augment_copies: int = 3
    label_smoothing: float = 0.0
    distill_weight: float = 0.5
    static_only_rate: float = 0.0
    transfer_iot_copies: int = 4
    transfer_other_copies: int = 1
    seed: int = 20240611


class HashedBagClassifier(nn.Module):
    """sum_i w_i * E[id_i] + b -> ReLU -> dropout -> linear -> logits."""

    def __init__(
        self,
        buckets: int,
        dim: int,
        classes: int,
        dropout: float,
        *,
        static: torch.Tensor | None = None,
        static_only_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.buckets = buckets
        self.static_only_rate = static_only_rate
        self.table = nn.EmbeddingBag(buckets, dim, mode="sum", sparse=True)
        nn.init.normal_(self.table.weight, 0.0, 0.1)
        self.static: nn.EmbeddingBag | None = None
        self.project: nn.Linear | None = None
        if static is not None:
            self.static = nn.EmbeddingBag.from_pretrained(static, freeze=True, mode="sum")
            self.project = nn.Linear(static.shape[1], dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.static is None or self.project is None:
            hidden = self.table(ids, per_sample_weights=weights)
        else:
            hashed = ids < self.buckets
            zero = torch.zeros_like(ids)
            bag = self.table(torch.where(hashed, ids, zero), per_sample_weights=weights * hashed)
            if self.training and self.static_only_rate > 0.0:
                # Some rows see only the static words, so that branch learns to stand alone.
                keep = torch.rand(ids.shape[0], 1) >= self.static_only_rate
                bag = bag * keep
            hidden = bag + self.project(
                self.static(
                    torch.where(hashed, zero, ids - self.buckets),
                    per_sample_weights=weights * ~hashed,
                )
            )
        logits: torch.Tensor = self.out(self.drop(torch.relu(hidden + self.bias)))
        return logits

    def export_table(self) -> npt.NDArray[np.float32]:
        """The whole embedding table as the ONNX graph sees it: hashed rows, then vocab rows."""
        with torch.no_grad():
            table = self.table.weight
            if self.static is not None and self.project is not None:
                table = torch.cat([table, self.project(self.static.weight)])
            return table.numpy().astype(np.float32)


def train_model(
    texts: Sequence[str],
    labels: npt.NDArray[np.int64],
    classes: int,
    config: TrainConfig,
    featurizer: Featurizer,
    *,
    static: npt.NDArray[np.float32] | None = None,
    soft: npt.NDArray[np.float32] | None = None,
) -> HashedBagClassifier:
    """Train on (texts, label indices[, teacher probabilities]) with Adam; deterministic.

    ``static`` holds one frozen vector per vocab word of ``featurizer``; with ``soft``, the loss
    is ``(1 - distill_weight) * CE(labels) + distill_weight * CE(soft)``, where rows labelled
    `UNLABELLED` (teacher-only transfer rows) add nothing to the first term.
    """
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    ids_np, weights_np = featurizer(texts)
    ids = torch.from_numpy(ids_np)
    weights = torch.from_numpy(weights_np)
    target = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    soft_target = None if soft is None else torch.from_numpy(np.asarray(soft, dtype=np.float32))
    model = HashedBagClassifier(
        featurizer.buckets,
        config.dim,
        classes,
        config.dropout,
        static=None if static is None else torch.from_numpy(np.asarray(static, np.float32)),
        static_only_rate=config.static_only_rate,
    )
    sparse = torch.optim.SparseAdam(list(model.table.parameters()), lr=config.lr)
    dense = torch.optim.Adam(
        [p for name, p in model.named_parameters() if p.requires_grad and name != "table.weight"],
        lr=config.lr,
    )
    for _ in range(config.epochs):
        model.train()
        order = torch.randperm(len(target), generator=generator)
        for start in range(0, len(target), config.batch_size):
            rows = order[start : start + config.batch_size]
            logits = model(ids[rows], weights[rows])
            loss = nn.functional.cross_entropy(
                logits,
                target[rows],
                ignore_index=UNLABELLED,
                label_smoothing=config.label_smoothing,
                reduction="sum",
            ) / len(rows)
            if soft_target is not None:
                loss = (1.0 - config.distill_weight) * loss + config.distill_weight * (
                    nn.functional.cross_entropy(logits, soft_target[rows])
                )
            sparse.zero_grad()
            dense.zero_grad()
            loss.backward()
            sparse.step()
            dense.step()
    model.eval()
    return model


def logits_of(
    model: HashedBagClassifier, featurizer: Featurizer, texts: Sequence[str]
) -> npt.NDArray[np.float32]:
    """Logits in eval mode, batched."""
    chunks: list[npt.NDArray[np.float32]] = []
    with torch.no_grad():
        for start in range(0, len(texts), 1024):
            ids, weights = featurizer(texts[start : start + 1024])
            chunks.append(model(torch.from_numpy(ids), torch.from_numpy(weights)).numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, model.out.out_features), np.float32)
