"""Slot extraction at run time: a gazetteer (value -> slot) matched on word boundaries.

The gazetteer is built at training time from the slot spans of the smart-home training rows
(``training/gazetteer.py``) and stored in the model manifest. Matching is case-insensitive,
prefers the longest value at a position, and never lets two slots overlap. A slot name that
matches twice keeps its first value in `extract_dict` (the `Intent` has one value per name).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["SlotExtractor", "SlotSpan"]


@dataclass(frozen=True, slots=True)
class SlotSpan:
    """One extracted slot: its name, the text it covers and the character span in the input."""

    slot: str
    value: str
    start: int
    end: int


class SlotExtractor:
    """Finds gazetteer values in a text, on word boundaries, longest match first."""

    def __init__(self, gazetteer: Mapping[str, str]) -> None:
        """``gazetteer`` maps a lower-case value (e.g. ``"living room"``) to its slot name."""
        self._slot_of = {value.lower(): slot for value, slot in gazetteer.items() if value.strip()}
        values = sorted(self._slot_of, key=lambda value: (-len(value), value))
        self._pattern: re.Pattern[str] | None = None
        if values:
            alternatives = "|".join(
                r"\s+".join(re.escape(part) for part in value.split()) for value in values
            )
            self._pattern = re.compile(rf"(?<![\w'])(?:{alternatives})(?![\w'])", re.IGNORECASE)

    def __len__(self) -> int:
        return len(self._slot_of)

    def extract(self, text: str) -> list[SlotSpan]:
        """Every non-overlapping gazetteer match in ``text``, left to right."""
        if self._pattern is None:
            return []
        spans: list[SlotSpan] = []
        for match in self._pattern.finditer(text):
            value = match.group(0)
            slot = self._slot_of.get(" ".join(value.lower().split()))
            if slot is not None:
                spans.append(SlotSpan(slot, value, match.start(), match.end()))
        return spans

    def extract_dict(self, text: str) -> dict[str, str]:
        """Slot name -> value (the first match of each name)."""
        found: dict[str, str] = {}
        for span in self.extract(text):
            found.setdefault(span.slot, span.value)
        return found
