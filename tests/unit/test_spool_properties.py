"""Hypothesis: any sequence of spool operations keeps order, accounting and deletion invariants.

A state machine drives a real spool file against a small in-memory model of the policy
(priority + FIFO order, byte and class bounds, telemetry drop-oldest, refusals, age expiry),
including closing and reopening the file between steps.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
)

from gateway.spool import CLASSES, PRIORITY, Spool, SpoolFull, TokenBucket, row_size

MAX_BYTES = 2000
MAX_AGE = 100.0
SHARES = {"decision": 0.6, "command": 0.5, "telemetry": 0.9}  # sum > 1: spool_full reachable
T0 = 1_700_000_000.0


class Model:
    """The spool's policy in plain Python: id -> (class, size, created_at)."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[str, int, float]] = {}
        self.limits = {cls: int(MAX_BYTES * share) for cls, share in SHARES.items()}

    def size(self, cls: str | None = None) -> int:
        return sum(s for c, s, _ in self.rows.values() if cls is None or c == cls)

    def expire(self, now: float) -> None:
        self.rows = {i: r for i, r in self.rows.items() if r[2] >= now - MAX_AGE}

    def evict_telemetry(self, need: int) -> bool:
        if self.size("telemetry") < need:
            return False
        freed = 0
        for i in sorted(i for i, r in self.rows.items() if r[0] == "telemetry"):
            if freed >= need:
                break
            freed += self.rows.pop(i)[1]
        return True

    def admit(self, cls: str, need: int, now: float) -> str | None:
        """Make room as the spool does; the refusal reason or None."""
        limit = self.limits[cls]
        if need > min(limit, MAX_BYTES):
            return "too_large"
        if self.size(cls) + need <= limit and self.size() + need <= MAX_BYTES:
            return None
        self.expire(now)
        if self.size(cls) + need > limit:
            if cls != "telemetry":
                return "class_full"
            self.evict_telemetry(self.size(cls) + need - limit)
        excess = self.size() + need - MAX_BYTES
        if excess > 0 and not self.evict_telemetry(excess):
            return "spool_full"
        return None

    def order(self) -> list[int]:
        return sorted(self.rows, key=lambda i: (PRIORITY[self.rows[i][0]], i))


class SpoolMachine(RuleBasedStateMachine):
    """Random append/peek/delete/expire/reopen sequences against the model."""

    peeked = Bundle("peeked")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="spool-prop-"))
        self.path = self.dir / "spool.sqlite3"
        self.spool = self._open()
        self.model = Model()
        self.now = T0
        self.deleted: set[int] = set()
        self.last_id = 0

    def _open(self) -> Spool:
        return Spool(
            self.path,
            max_bytes=MAX_BYTES,
            max_age_s=MAX_AGE,
            decision_share=SHARES["decision"],
            command_share=SHARES["command"],
            telemetry_share=SHARES["telemetry"],
            synchronous="normal",
        )

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(
        cls=st.sampled_from(CLASSES),
        length=st.integers(0, 700),
        topic=st.sampled_from(["t", "devices/abc/telemetry", "décisions/é"]),
    )
    def append(self, cls: str, length: int, topic: str) -> None:
        payload = bytes([length % 251]) * length
        expected = self.model.admit(cls, row_size(topic, payload), self.now)
        try:
            row_id = self.spool.append(cls, topic, payload, now=self.now)
        except SpoolFull as exc:
            assert exc.reason == expected
            return
        assert expected is None
        assert row_id > self.last_id  # ids only grow, also across deletes and reopens
        self.last_id = row_id
        self.model.rows[row_id] = (cls, row_size(topic, payload), self.now)

    @rule(n=st.integers(1, 12))
    def peek_in_order(self, n: int) -> None:
        rows = self.spool.peek(n)
        assert [r.id for r in rows] == self.model.order()[:n]
        assert not {r.id for r in rows} & self.deleted

    @rule(target=peeked, n=st.integers(1, 5))
    def take_for_delivery(self, n: int) -> object:
        return multiple(*[r.id for r in self.spool.peek(n)])

    @rule(row_id=consumes(peeked))
    def acknowledge(self, row_id: int) -> None:
        expected = 1 if row_id in self.model.rows else 0  # may have been evicted meanwhile
        assert self.spool.delete([row_id]) == expected
        self.model.rows.pop(row_id, None)
        self.deleted.add(row_id)

    @rule(row_id=st.integers(-5, 10_000))
    def delete_any(self, row_id: int) -> None:
        expected = 1 if row_id in self.model.rows else 0
        assert self.spool.delete([row_id]) == expected
        self.model.rows.pop(row_id, None)
        if row_id <= self.last_id:  # an id not handed out yet may still be, later
            self.deleted.add(row_id)

    @rule(dt=st.integers(0, 101).map(float))  # whole seconds hit the age boundary exactly
    def advance_clock(self, dt: float) -> None:
        self.now += dt

    @rule()
    def expire(self) -> None:
        before = set(self.model.rows)
        self.model.expire(self.now)
        assert self.spool.expire(self.now) == len(before - set(self.model.rows))

    @rule()
    def reopen(self) -> None:
        self.spool.close()
        self.spool = self._open()
        assert self.spool.quarantined is None

    @invariant()
    def accounting_matches_stored_rows(self) -> None:
        stored = self.spool.peek(10_000)
        assert [r.id for r in stored] == self.model.order()
        assert self.spool.total_bytes == sum(row_size(r.topic, r.payload) for r in stored)
        assert self.spool.total_bytes == self.model.size()
        assert self.spool.total_bytes <= MAX_BYTES
        stats = self.spool.stats(now=self.now)
        for cls in CLASSES:
            assert stats[cls].bytes == self.model.size(cls) <= self.model.limits[cls]
            assert stats[cls].rows == sum(1 for r in stored if r.cls == cls)
        assert not {r.id for r in stored} & self.deleted


TestSpoolMachine = SpoolMachine.TestCase
TestSpoolMachine.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 1000.0),
    burst=st.integers(1, 50),
    steps=st.lists(st.tuples(st.floats(0.0, 2.0), st.integers(1, 5)), max_size=60),
)
def test_token_bucket_never_exceeds_rate_times_time_plus_burst(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    """Whatever the request pattern, tokens granted <= burst + rate * elapsed time."""
    bucket = TokenBucket(rate, burst, now=0.0)
    now = 0.0
    granted = 0
    for dt, n in steps:
        now += dt
        if n <= burst and bucket.delay(now, n) == 0.0:
            assert bucket.take(now, n)
            granted += n
        else:
            granted += bucket.take_up_to(now, n)
        assert granted <= burst + rate * now + 1e-6
