"""Fault injection in the simulator's send path: deterministic for a seed, at the asked rates."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.coap.message import MalformedMessage
from gateway.coap.message import decode as coap_decode
from gateway.mqttsn.codec import MalformedPacket, decode
from schemas.scenario import Faults
from sensor_sim.faults import (
    FaultCounts,
    FaultInjector,
    fault_rng,
    garbage,
    reboots_in_storm,
)


class ManualTimers:
    """A `call_later` stand-in: callbacks run only when the test fires them."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, ManualTimers.Handle]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> ManualTimers.Handle:
        handle = ManualTimers.Handle(self, callback)
        self.pending.append((delay, handle))
        return handle

    def fire_all(self) -> None:
        for _, handle in list(self.pending):
            handle.fire()

    class Handle:
        def __init__(self, timers: ManualTimers, callback: Callable[[], None]) -> None:
            self.timers, self.callback, self.cancelled = timers, callback, False

        def cancel(self) -> None:
            self.cancelled = True

        def fire(self) -> None:
            if not self.cancelled:
                self.cancelled = True
                self.callback()


def injector(faults: Faults, seed: int) -> tuple[FaultInjector, list[bytes], ManualTimers]:
    """An injector sending into a list, with timers the test fires."""
    timers = ManualTimers()
    out: list[bytes] = []
    made = FaultInjector(faults, fault_rng(seed, "dev1", "datagrams"), timers.call_later,
                         FaultCounts())
    made.bind(out.append)
    return made, out, timers


def run_injector(faults: Faults, seed: int, count: int = 2000) -> tuple[list[bytes], FaultCounts]:
    made, out, timers = injector(faults, seed)
    for n in range(count):
        made.sendto(n.to_bytes(4, "big"))
    timers.fire_all()
    return out, made.counts


CHAOS = Faults(loss=0.1, duplicate=0.05, reorder=0.05)


def test_same_seed_same_faults_other_seed_other_faults() -> None:
    """Two runs with one seed give the same datagrams in the same order; another seed differs."""
    first, counts = run_injector(CHAOS, 7)
    again, counts_again = run_injector(CHAOS, 7)
    other, _ = run_injector(CHAOS, 8)
    assert first == again and counts == counts_again
    assert first != other


def test_rates_and_counts_add_up() -> None:
    """Dropped, duplicated and reordered counts are near their rates and explain the output."""
    out, counts = run_injector(CHAOS, 3, count=20_000)
    assert 1_700 < counts.dropped < 2_300
    assert 750 < counts.duplicated < 1_250
    assert 750 < counts.reordered < 1_250
    assert len(out) == 20_000 - counts.dropped + counts.duplicated
    assert set(out) <= {n.to_bytes(4, "big") for n in range(20_000)}


def test_reordered_datagram_follows_the_next_one_or_its_timer() -> None:
    """A held datagram goes out right after the next one, or when its delay expires."""
    always, out, timers = injector(Faults(reorder=1.0), 1)
    always.sendto(b"a")
    assert out == []
    always.sendto(b"b")  # also held: the older one goes first
    assert out == [b"a"]
    timers.fire_all()
    assert out == [b"a", b"b"]

    sometimes, sent, timers = injector(Faults(reorder=0.5), 2)
    for n in range(200):
        sometimes.sendto(bytes([n]))
    timers.fire_all()
    assert sorted(sent) == [bytes([n]) for n in range(200)]
    assert sent != sorted(sent)


def test_no_faults_passes_everything_in_order() -> None:
    """With every rate at zero the injector is transparent."""
    out, counts = run_injector(Faults(), 1, count=100)
    assert out == [n.to_bytes(4, "big") for n in range(100)]
    assert counts == FaultCounts()


def test_closing_forgets_the_held_datagram() -> None:
    """A reboot closes the socket: a held datagram is never sent from the new one."""
    made, out, timers = injector(Faults(reorder=1.0), 1)
    made.sendto(b"held")
    made.close()
    timers.fire_all()
    assert out == []


def test_garbage_is_neither_mqttsn_nor_coap() -> None:
    """Garbage datagrams start with 0x00, which both gateway codecs reject."""
    rng = fault_rng(5, "d", "device")
    for _ in range(200):
        junk = garbage(rng)
        assert junk[0] == 0 and 4 <= len(junk) <= 41
        with pytest.raises(MalformedPacket):
            decode(junk)
        with pytest.raises(MalformedMessage):
            coap_decode(junk)


def test_reboot_storm_choice_is_deterministic_and_proportional() -> None:
    """The devices rebooting in a storm depend only on seed, storm and id, at the fraction."""
    ids = [f"d{n}" for n in range(2000)]
    first = [d for d in ids if reboots_in_storm(9, 1, d, 0.3)]
    assert first == [d for d in ids if reboots_in_storm(9, 1, d, 0.3)]
    assert first != [d for d in ids if reboots_in_storm(9, 2, d, 0.3)]
    assert 500 < len(first) < 700
    assert all(reboots_in_storm(9, 1, d, 1.0) for d in ids)
    assert not any(reboots_in_storm(9, 1, d, 0.0) for d in ids)


def test_fault_counts_add() -> None:
    """Worker fault counts add field by field."""
    total = FaultCounts(dropped=1, reboots=2)
    total.add(FaultCounts(dropped=3, garbage=1, oversleeps=4))
    assert total.as_dict() == {"dropped": 4, "duplicated": 0, "reordered": 0, "garbage": 1,
                               "reboots": 2, "oversleeps": 4}
