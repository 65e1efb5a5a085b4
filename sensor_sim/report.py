"""Counting what the fleet did, and the report arithmetic.

Every application message a device originates is `sent` once (re-sends are `retransmitted`),
and ends in exactly one outcome:
- `acked`: a confirmable message (MQTT-SN QoS 1/2, CoAP CON) acknowledged as accepted;
- `rejected`: acknowledged with an error (PUBACK not supported, CoAP 4.xx/5.xx);
- `lost`: confirmable, and no answer after every retransmission;
- `unconfirmed`: QoS 0/-1 or CoAP NON: nothing can tell whether it arrived;
- `pending`: still waiting for its answer when the report was made.
So sent == acked + rejected + lost + unconfirmed + pending (`Counts.balanced`).
`duplicated` counts deliveries seen twice: a second answer to an already settled message, a CoAP
notification retransmitted after its ACK, or an actuator command (same actuator, decision_seq,
issued_at) received again. Injected faults are counted apart, in `faults`.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sensor_sim.faults import FaultCounts

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


SAMPLE_CAP = 200_000
RECENT = 2_000
RECENT_LINES = 4  # the panels' last decisions, shown live


class Samples:
    """Latency samples in bounded memory: every one up to `cap`, then a uniform reservoir of
    `cap` (algorithm R, seeded), so percentiles of long runs are estimates while `count` and
    `max` stay exact; `recent` keeps the last RECENT for the live view."""

    def __init__(self, values: Iterable[float] = (), cap: int = SAMPLE_CAP) -> None:
        self.cap = cap
        self.values: list[float] = []
        self.recent: deque[float] = deque(maxlen=RECENT)
        self.count = 0
        self.max = 0.0
        self._rng = random.Random(0)
        for value in values:
            self.append(value)

    def append(self, value: float) -> None:
        self.count += 1
        self.max = max(self.max, value)
        self.recent.append(value)
        if len(self.values) < self.cap:
            self.values.append(value)
            return
        slot = self._rng.randrange(self.count)
        if slot < self.cap:
            self.values[slot] = value

    def merge(self, other: Samples) -> None:
        """Add another worker's samples (beyond the cap, a reservoir of both)."""
        seen = self.count + other.count
        for value in other.values:
            self.append(value)
        self.count = seen
        self.max = max(self.max, other.max)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[float]:
        return iter(self.values)


def latency_summary(samples_ms: Samples | list[float]) -> dict[str, float]:
    samples = samples_ms if isinstance(samples_ms, Samples) else Samples(samples_ms)
    ordered = sorted(samples.values)
    return {
        "count": samples.count,
        "p50": round(percentile(ordered, 0.50), 3),
        "p90": round(percentile(ordered, 0.90), 3),
        "p99": round(percentile(ordered, 0.99), 3),
        "max": round(samples.max, 3),
    }


@dataclass
class Stats:
    """Everything one run measured; `report()` is the JSON document."""

    by_class: dict[str, Counts] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    commands_by_actuator: Counter[str] = field(default_factory=Counter)
    panel_latency_ms: Samples = field(default_factory=Samples)
    ack_rtt_ms: Samples = field(default_factory=Samples)
    panel_decisions: int = 0
    panel_actions: int = 0
    panel_commands_unanswered: int = 0
    commands_other: int = 0
    commands_duplicated: int = 0
    duplicate_answers: int = 0
    faults: FaultCounts = field(default_factory=FaultCounts)
    upstream: Counter[str] | None = None
    recent_decisions: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_LINES))

    def counts(self, cls: str) -> Counts:
        return self.by_class.setdefault(cls, Counts())

    def totals(self) -> Counts:
        total = Counts()
        for counts in self.by_class.values():
            total.add(counts)
        return total

    def merge(self, other: Stats) -> None:
        """Add another worker's stats to these."""
        for name, counts in other.by_class.items():
            self.counts(name).add(counts)
        self.errors.update(other.errors)
        self.commands_by_actuator.update(other.commands_by_actuator)
        self.panel_latency_ms.merge(other.panel_latency_ms)
        self.ack_rtt_ms.merge(other.ack_rtt_ms)
        for name in ("panel_decisions", "panel_actions", "panel_commands_unanswered",
                     "commands_other", "commands_duplicated", "duplicate_answers"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.faults.add(other.faults)
        self.recent_decisions.extend(other.recent_decisions)
        if other.upstream is not None:
            self.upstream = (self.upstream or Counter()) + other.upstream

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
            "faults": self.faults.as_dict(),
            "upstream": None if self.upstream is None else {
                "decisions": self.upstream["decisions"],
                "actuator_commands": self.upstream["actuator_commands"],
            },
        }
