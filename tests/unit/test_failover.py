"""The cloud failover state machine: counts, hysteresis, time in each mode (explicit clock)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.recognizer.failover import Failover, Mode


def machine(misses: int = 3, successes: int = 3, now: float = 0.0) -> Failover:
    return Failover(misses_to_degrade=misses, successes_to_recover=successes, now=now)


def degrade(failover: Failover, now: float = 0.0) -> None:
    for _ in range(3):
        failover.miss(now, "heartbeat", "timeout")
    assert failover.mode is Mode.DEGRADED


def test_three_consecutive_misses_degrade() -> None:
    """Two misses keep ONLINE; the third switches to DEGRADED with its reason and time."""
    failover = machine()
    assert failover.mode == "online"
    assert failover.miss(1.0, "heartbeat", "timeout") is None
    assert failover.miss(2.0, "request", "timeout") is None
    change = failover.miss(3.0, "heartbeat", "unsent")
    assert change is not None
    assert (change.mode, change.previous, change.at) == (Mode.DEGRADED, Mode.ONLINE, 3.0)
    assert change.reason == "cloud_heartbeat_unsent"
    assert failover.mode == "degraded" and not failover.online


def test_heartbeat_and_request_misses_count_together() -> None:
    """Request timeouts and missed heartbeats add up to the same consecutive count."""
    failover = machine()
    failover.miss(0.0, "request", "timeout")
    failover.miss(0.0, "heartbeat", "timeout")
    change = failover.miss(0.0, "request", "timeout")
    assert change is not None and change.reason == "cloud_request_timeout"
    assert failover.counters["request_misses"] == 2
    assert failover.counters["heartbeat_misses"] == 1


def test_a_success_restarts_the_miss_count() -> None:
    """miss, miss, success, miss, miss: never three in a row, so still ONLINE."""
    failover = machine()
    for ok in (False, False, True, False, False):
        if ok:
            failover.success(0.0, "request")
        else:
            failover.miss(0.0, "heartbeat", "timeout")
    assert failover.mode is Mode.ONLINE
    assert failover.consecutive_misses == 2


def test_recovery_needs_consecutive_heartbeats() -> None:
    """DEGRADED -> ONLINE only after successes_to_recover answered heartbeats in a row."""
    failover = machine(successes=3)
    degrade(failover)
    assert failover.success(1.0, "heartbeat") is None
    assert failover.success(2.0, "heartbeat") is None
    change = failover.success(3.0, "heartbeat")
    assert change is not None
    assert (change.mode, change.reason) == (Mode.ONLINE, "cloud_recovered")
    assert failover.online


def test_request_successes_do_not_recover() -> None:
    """While DEGRADED only heartbeats count towards recovery (a stray late answer does not)."""
    failover = machine(successes=2)
    degrade(failover)
    for _ in range(5):
        assert failover.success(0.0, "request") is None
    assert failover.mode is Mode.DEGRADED


def test_flapping_link_does_not_flap_the_mode() -> None:
    """A link that answers every other heartbeat stays in whichever mode it is in."""
    failover = machine()
    for step in range(200):
        if step % 2:
            failover.success(step, "heartbeat")
        else:
            failover.miss(step, "heartbeat", "timeout")
    assert failover.mode is Mode.ONLINE
    degrade(failover, 200.0)
    for step in range(200, 400):
        if step % 2:
            failover.miss(step, "heartbeat", "timeout")
        else:
            failover.success(step, "heartbeat")
    assert failover.mode is Mode.DEGRADED
    assert failover.counters["entered_degraded"] == 1
    assert failover.counters["entered_online"] == 0


def test_one_miss_during_recovery_starts_it_over() -> None:
    """success, success, miss, success, success: not yet 3 in a row, still DEGRADED."""
    failover = machine(successes=3)
    degrade(failover)
    failover.success(0.0, "heartbeat")
    failover.success(0.0, "heartbeat")
    failover.miss(0.0, "heartbeat", "timeout")
    failover.success(0.0, "heartbeat")
    failover.success(0.0, "heartbeat")
    assert failover.mode is Mode.DEGRADED
    assert failover.success(0.0, "heartbeat") is not None


def test_seconds_in_each_mode() -> None:
    """Time is summed per mode from the explicit clock, the current stretch included."""
    failover = machine(now=100.0)
    assert failover.seconds_in_mode(110.0) == {"online": 10.0, "degraded": 0.0}
    for _ in range(3):
        failover.miss(130.0, "heartbeat", "timeout")
    assert failover.seconds_in_mode(145.0) == {"online": 30.0, "degraded": 15.0}
    for _ in range(3):
        failover.success(150.0, "heartbeat")
    assert failover.seconds_in_mode(160.0) == {"online": 40.0, "degraded": 20.0}


def test_invalid_thresholds_are_refused() -> None:
    """Zero misses or successes would make the mode meaningless."""
    with pytest.raises(ValueError, match=">= 1"):
        Failover(misses_to_degrade=0, successes_to_recover=3, now=0.0)
    with pytest.raises(ValueError, match=">= 1"):
        Failover(misses_to_degrade=3, successes_to_recover=0, now=0.0)


@given(
    outcomes=st.lists(st.booleans(), max_size=200),
    misses=st.integers(1, 5),
    successes=st.integers(1, 5),
)
def test_every_transition_follows_a_full_run(
    outcomes: list[bool], misses: int, successes: int
) -> None:
    """Any heartbeat history: DEGRADED is entered only after `misses` misses in a row and
    ONLINE only after `successes` answers in a row, counted since the last transition."""
    failover = machine(misses, successes)
    run_ok = run_missed = 0
    for step, ok in enumerate(outcomes):
        before = failover.mode
        if ok:
            run_ok, run_missed = run_ok + 1, 0
            change = failover.success(float(step), "heartbeat")
        else:
            run_ok, run_missed = 0, run_missed + 1
            change = failover.miss(float(step), "heartbeat", "timeout")
        if change is None:
            assert failover.mode is before
            continue
        if change.mode is Mode.DEGRADED:
            assert run_missed == misses
        else:
            assert run_ok == successes
        run_ok = run_missed = 0
    spent = failover.seconds_in_mode(float(len(outcomes)))
    assert spent["online"] + spent["degraded"] == pytest.approx(float(len(outcomes)))
