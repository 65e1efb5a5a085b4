"""Report arithmetic and the panel -> actuator pairing."""

from __future__ import annotations

from collections import Counter

from rich.console import Console

from schemas.decisions import ActuatorCommand, Decision, Intent
from sensor_sim.live import Snapshot, render, summary_table
from sensor_sim.report import Counts, Samples, Stats, latency_summary, percentile
from sensor_sim.tracker import PanelTracker


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
    tracker.sent("p1", 10.0, "lights off")
    tracker.sent("p1", 11.0)
    tracker.sent("p1", 12.0)
    tracker.refused("p1")  # the third was refused by the gateway
    tracker.command("light.a", _command("light.a", 7), 10.5)  # arrives before its decision
    tracker.decision(_decision("p1", 7, ["light.a"]))
    tracker.decision(_decision("p1", 8, ["light.a", "light.unsimulated"]))
    tracker.decision(_decision("p1", 8, ["light.a", "light.unsimulated"]))  # redelivered
    tracker.command("light.a", _command("light.a", 8), 11.25)
    tracker.command("light.a", _command("light.a", 8), 11.3)  # duplicate delivery
    tracker.command("light.a", _command("light.a", 99), 12.0)  # from a sensor rule
    tracker.finish()
    assert sorted(stats.panel_latency_ms) == [250.0, 500.0]
    assert (stats.panel_decisions, stats.panel_actions) == (2, 2)
    assert stats.commands_by_actuator["light.a"] == 3
    assert (stats.commands_duplicated, stats.commands_other) == (2, 1)
    assert stats.panel_commands_unanswered == 0
    assert stats.recent_decisions[0] == 'p1: "lights off" → x (1.00) → light.a {"state":"off"}'


REQUIRED_KEYS = {"sent", "acked", "lost", "duplicated", "commands_received", "latency_ms",
                 "offered_rate", "achieved_rate", "errors"}


def test_report_contract_keys_faults_and_upstream() -> None:
    """The report keeps the issue's keys, and adds fault counts and (with a broker) upstream."""
    stats = Stats()
    stats.counts("a").sent = 4
    stats.faults.dropped, stats.faults.reboots = 3, 1
    report = stats.report(scenario="s", devices=1, duration=2.0, elapsed=2.0, offered_rate=2.0)
    assert report.keys() >= REQUIRED_KEYS
    assert set(report["latency_ms"]) >= {"p50", "p90", "p99", "max"}
    assert report["faults"]["dropped"] == 3 and report["faults"]["reboots"] == 1
    assert report["upstream"] is None
    stats.upstream = Counter(decisions=2, actuator_commands=5, subacks=2)
    report = stats.report(scenario="s", devices=1, duration=2.0, elapsed=2.0, offered_rate=2.0)
    assert report["upstream"] == {"decisions": 2, "actuator_commands": 5}


def test_merging_worker_stats_adds_everything() -> None:
    """Two workers' stats merge into the sums of their counts, samples, errors and faults."""
    one, two = Stats(), Stats()
    one.counts("a").sent, one.counts("a").acked = 5, 5
    two.counts("a").sent, two.counts("a").unconfirmed = 3, 3
    two.counts("b").sent, two.counts("b").lost = 2, 2
    one.errors["x"], two.errors["x"], two.errors["y"] = 1, 2, 1
    one.ack_rtt_ms, two.ack_rtt_ms = Samples([1.0, 2.0]), Samples([3.0])
    one.faults.dropped, two.faults.dropped = 1, 4
    two.commands_by_actuator["light.a"] = 2
    two.panel_decisions = 2
    two.upstream = Counter(decisions=2)
    one.merge(two)
    report = one.report(scenario="s", devices=3, duration=2.0, elapsed=2.0, offered_rate=5.0)
    assert (report["sent"], report["acked"], report["unconfirmed"], report["lost"]) == (10, 5, 3, 2)
    assert report["by_class"]["a"]["sent"] == 8 and report["by_class"]["b"]["lost"] == 2
    assert report["errors"] == {"x": 3, "y": 1}
    assert report["ack_rtt_ms"]["count"] == 3 and report["ack_rtt_ms"]["max"] == 3.0
    assert report["faults"]["dropped"] == 5
    assert report["commands_received"] == 2 and report["panel_decisions"] == 2
    assert report["upstream"] == {"decisions": 2, "actuator_commands": 0}
    assert report["achieved_rate"] == 5.0


def test_live_snapshots_add_up_and_render() -> None:
    """Worker snapshots add into one view, which names the classes and the key figures."""
    first = Snapshot(scenario="s", devices=2, phase="running", running_for=1.0, duration=5.0,
                     by_class={"a": Counts(sent=3, acked=3).as_dict()}, errors={"e": 1},
                     commands_received=1, latency_ms=[5.0])
    second = Snapshot(scenario="s", devices=3, phase="setup", running_for=0.0, duration=5.0,
                      by_class={"a": Counts(sent=2).as_dict(), "b": Counts(sent=1).as_dict()},
                      errors={"e": 2}, faults={"dropped": 4}, decisions=2)
    first.add(second)
    assert first.devices == 5 and first.phase == "setup"
    assert first.by_class["a"]["sent"] == 5 and first.by_class["b"]["sent"] == 1
    assert first.errors == {"e": 3} and first.faults == {"dropped": 4}
    console = Console(width=120, record=True)
    console.print(render(first, {"a": 10.0}))
    text = console.export_text()
    assert "connecting 0/5" in text and "decisions 2" in text and "commands received 1" in text
    assert "errors 3 (e 3)" in text and "faults dropped 4" in text


def test_summary_table_has_a_total_row() -> None:
    """The final table lists each class and their total."""
    stats = Stats()
    stats.counts("a").sent, stats.counts("a").acked = 2, 2
    stats.counts("b").sent = 1
    report = stats.report(scenario="s", devices=2, duration=1.0, elapsed=1.0, offered_rate=3.0)
    console = Console(width=160, record=True)
    console.print(summary_table(report))
    text = console.export_text()
    assert "total" in text and "commands received 0" in text


def test_samples_stay_bounded_with_exact_count_and_max() -> None:
    """Past the cap, samples are a uniform reservoir: count and max exact, percentiles close."""
    samples = Samples(cap=1_000)
    for n in range(100_000):
        samples.append(float(n % 1000))
    samples.append(5_000.0)
    assert len(samples.values) == 1_000 and samples.count == 100_001
    summary = latency_summary(samples)
    assert summary["count"] == 100_001 and summary["max"] == 5_000.0
    assert 400 <= summary["p50"] <= 600 and summary["p99"] >= 950
    assert list(samples.recent)[-1] == 5_000.0 and len(samples.recent) == 2_000
    other = Samples([1.0, 2.0])
    other.merge(samples)
    assert other.count == 100_003 and other.max == 5_000.0 and len(other.values) <= 200_000
