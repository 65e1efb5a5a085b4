"""Counting what the fleet did, and the report arithmetic.

Every application message a device originates is `sent` once (re-sends are `retransmitted`),
and ends in exactly one outcome:
- `acked`: a confirmable message (MQTT-SN QoS 1/2, CoAP CON) acknowledged as accepted;
- `rejected`: acknowledged with an error (PUBACK not supported, CoAP 4.xx/5.xx);
- `lost`: confirmable, and no answer after every retransmission;
- `unconfirmed`: QoS 0/-1 or CoAP NON: nothing can tell whether it arrived;
- `pending`: still waiting for its answer when the report was made.
So sent == acked + rejected + lost + unconfirmed + pending (`Counts.balanced`).
`duplicated` counts deliveries seen twice: a second answer to an already settled message, or an
actuator command (same actuator, decision_seq, issued_at) received again.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("acked", "rejected", "lost", "unconfirmed")


@dataclass
class Counts:
    sent: int = 0
    acked: int = 0
    rejected: int = 0
    lost: int = 0
    unconfirmed: int = 0
    retransmitted: int = 0
    duplicated: int = 0

    @property
    def settled(self) -> int:
        return self.acked + self.rejected + self.lost + self.unconfirmed

    @property
    def pending(self) -> int:
        return self.sent - self.settled

    @property
    def balanced(self) -> bool:
        return self.pending >= 0

    def add(self, other: Counts) -> None:
        for name in ("sent", "acked", "rejected", "lost", "unconfirmed", "retransmitted",
                     "duplicated"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "acked": self.acked, "rejected": self.rejected,
                "lost": self.lost, "unconfirmed": self.unconfirmed, "pending": self.pending,
                "retransmitted": self.retransmitted, "duplicated": self.duplicated}


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "count": len(ordered),
        "p50": round(percentile(ordered, 0.50), 3),
        "p90": round(percentile(ordered, 0.90), 3),
        "p99": round(percentile(ordered, 0.99), 3),
        "max": round(ordered[-1], 3) if ordered else 0.0,
    }


@dataclass
class Stats:
    """Everything one run measured; `report()` is the JSON document."""

    by_class: dict[str, Counts] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    commands_by_actuator: Counter[str] = field(default_factory=Counter)
    panel_latency_ms: list[float] = field(default_factory=list)
    ack_rtt_ms: list[float] = field(default_factory=list)
    panel_decisions: int = 0
    panel_actions: int = 0
    panel_commands_unanswered: int = 0
    commands_other: int = 0
    commands_duplicated: int = 0
    duplicate_answers: int = 0

    def counts(self, cls: str) -> Counts:
        return self.by_class.setdefault(cls, Counts())

    def totals(self) -> Counts:
        total = Counts()
        for counts in self.by_class.values():
            total.add(counts)
        return total

    def report(self, *, scenario: str, devices: int, duration: float, elapsed: float,
               offered_rate: float) -> dict[str, Any]:
        total = self.totals()
        return {
            "scenario": scenario,
            "devices": devices,
            "duration_s": round(duration, 3),
            "elapsed_s": round(elapsed, 3),
            **total.as_dict(),
            "duplicated": total.duplicated + self.commands_duplicated + self.duplicate_answers,
            "commands_received": sum(self.commands_by_actuator.values()),
            "commands_by_actuator": dict(sorted(self.commands_by_actuator.items())),
            "panel_decisions": self.panel_decisions,
            "panel_actions": self.panel_actions,
            "panel_commands_unanswered": self.panel_commands_unanswered,
            "commands_not_from_panels": self.commands_other,
            "latency_ms": latency_summary(self.panel_latency_ms),
            "ack_rtt_ms": latency_summary(self.ack_rtt_ms),
            "offered_rate": round(offered_rate, 3),
            "achieved_rate": round(total.sent / duration, 3) if duration > 0 else 0.0,
            "by_class": {name: c.as_dict() for name, c in sorted(self.by_class.items())},
            "errors": dict(sorted(self.errors.items())),
        }
