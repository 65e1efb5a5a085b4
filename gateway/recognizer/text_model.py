"""The local text-intent model at run time: hashed n-gram features in numpy, an ONNX classifier.

Preprocessing is pure Python/numpy and deterministic (no string ops inside the ONNX graph):

1. ``normalize``: lower-case, drop apostrophes, every run of other non ``[a-z0-9]`` characters
   becomes one space.
2. Features of the normalised text: word unigrams, word bigrams (with ``<s>``/``</s>``) and
   character n-grams (n in ``char_ngrams``) of ``" " + text + " "``; each is hashed into
   ``2**bits`` buckets (``zlib.crc32`` for words, a multiplicative hash of the packed bytes for
   characters). A feature's weight is ``1/sqrt(count)`` of its group (words, characters), so each
   group has unit L2 norm.
3. Optionally (a model whose ONNX file carries a ``vocab`` metadata entry) every word found in
   that fixed word list adds row ``2**bits + its index``, weighted ``1/count`` of the known words
   (a mean): those rows hold static word vectors distilled from a sentence-embedding teacher, so
   words never seen in a training command still land near their synonyms.
4. The padded ``ids``/``weights`` matrices go to the ONNX graph: an embedding-bag (a weighted sum
   of rows of an embedding table, stored as int8 with one scale per row), ReLU, a linear layer
   and a softmax over the labels.

The model file's sha256 is checked against the manifest written next to it before a session is
made from the very same bytes.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.recognizer.artifact import ModelIntegrityError, cpu_session, read_artifact, verify
from gateway.recognizer.slots import SlotExtractor
from schemas import Intent

__all__ = [
    "MANIFEST_NAME",
    "MODEL_NAME",
    "OTHER",
    "Featurizer",
    "ModelIntegrityError",
    "TextIntentModel",
    "normalize",
]

MODEL_NAME = "intent_text.onnx"
MANIFEST_NAME = "intent_text.manifest.json"
OTHER = "other"

_NON_WORD = re.compile(r"[^a-z0-9]+")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, odd: a multiplicative hash
_SMALL_BATCH = 4  # up to this many texts, plain Python beats numpy's per-call overhead


def normalize(text: str) -> str:
    """Lower-case, drop apostrophes, collapse everything but ``[a-z0-9]`` into single spaces."""
    return _NON_WORD.sub(" ", text.lower().replace("'", "").replace("\u2019", "")).strip()


@dataclass(frozen=True, slots=True)
class _Group:
    """Features of one kind: owning row, table id; weights 1/count (mean) or 1/sqrt(count)."""

    rows: npt.NDArray[np.int64]
    ids: npt.NDArray[np.int64]
    mean: bool = False


@dataclass(frozen=True)
class Featurizer:
    """Text -> padded (ids, weights) matrices of hashed word and character n-grams."""

    bits: int = 16
    char_ngrams: tuple[int, ...] = (2, 3, 4, 5)
    vocab: tuple[str, ...] = ()
    _index: dict[bytes, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not 8 <= self.bits <= 24:
            raise ValueError(f"bits must be within 8..24, got {self.bits}")
        if not self.char_ngrams or not all(1 <= n <= 7 for n in self.char_ngrams):
            raise ValueError(f"char_ngrams must be within 1..7, got {self.char_ngrams}")
        index = {word.encode("ascii"): self.buckets + i for i, word in enumerate(self.vocab)}
        if len(index) != len(self.vocab):
            raise ValueError("vocab words must be distinct")
        object.__setattr__(self, "_index", index)

    @property
    def buckets(self) -> int:
        """Rows of the hashed part of the embedding table."""
        return 1 << self.bits

    @property
    def rows(self) -> int:
        """Rows of the whole embedding table: hashed buckets, then one per vocab word."""
        return self.buckets + len(self.vocab)

    @classmethod
    def from_manifest(cls, spec: Mapping[str, Any], vocab: Sequence[str] = ()) -> Featurizer:
        """The featurizer that a manifest's ``features`` object (and the model's vocab) describe."""
        expected = int(spec.get("static_words", {}).get("count", 0))
        if expected != len(vocab):
            raise ValueError(
                f"the manifest expects {expected} vocab words, the model has {len(vocab)}"
            )
        return cls(
            bits=int(spec["bits"]),
            char_ngrams=tuple(int(n) for n in spec["char_ngrams"]),
            vocab=tuple(vocab),
        )

    def describe(self) -> dict[str, Any]:
        """The manifest's ``features`` object."""
        static = (
            {
                "static_words": {
                    "count": len(self.vocab),
                    "list": "ONNX metadata_props 'vocab' (newline-separated, normalised words)",
                    "ids": "2**bits + index of the word in the list",
                    "weights": "1/(number of known words in the text)",
                }
            }
            if self.vocab
            else {}
        )
        return {
            "normalize": "lower-case; drop apostrophes; runs of [^a-z0-9] -> one space; strip",
            "word_ngrams": [1, 2],
            "char_ngrams": list(self.char_ngrams),
            "char_padding": "one space on each side",
            "bits": self.bits,
            "hash_words": "zlib.crc32(b'w' + word) / crc32(b'b' + w1 + b' ' + w2), then * "
            "0x9E3779B97F4A7C15 mod 2**64 >> (64 - bits)",
            "hash_chars": "bytes packed little-endian into a uint64 with n << 56, then * "
            "0x9E3779B97F4A7C15 mod 2**64 >> (64 - bits)",
            "weights": "1/sqrt(number of features of the group), groups: words, characters",
            **static,
        }

    def _hash(self, values: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        return ((values * _GOLDEN) >> np.uint64(64 - self.bits)).astype(np.int64)

    def _word_groups(self, encoded: Sequence[bytes]) -> list[_Group]:
        """Word unigrams and bigrams (with sentence boundaries) hashed with crc32; known words."""
        crc32 = zlib.crc32
        split = [data.split() for data in encoded]
        codes: list[int] = []
        for words in split:
            codes += [crc32(b"w" + word) for word in words]
            codes += [
                crc32(b"b" + left + b" " + right)
                for left, right in zip([b"<s>", *words], [*words, b"</s>"], strict=True)
            ]
        sizes = np.fromiter((2 * len(words) + 1 for words in split), np.int64, len(split))
        rows = np.repeat(np.arange(len(split), dtype=np.int64), sizes)
        groups = [_Group(rows, self._hash(np.array(codes, dtype=np.uint64)))]
        if self._index:
            index = self._index
            known = [[index[word] for word in words if word in index] for words in split]
            counts = np.fromiter((len(ids) for ids in known), np.int64, len(known))
            groups.append(
                _Group(
                    np.repeat(np.arange(len(known), dtype=np.int64), counts),
                    np.array([i for ids in known for i in ids], dtype=np.int64),
                    mean=True,
                )
            )
        return groups

    def _char_group(self, encoded: Sequence[bytes]) -> _Group:
        """Every character n-gram that lies inside one padded text, hashed from its bytes."""
        count = len(encoded)
        lengths = np.fromiter((len(data) for data in encoded), dtype=np.int64, count=count)
        ends = np.cumsum(lengths)
        joined = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(np.uint64)
        owner = np.repeat(np.arange(count, dtype=np.int64), lengths)
        char_rows: list[npt.NDArray[np.int64]] = []
        char_ids: list[npt.NDArray[np.int64]] = []
        for n in self.char_ngrams:
            starts = joined.size - n + 1
            if starts <= 0:
                continue
            packed = np.full(starts, np.uint64(n) << np.uint64(56), dtype=np.uint64)
            for k in range(n):
                packed |= joined[k : k + starts] << np.uint64(8 * k)
            rows = owner[:starts]
            inside = np.arange(starts, dtype=np.int64) + n <= ends[rows]
            char_rows.append(rows[inside])
            char_ids.append(self._hash(packed[inside]))
        return _Group(
            np.concatenate(char_rows) if char_rows else np.zeros(0, np.int64),
            np.concatenate(char_ids) if char_ids else np.zeros(0, np.int64),
        )

    def _row(self, data: bytes) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """One padded text's ids and weights, in the order of the vectorised path (same values)."""
        words = data.split()
        codes = [zlib.crc32(b"w" + word) for word in words]
        codes += [
            zlib.crc32(b"b" + left + b" " + right)
            for left, right in zip([b"<s>", *words], [*words, b"</s>"], strict=True)
        ]
        known = [self._index[word] for word in words if word in self._index]
        chars = np.frombuffer(data, dtype=np.uint8).astype(np.uint64)
        acc = np.zeros(chars.size, dtype=np.uint64)  # acc[i]: bytes i .. i+k packed
        by_n: dict[int, npt.NDArray[np.uint64]] = {}
        for k in range(min(max(self.char_ngrams), chars.size)):
            acc[: chars.size - k] |= chars[k:] << np.uint64(8 * k)
            by_n[k + 1] = acc[: chars.size - k] | np.uint64((k + 1) << 56)
        parts = [by_n[n] for n in self.char_ngrams if n in by_n]
        packed = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
        sizes = np.array([len(codes), len(known), packed.size], dtype=np.float32)
        scale = 1.0 / np.array([np.sqrt(sizes[0]), max(sizes[1], 1.0), np.sqrt(max(sizes[2], 1.0))])
        ids = np.concatenate(
            [
                self._hash(np.array(codes, dtype=np.uint64)),
                np.array(known, dtype=np.int64),
                self._hash(packed),
            ]
        )
        return ids, np.repeat(scale.astype(np.float32), sizes.astype(np.int64))

    def _small(
        self, encoded: Sequence[bytes]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        rows = [self._row(data) for data in encoded]
        width = max(ids.size for ids, _ in rows)
        ids_out = np.zeros((len(rows), width), dtype=np.int64)
        weights_out = np.zeros((len(rows), width), dtype=np.float32)
        for row, (ids, weights) in enumerate(rows):
            ids_out[row, : ids.size] = ids
            weights_out[row, : weights.size] = weights
        return ids_out, weights_out

    def __call__(
        self, texts: Sequence[str]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Padded ``ids`` (int64) and ``weights`` (float32), both of shape (len(texts), L)."""
        count = len(texts)
        encoded = [b" " + normalize(text).encode("ascii") + b" " for text in texts]
        if 0 < count <= _SMALL_BATCH:
            return self._small(encoded)
        groups = [*self._word_groups(encoded), self._char_group(encoded)]
        weights_all: list[npt.NDArray[np.float32]] = []
        for group in groups:
            per_row = np.maximum(np.bincount(group.rows, minlength=count).astype(np.float32), 1.0)
            scale = (1.0 / (per_row if group.mean else np.sqrt(per_row))).astype(np.float32)
            weights_all.append(scale[group.rows])
        rows_cat = np.concatenate([group.rows for group in groups])
        order = np.argsort(rows_cat, kind="stable")
        rows_cat = rows_cat[order]
        ids_cat = np.concatenate([group.ids for group in groups])[order]
        weights_cat = np.concatenate(weights_all)[order]
        per_row_total = np.bincount(rows_cat, minlength=count)
        width = max(int(per_row_total.max(initial=0)), 1)
        column = np.arange(rows_cat.size, dtype=np.int64) - np.repeat(
            np.cumsum(per_row_total) - per_row_total, per_row_total
        )
        ids_out = np.zeros((count, width), dtype=np.int64)
        weights_out = np.zeros((count, width), dtype=np.float32)
        ids_out[rows_cat, column] = ids_cat
        weights_out[rows_cat, column] = weights_cat
        return ids_out, weights_out


class TextIntentModel:
    """The packaged (or a given) text-intent model: ``predict`` maps texts to `Intent`s."""

    def __init__(
        self,
        manifest: Mapping[str, Any],
        model_bytes: bytes,
        *,
        threshold: float | None = None,
        intra_op_threads: int = 1,
        model_file: Path | None = None,
    ) -> None:
        """Build from a manifest and the model bytes it describes (checked: sha256 and size)."""
        digest = verify(manifest, model_bytes, model_file)
        self._session = cpu_session(model_bytes, intra_op_threads)
        metadata = self._session.get_modelmeta().custom_metadata_map
        vocab = metadata["vocab"].split("\n") if metadata.get("vocab") else []
        try:
            self.labels: tuple[str, ...] = tuple(str(label) for label in manifest["labels"])
            self.featurizer = Featurizer.from_manifest(manifest["features"], vocab)
            default_threshold = float(manifest["threshold"])
            self.version: str = str(manifest["version"])
            gazetteer = manifest.get("slots", {}).get("gazetteer", {})
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelIntegrityError(f"malformed model manifest: {exc!r}") from exc
        if OTHER not in self.labels:
            raise ModelIntegrityError(f"the manifest's labels lack {OTHER!r}: {self.labels}")
        self.threshold = default_threshold if threshold is None else float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {self.threshold}")
        if intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
        self.manifest: dict[str, Any] = dict(manifest)
        self.sha256: str = digest
        self.size_bytes: int = len(model_bytes)
        self.model_file = model_file
        self.intra_op_threads = intra_op_threads
        self.slots = SlotExtractor(gazetteer)
        self._other = self.labels.index(OTHER)
        outputs = [output.name for output in self._session.get_outputs()]
        if "probs" not in outputs:
            raise ModelIntegrityError(f"the model has no 'probs' output (outputs: {outputs})")

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        threshold: float | None = None,
        intra_op_threads: int = 1,
    ) -> TextIntentModel:
        """Load a model: the packaged one by default, else a directory, manifest or .onnx file.

        Raises `ModelIntegrityError` when the manifest is missing or malformed, or when the
        model file's sha256 or size differs from the manifest.
        """
        manifest, model_bytes, model_file = read_artifact(path, MANIFEST_NAME)
        return cls(
            manifest,
            model_bytes,
            threshold=threshold,
            intra_op_threads=intra_op_threads,
            model_file=model_file,
        )

    def predict_proba(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Label probabilities, shape (len(texts), len(labels)), in one onnxruntime call."""
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        ids, weights = self.featurizer(texts)
        (probs,) = self._session.run(["probs"], {"ids": ids, "weights": weights})
        return np.asarray(probs, dtype=np.float32)

    def decide(self, probs: npt.NDArray[np.float32]) -> list[tuple[str, float]]:
        """(label, confidence) per row: ``other`` when it wins or the best is below threshold.

        For ``other`` the confidence is 1 - (probability of the best smart-home intent).
        """
        best = probs.argmax(axis=1)
        iot = np.delete(probs, self._other, axis=1).max(axis=1, initial=0.0)
        decided: list[tuple[str, float]] = []
        for row, index in enumerate(best.tolist()):
            confidence = float(probs[row, index])
            if index == self._other or confidence < self.threshold:
                decided.append((OTHER, min(max(1.0 - float(iot[row]), 0.0), 1.0)))
            else:
                decided.append((self.labels[index], min(max(confidence, 0.0), 1.0)))
        return decided

    def predict(self, texts: Sequence[str]) -> list[Intent]:
        """One `Intent` per text (batched: one onnxruntime call); slots only for smart-home."""
        return [
            Intent(name=name, confidence=confidence, slots=slots)
            for name, confidence, slots in self.predict_fields(texts)
        ]

    def predict_fields(self, texts: Sequence[str]) -> list[tuple[str, float, dict[str, str]]]:
        """`predict`'s (name, confidence, slots) per text, without building the models (the
        worker process sends these; the gateway validates them into `Intent`s)."""
        decided = self.decide(self.predict_proba(texts))
        return [
            (name, round(confidence, 4), self.slots.extract_dict(text) if name != OTHER else {})
            for text, (name, confidence) in zip(texts, decided, strict=True)
        ]

    def __repr__(self) -> str:
        return (
            f"TextIntentModel(version={self.version!r}, sha256={self.sha256[:12]}...,"
            f" threshold={self.threshold})"
        )
