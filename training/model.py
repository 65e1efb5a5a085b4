"""The student network (PyTorch): hashed n-gram embedding-bag, ReLU, linear, softmax.

``forward`` takes the padded ``ids``/``weights`` matrices of `gateway.recognizer.text_model.
Featurizer`, exactly what the exported ONNX graph takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from gateway.recognizer.text_model import Featurizer


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
    seed: int = 20240611


class HashedBagClassifier(nn.Module):
    """sum_i w_i * E[id_i] + b -> ReLU -> dropout -> linear -> logits."""

    def __init__(self, buckets: int, dim: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.table = nn.EmbeddingBag(buckets, dim, mode="sum", sparse=True)
        nn.init.normal_(self.table.weight, 0.0, 0.1)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        hidden = self.table(ids, per_sample_weights=weights) + self.bias
        return self.out(self.drop(torch.relu(hidden)))


def train_model(
    texts: Sequence[str], labels: npt.NDArray[np.int64], classes: int, config: TrainConfig
) -> HashedBagClassifier:
    """Train on (texts, label indices) with Adam (SparseAdam for the table); deterministic."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    featurizer = Featurizer(bits=config.bits, char_ngrams=config.char_ngrams)
    ids_np, weights_np = featurizer(texts)
    ids = torch.from_numpy(ids_np)
    weights = torch.from_numpy(weights_np)
    target = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    model = HashedBagClassifier(featurizer.buckets, config.dim, classes, config.dropout)
    sparse = torch.optim.SparseAdam(list(model.table.parameters()), lr=config.lr)
    dense = torch.optim.Adam(
        [p for name, p in model.named_parameters() if not name.startswith("table.")],
        lr=config.lr,
    )
    for _ in range(config.epochs):
        model.train()
        order = torch.randperm(len(target), generator=generator)
        for start in range(0, len(target), config.batch_size):
            rows = order[start : start + config.batch_size]
            loss = nn.functional.cross_entropy(
                model(ids[rows], weights[rows]),
                target[rows],
                label_smoothing=config.label_smoothing,
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
