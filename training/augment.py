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


def augment(examples: Sequence[Example], *, copies: int = 3, seed: int = 0) -> list[Example]:
    """Up to ``copies`` slot-swapped variants of every smart-home row that has a swappable slot."""
    rng = random.Random(seed)
    values = slot_values(examples)
    seen = {example.text for example in examples}
    out: list[Example] = []
    for example in examples:
        if example.label == OTHER:
            continue
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
