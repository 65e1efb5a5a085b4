"""What the simulator shows: the live view while it runs, and the final report as a table.

A `Snapshot` is a small picklable summary of a fleet's stats (worker processes send theirs to
the parent, which adds them up); `LiveView` redraws one about twice a second with rich, without
a refresh thread (the caller's loop drives it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sensor_sim.report import latency_summary

if TYPE_CHECKING:
    from sensor_sim.fleet import Fleet

REFRESH = 0.5  # seconds between redraws
COLUMNS = ("sent", "acked", "rejected", "lost", "unconfirmed", "pending", "retransmitted")


@dataclass
class Snapshot:
    scenario: str = ""
    devices: int = 0
    set_up: int = 0
    phase: str = "setup"
    running_for: float = 0.0
    duration: float = 0.0
    offered_rate: float = 0.0
    by_class: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    decisions: int = 0
    upstream: dict[str, int] | None = None
    commands_received: int = 0
    recent_decisions: list[str] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    ack_rtt_ms: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, fleet: Fleet) -> Snapshot:
        """The snapshot of a running fleet."""
        stats = fleet.stats
        return cls(
            scenario=fleet.scenario.name, devices=len(fleet.devices), set_up=fleet.set_up,
            phase=fleet.phase, running_for=fleet.running_for(), duration=fleet.duration,
            offered_rate=fleet.offered_rate,
            by_class={name: c.as_dict() for name, c in stats.by_class.items()},
            errors=dict(stats.errors), faults=stats.faults.as_dict(),
            decisions=stats.panel_decisions,
            upstream=None if stats.upstream is None else dict(stats.upstream),
            commands_received=sum(stats.commands_by_actuator.values()),
            recent_decisions=list(stats.recent_decisions),
            latency_ms=list(stats.panel_latency_ms.recent),
            ack_rtt_ms=list(stats.ack_rtt_ms.recent),
        )

    def add(self, other: Snapshot) -> None:
        """Add another worker's snapshot (same scenario and clock)."""
        self.scenario = self.scenario or other.scenario
        self.devices += other.devices
        self.set_up += other.set_up
        self.running_for = max(self.running_for, other.running_for)
        self.duration = max(self.duration, other.duration)
        self.offered_rate += other.offered_rate
        if other.phase != self.phase:
            self.phase = min(self.phase, other.phase, key=_PHASES.index)
        for name, counts in other.by_class.items():
            mine = self.by_class.setdefault(name, dict.fromkeys(counts, 0))
            for key, value in counts.items():
                mine[key] = mine.get(key, 0) + value
        for target, source in ((self.errors, other.errors), (self.faults, other.faults)):
            for key, value in source.items():
                target[key] = target.get(key, 0) + value
        self.decisions += other.decisions
        if other.upstream is not None:
            self.upstream = {**(self.upstream or {}), **other.upstream}
        self.commands_received += other.commands_received
        self.recent_decisions += other.recent_decisions
        self.latency_ms += other.latency_ms
        self.ack_rtt_ms += other.ack_rtt_ms


_PHASES = ("setup", "running", "draining", "done")


def _ms(summary: dict[str, float], keys: tuple[str, ...]) -> str:
    return " ".join(f"{k} {summary[k]:g}" for k in keys)


def render(snap: Snapshot, rates: dict[str, float]) -> Group:
    """The live view of one snapshot; `rates` are messages/s per class since the last one."""
    if snap.phase == "setup":
        clock = f"connecting {snap.set_up}/{snap.devices}"
    else:
        clock = f"{snap.phase} {min(snap.running_for, snap.duration):.1f}/{snap.duration:g} s"
    table = Table(title=f"sensor-sim {snap.scenario} · {snap.devices} devices · {clock}",
                  title_justify="left")
    table.add_column("class")
    for column in ("sent", "acked", "lost", "rejected", "unconfirmed", "retransmitted", "msg/s"):
        table.add_column(column, justify="right")
    for name, c in sorted(snap.by_class.items()):
        table.add_row(name, *(str(c[k]) for k in ("sent", "acked", "lost", "rejected",
                                                  "unconfirmed", "retransmitted")),
                      f"{rates.get(name, 0.0):.0f}")
    latency = latency_summary(snap.latency_ms)
    rtt = latency_summary(snap.ack_rtt_ms)
    upstream = ""
    if snap.upstream is not None:
        upstream = (f" · upstream decisions {snap.upstream.get('decisions', 0)}, actuator "
                    f"commands {snap.upstream.get('actuator_commands', 0)}")
    errors = sum(snap.errors.values())
    top = ", ".join(f"{k} {v}" for k, v in sorted(snap.errors.items(), key=lambda kv: -kv[1])[:3])
    faults = ", ".join(f"{k} {v}" for k, v in snap.faults.items() if v)
    lines = [
        f"offered {snap.offered_rate:.0f}/s · sent now {sum(rates.values()):.0f}/s · "
        f"decisions {snap.decisions} · commands received {snap.commands_received}{upstream}",
        f"panel→actuator ms {_ms(latency, ('p50', 'p90', 'p99', 'max'))} "
        f"(n={latency['count']}) · ack RTT ms {_ms(rtt, ('p50', 'p90', 'p99'))}",
        f"errors {errors}" + (f" ({top})" if top else "") + (f" · faults {faults}" if faults
                                                              else ""),
    ]
    lines += [f"  {line}" for line in snap.recent_decisions]
    return Group(table, Text("\n".join(lines)))


class LiveView:
    """Redraws snapshots in place; `update` is cheap enough to call every REFRESH seconds."""

    def __init__(self, console: Console) -> None:
        self._live = Live(console=console, auto_refresh=False, transient=False)
        self._last: tuple[float, dict[str, int]] | None = None

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def update(self, snap: Snapshot) -> None:
        now = time.monotonic()
        sent = {name: c["sent"] for name, c in snap.by_class.items()}
        rates: dict[str, float] = {}
        if self._last is not None and now > self._last[0]:
            span = now - self._last[0]
            rates = {n: (v - self._last[1].get(n, 0)) / span for n, v in sent.items()}
        self._last = (now, sent)
        self._live.update(render(snap, rates), refresh=True)


def summary_table(result: dict[str, Any]) -> Table:
    """The final report as a table (the JSON report has everything)."""
    table = Table(title=f"sensor-sim {result['scenario']}: {result['devices']} devices")
    table.add_column("class")
    for column in COLUMNS:
        table.add_column(column, justify="right")
    for name, counts in result["by_class"].items():
        table.add_row(name, *(str(counts[c]) for c in COLUMNS))
    table.add_row("total", *(str(result[c]) for c in COLUMNS), style="bold")
    lat = result["latency_ms"]
    faults = {k: v for k, v in result.get("faults", {}).items() if v}
    upstream = result.get("upstream")
    table.caption = (
        f"rate offered {result['offered_rate']}/s achieved {result['achieved_rate']}/s · "
        f"duplicated {result['duplicated']} · commands received {result['commands_received']} "
        f"{dict(result['commands_by_actuator']) or ''} · panel→actuator ms "
        f"p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} max {lat['max']} · "
        f"errors {result['errors'] or 'none'}"
        + (f" · faults {faults}" if faults else "")
        + (f" · upstream {upstream}" if upstream is not None else "")
    )
    return table
