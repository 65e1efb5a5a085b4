"""The slot gazetteer shipped in the model manifest: value -> slot, from the training spans.

A value is kept when at least ``min_precision`` of its word-bounded occurrences in the
smart-home training texts are annotated as that slot (so "room" or "here" survive only if
annotators mostly marked them).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from gateway.recognizer.evaluate import Example
from gateway.recognizer.slots import SlotExtractor
from gateway.recognizer.text_model import OTHER


def build_gazetteer(
    examples: Sequence[Example], *, min_precision: float = 0.5, min_count: int = 1
) -> dict[str, str]:
    """Lower-case value -> slot name, sorted by value."""
    slot_counts: dict[str, Counter[str]] = defaultdict(Counter)
    iot = [example for example in examples if example.label != OTHER]
    for example in iot:
        for span in example.slots:
            value = " ".join(span.value.lower().split())
            if len(value) >= 2:
                slot_counts[value][span.slot] += 1
    candidates = {
        value: counts.most_common(1)[0][0]
        for value, counts in slot_counts.items()
        if sum(counts.values()) >= min_count
    }
    kept: dict[str, str] = {}
    for value, slot in sorted(candidates.items()):
        finder = SlotExtractor({value: slot})
        found = correct = 0
        for example in iot:
            gold = {(span.start, span.end) for span in example.slots if span.slot == slot}
            for span in finder.extract(example.text):
                found += 1
                correct += (span.start, span.end) in gold
        if found and correct / found >= min_precision:
            kept[value] = slot
    return kept
