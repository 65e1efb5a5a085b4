"""Slot-value augmentation: copies of smart-home rows with other values of the same slot.

House places, colours, times and amounts are swapped across all smart-home intents; device and
coffee types only within the row's own intent (a vacuum cleaner is no light). The copies keep
their label and are deduplicated against the originals.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from gateway.recognizer.evaluate import Example
from gateway.recognizer.text_model import OTHER

SWAPPED = ("house_place", "color_type", "time", "change_amount", "device_type", "coffee_type")
PER_INTENT = ("device_type", "coffee_type")


def slot_values(examples: Sequence[Example]) -> dict[tuple[str, str], list[str]]:
    """(slot, intent or '*') -> sorted distinct lower-case values seen in smart-home rows."""
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for example in examples:
        if example.label == OTHER:
            continue
        for span in example.slots:
            if span.slot in SWAPPED:
                scope = example.label if span.slot in PER_INTENT else "*"
                values[(span.slot, scope)].add(span.value.lower())
    return {key: sorted(found) for key, found in values.items()}


def augment(
    examples: Sequence[Example],
    *,
    copies: int = 3,
    seed: int = 0,
    values: dict[tuple[str, str], list[str]] | None = None,
) -> list[Example]:
    """Up to ``copies`` slot-swapped variants of every smart-home row that has a swappable slot.

    Each row draws from its own generator (seeded by ``seed`` and its text), so with the same
    ``values`` a subset of the rows gets a subset of the copies (the calibration folds reuse the
    teacher's work on them).
    """
    values = slot_values(examples) if values is None else values
    seen = {example.text for example in examples}
    out: list[Example] = []
    for example in examples:
        if example.label == OTHER:
            continue
        rng = random.Random(f"{seed}:{example.text}")
        spans = sorted(
            (span for span in example.slots if span.slot in SWAPPED),
            key=lambda span: -span.start,
        )
        if not spans:
            continue
        for _ in range(copies):
            text = example.text
            for span in spans:  # right to left: earlier offsets stay valid
                scope = example.label if span.slot in PER_INTENT else "*"
                choices = values.get((span.slot, scope), [])
                if choices:
                    text = text[: span.start] + rng.choice(choices) + text[span.end :]
            if text not in seen:
                seen.add(text)
                out.append(Example(text, example.label, example.intent))
    return out


def perturb(texts: Sequence[str], *, copies: int, seed: int, words: Sequence[str]) -> list[str]:
    """Noisy copies for distillation (a transfer set that only the teacher labels).

    Per copy, one of: each word dropped with p=0.15; each word replaced by a random one of
    ``words`` with p=0.15; or a random contiguous span of 2..6 words (n-gram sampling). Each text
    draws from its own generator (seeded by ``seed`` and the text); copies equal to an input or
    to an earlier copy are left out.
    """
    seen = set(texts)
    out: list[str] = []
    for text in texts:
        tokens = text.split()
        if len(tokens) < 2:  # a one-word command has nothing to perturb
            continue
        rng = random.Random(f"{seed}:{text}")
        for _ in range(copies):
            kind = rng.randrange(3)
            if kind == 0:
                noisy = [token for token in tokens if rng.random() >= 0.15] or tokens[:1]
            elif kind == 1:
                noisy = [rng.choice(words) if rng.random() < 0.15 else t for t in tokens]
            else:
                size = rng.randint(2, min(6, len(tokens)))
                start = rng.randrange(len(tokens) - size + 1)
                noisy = tokens[start : start + size]
            candidate = " ".join(noisy)
            if candidate not in seen:
                seen.add(candidate)
                out.append(candidate)
    return out
