"""Report arithmetic and the panel -> actuator pairing."""

from __future__ import annotations

from schemas.decisions import ActuatorCommand, Decision, Intent
from sensor_sim.fleet import PanelTracker
from sensor_sim.report import Counts, Stats, percentile


def test_counts_balance_and_totals() -> None:
    stats = Stats()
    a = stats.counts("a")
    a.sent, a.acked, a.lost, a.rejected = 10, 7, 1, 1
    b = stats.counts("b")
    b.sent, b.unconfirmed, b.duplicated = 5, 5, 2
    stats.commands_duplicated = 1
    assert a.pending == 1 and a.balanced
    report = stats.report(scenario="s", devices=2, duration=5.0, elapsed=5.0, offered_rate=3.0)
    assert (report["sent"], report["acked"], report["lost"], report["pending"]) == (15, 7, 1, 1)
    assert report["duplicated"] == 3
    assert report["achieved_rate"] == 3.0
    assert report["by_class"]["b"]["unconfirmed"] == 5
    assert Counts(sent=1, acked=2).balanced is False


def test_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50 and percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100 and percentile([], 0.5) == 0.0


def _decision(panel: str, seq: int, actuators: list[str]) -> bytes:
    actions = [ActuatorCommand(actuator_id=a, command={"state": "off"}, issued_at=1.0,
                               decision_seq=seq) for a in actuators]
    return Decision(device_id=panel, intent=Intent(name="x", confidence=1.0), actions=actions,
                    recognizer="local", model_version="1", gateway_id="g", seq=seq,
                    gateway_time=1.0).model_dump_json().encode()


def _command(actuator: str, seq: int | None) -> bytes:
    return ActuatorCommand(actuator_id=actuator, command={"state": "off"}, issued_at=1.0,
                           decision_seq=seq).model_dump_json().encode()


def test_pairing_in_order_and_command_before_decision() -> None:
    stats = Stats()
    tracker = PanelTracker(stats, {"light.a"})
    tracker.sent("p1", 10.0)
    tracker.sent("p1", 11.0)
    tracker.sent("p1", 12.0)
    tracker.refused("p1")  # the third was refused by the gateway
    tracker.command("light.a", _command("light.a", 7), 10.5)  # arrives before its decision
    tracker.decision(_decision("p1", 7, ["light.a"]))
    tracker.decision(_decision("p1", 8, ["light.a", "light.unsimulated"]))
    tracker.command("light.a", _command("light.a", 8), 11.25)
    tracker.command("light.a", _command("light.a", 8), 11.3)  # duplicate delivery
    tracker.command("light.a", _command("light.a", 99), 12.0)  # from a sensor rule
    tracker.finish()
    assert sorted(stats.panel_latency_ms) == [250.0, 500.0]
    assert (stats.panel_decisions, stats.panel_actions) == (2, 2)
    assert stats.commands_by_actuator["light.a"] == 3
    assert (stats.commands_duplicated, stats.commands_other) == (1, 1)
    assert stats.panel_commands_unanswered == 0
