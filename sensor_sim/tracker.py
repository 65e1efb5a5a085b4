"""Panel -> actuator latency, paired through the gateway's own records.

A text command cannot carry its send time, so the fleet pairs it by order through the gateway's own
records: a monitor client subscribes `decisions/{panel}` for every panel. The gateway handles one
device's commands in order (one pipeline, FIFO micro-batches, one bus) and publishes exactly one
Decision per recognised command, so the n-th Decision on `decisions/{panel}` belongs to the panel's
n-th accepted command: its send time is popped from that panel's FIFO (a command the gateway
refused is removed from the FIFO at once, as a panel has one command in flight at a time). The
Decision's `seq` is then mapped to that send time, and every `ActuatorCommand` with that
`decision_seq` gives one latency sample: actuator arrival - panel send (both time.monotonic()). An
actuator command may arrive before its Decision (the gateway publishes actions first): it waits in
`pending` until the Decision comes; those still unmatched at the end came from sensor rules or
occupancy (`commands_not_from_panels`).

The pairing assumes every command either gets its decision or is known not to: a panel sending QoS
0 / NON under injected loss, or one whose datagrams are duplicated (a QoS 1 duplicate can be
recognised twice), skews it; the chaos scenario's panels use CoAP CON for that reason.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from pydantic import ValidationError

from schemas.decisions import ActuatorCommand, Decision
from sensor_sim.report import Stats


def describe(decision: Decision, text: str) -> str:
    """One line for the live view: what was said, what it meant, what was done."""
    actions = ", ".join(
        f"{a.actuator_id} {json.dumps(a.command, separators=(',', ':'))}"
        for a in decision.actions
    )
    return (f"{decision.device_id}: \"{text}\" → {decision.intent.name} "
            f"({decision.intent.confidence:.2f}) → {actions or 'no action'}")


@dataclass
class PanelTracker:
    """Pairs panel sends, decisions and actuator commands (see the module docstring)."""

    stats: Stats
    actuators: set[str]
    sends: dict[str, deque[tuple[float, str]]] = field(default_factory=dict)
    seq_sent: dict[int, float] = field(default_factory=dict)
    pending: dict[int, list[float]] = field(default_factory=dict)
    seen: set[tuple[str, int | None, float]] = field(default_factory=set)

    def sent(self, panel: str, at: float, text: str = "") -> None:
        self.sends.setdefault(panel, deque()).append((at, text))

    def refused(self, panel: str) -> None:
        """The panel's last command will get no decision (refused, or never arrived)."""
        queue = self.sends.get(panel)
        if queue:
            queue.pop()

    def decision(self, payload: bytes) -> None:
        try:
            decision = Decision.model_validate_json(payload)
        except ValidationError:
            self.stats.errors["bad_decision_payload"] += 1
            return
        if decision.seq in self.seq_sent:  # a QoS 1 redelivery to the monitor
            self.stats.commands_duplicated += 1
            return
        queue = self.sends.get(decision.device_id)
        if not queue:
            self.stats.errors["decision_without_command"] += 1
            return
        sent_at, text = queue.popleft()
        self.stats.panel_decisions += 1
        self.stats.recent_decisions.append(describe(decision, text))
        self.stats.panel_actions += sum(a.actuator_id in self.actuators for a in decision.actions)
        self.seq_sent[decision.seq] = sent_at
        for arrived in self.pending.pop(decision.seq, []):
            self.stats.panel_latency_ms.append((arrived - sent_at) * 1000)

    def command(self, actuator: str, payload: bytes, arrived: float) -> None:
        try:
            command = ActuatorCommand.model_validate_json(payload)
        except ValidationError:
            self.stats.errors["bad_actuator_command"] += 1
            return
        key = (actuator, command.decision_seq, command.issued_at)
        if key in self.seen:
            self.stats.commands_duplicated += 1
            return
        self.seen.add(key)
        if command.actuator_id != actuator:
            self.stats.errors["command_for_other_actuator"] += 1
        self.stats.commands_by_actuator[actuator] += 1
        seq = command.decision_seq
        if seq is not None and seq in self.seq_sent:
            self.stats.panel_latency_ms.append((arrived - self.seq_sent[seq]) * 1000)
        elif seq is not None:
            self.pending.setdefault(seq, []).append(arrived)
        else:
            self.stats.commands_other += 1

    def unresolved(self) -> int:
        return sum(len(q) for q in self.sends.values())

    def finish(self) -> None:
        self.stats.commands_other += sum(len(v) for v in self.pending.values())
        self.pending.clear()
        self.stats.panel_commands_unanswered = self.unresolved()
