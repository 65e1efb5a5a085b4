"""The durable spool on real SQLite files: order, bounds, policies, durability, failures."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway.spool import (
    ROW_OVERHEAD,
    Spool,
    SpoolFull,
    SpoolMessage,
    TokenBucket,
    row_size,
)

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0  # a fixed wall-clock time for created_at


def make(tmp_path: Path, **kwargs: object) -> Spool:
    return Spool(tmp_path / "spool.sqlite3", **kwargs)  # type: ignore[arg-type]


def payload_for(size: int, topic: str = "t") -> bytes:
    """A payload whose row accounts exactly ``size`` bytes on ``topic``."""
    return b"x" * (size - ROW_OVERHEAD - len(topic))


def test_replay_order_is_priority_class_then_fifo(tmp_path: Path) -> None:
    """peek returns decisions, then commands, then telemetry, each in append order."""
    spool = make(tmp_path)
    appended = [
        ("telemetry", "t1"), ("command", "c1"), ("decision", "d1"), ("telemetry", "t2"),
        ("decision", "d2"), ("command", "c2"), ("telemetry", "t3"),
    ]
    for cls, topic in appended:
        spool.append(cls, topic, topic.encode(), now=T0)
    assert [r.topic for r in spool.peek(100)] == ["d1", "d2", "c1", "c2", "t1", "t2", "t3"]
    assert [r.topic for r in spool.peek(3)] == ["d1", "d2", "c1"]
    spool.close()


def test_peek_skip_passes_over_in_flight_rows(tmp_path: Path) -> None:
    """Ids given in skip are not returned again, and the next rows in order fill the page."""
    spool = make(tmp_path)
    ids = [spool.append("telemetry", f"t{i}", b"p", now=T0) for i in range(5)]
    first = spool.peek(2)
    assert [r.id for r in first] == ids[:2]
    assert [r.id for r in spool.peek(2, skip=[r.id for r in first])] == ids[2:4]
    spool.close()


def test_row_fields_round_trip_and_seq_defaults_to_row_id(tmp_path: Path) -> None:
    """Every stored field comes back; without an explicit seq the row id is the seq."""
    spool = make(tmp_path)
    a = spool.append("decision", "decisions/x", b"\x00\xff", 2, True, gateway_id="gw-1", now=T0)
    b = spool.append("telemetry", "devices/a/telemetry", b"{}", 0, gateway_id="gw-1", seq=77,
                     now=T0 + 1)
    assert b > a
    ra, rb = spool.peek(2)
    assert (ra.id, ra.cls, ra.topic, ra.payload, ra.qos, ra.retain, ra.gateway_id, ra.seq) == (
        a, "decision", "decisions/x", b"\x00\xff", 2, True, "gw-1", a
    )
    assert (rb.seq, rb.qos, rb.retain, rb.created_at) == (77, 0, False, T0 + 1)
    assert rb.size == row_size("devices/a/telemetry", b"{}")
    spool.close()


def test_invalid_class_or_qos_is_a_value_error(tmp_path: Path) -> None:
    """An unknown class or QoS is a programming error, not a refusal."""
    spool = make(tmp_path)
    with pytest.raises(ValueError, match="class"):
        spool.append("alarmz", "t", b"")
    with pytest.raises(ValueError, match="qos"):
        spool.append("telemetry", "t", b"", qos=3)
    assert spool.total_rows == 0
    spool.close()


def test_total_bound_drops_oldest_telemetry(tmp_path: Path) -> None:
    """When the spool is full, new telemetry pushes out the oldest telemetry, counted."""
    spool = make(tmp_path, max_bytes=1000)
    ids = [spool.append("telemetry", "t", payload_for(200), now=T0) for _ in range(5)]
    assert spool.total_bytes == 1000
    new = spool.append("telemetry", "t", payload_for(300), now=T0)
    assert [r.id for r in spool.peek(10)] == [*ids[2:], new]
    assert spool.total_bytes == 900
    assert spool.counters["dropped_telemetry_overflow"] == 2
    spool.close()


def test_telemetry_share_drops_oldest_telemetry_only(tmp_path: Path) -> None:
    """Telemetry over its own share evicts telemetry and leaves other classes alone."""
    spool = make(tmp_path, max_bytes=1000, telemetry_share=0.5)
    d = spool.append("decision", "t", payload_for(200), now=T0)
    t1 = spool.append("telemetry", "t", payload_for(250), now=T0)
    t2 = spool.append("telemetry", "t", payload_for(250), now=T0)
    t3 = spool.append("telemetry", "t", payload_for(100), now=T0)
    assert [r.id for r in spool.peek(10)] == [d, t2, t3]
    assert t1 < t2
    assert spool.counters["dropped_telemetry_overflow"] == 1
    spool.close()


def test_full_spool_evicts_telemetry_to_admit_a_decision(tmp_path: Path) -> None:
    """A decision arriving at a spool full of telemetry displaces the oldest telemetry."""
    spool = make(tmp_path, max_bytes=1000)
    ids = [spool.append("telemetry", "t", payload_for(250), now=T0) for _ in range(4)]
    d = spool.append("decision", "t", payload_for(100), now=T0)
    assert [r.id for r in spool.peek(10)] == [d, *ids[1:]]
    assert spool.counters["dropped_telemetry_overflow"] == 1
    spool.close()


def test_decision_over_its_share_is_refused_and_counted(tmp_path: Path) -> None:
    """Decisions beyond their share raise SpoolFull(class_full); the stored ones stay."""
    spool = make(tmp_path, max_bytes=1000, decision_share=0.25)
    kept = spool.append("decision", "t", payload_for(200), now=T0)
    with pytest.raises(SpoolFull) as info:
        spool.append("decision", "t", payload_for(100), now=T0)
    assert info.value.reason == "class_full"
    assert spool.counters["refused_decision_class_full"] == 1
    assert [r.id for r in spool.peek(10)] == [kept]
    spool.close()


def test_command_over_its_share_is_refused_not_dropped(tmp_path: Path) -> None:
    """Commands are refused like decisions (never silently dropped)."""
    spool = make(tmp_path, max_bytes=1000, command_share=0.2)
    kept = spool.append("command", "t", payload_for(200), now=T0)
    with pytest.raises(SpoolFull, match="class_full"):
        spool.append("command", "t", payload_for(100), now=T0)
    assert spool.counters["refused_command_class_full"] == 1
    assert [r.id for r in spool.peek(10)] == [kept]
    spool.close()


def test_decision_refused_when_no_telemetry_left_to_evict(tmp_path: Path) -> None:
    """With the spool full of non-telemetry rows, a decision is refused with spool_full."""
    spool = make(tmp_path, max_bytes=1000, decision_share=1.0, command_share=1.0)
    spool.append("command", "t", payload_for(500), now=T0)
    spool.append("decision", "t", payload_for(400), now=T0)
    with pytest.raises(SpoolFull, match="spool_full"):
        spool.append("decision", "t", payload_for(200), now=T0)
    assert spool.counters["refused_decision_spool_full"] == 1
    assert spool.total_bytes == 900
    spool.close()


def test_row_larger_than_its_limit_is_too_large(tmp_path: Path) -> None:
    """A single row that could never fit is refused at once, without evicting anything."""
    spool = make(tmp_path, max_bytes=1000)
    spool.append("telemetry", "t", payload_for(900), now=T0)
    with pytest.raises(SpoolFull, match="too_large"):
        spool.append("telemetry", "t", payload_for(1001), now=T0)
    assert spool.counters["refused_telemetry_too_large"] == 1
    assert spool.counters["dropped_telemetry_overflow"] == 0
    assert spool.total_rows == 1
    spool.close()


def test_append_many_is_one_transaction_with_per_message_results(tmp_path: Path) -> None:
    """A batch stores what fits and reports a SpoolFull for each refused message."""
    spool = make(tmp_path, max_bytes=1000, decision_share=0.25)
    results = spool.append_many(
        [
            SpoolMessage("decision", "t", payload_for(200)),
            SpoolMessage("decision", "t", payload_for(200)),
            SpoolMessage("telemetry", "t", payload_for(200)),
        ],
        now=T0,
    )
    assert isinstance(results[0], int) and isinstance(results[2], int)
    assert isinstance(results[1], SpoolFull) and results[1].reason == "class_full"
    assert [r.id for r in spool.peek(10)] == [results[0], results[2]]
    assert spool.append_many([]) == []
    spool.close()


def test_expire_removes_rows_older_than_max_age(tmp_path: Path) -> None:
    """Rows older than max_age_s go on expire(now), counted per class; younger ones stay."""
    spool = make(tmp_path, max_age_s=100.0)
    spool.append("telemetry", "old", b"", now=T0)
    spool.append("decision", "old", b"", now=T0 + 10)
    young = spool.append("telemetry", "young", b"", now=T0 + 50)
    assert spool.expire(now=T0 + 100) == 0
    assert spool.expire(now=T0 + 130) == 2
    assert [r.id for r in spool.peek(10)] == [young]
    assert spool.counters["expired_telemetry"] == 1
    assert spool.counters["expired_decision"] == 1
    assert spool.total_bytes == row_size("young", b"")
    spool.close()


def test_peek_with_now_never_returns_expired_rows(tmp_path: Path) -> None:
    """peek(now=...) expires first, so a stale message is never replayed."""
    spool = make(tmp_path, max_age_s=100.0)
    spool.append("decision", "stale", b"", now=T0)
    fresh = spool.append("telemetry", "fresh", b"", now=T0 + 90)
    assert [r.id for r in spool.peek(10, now=T0 + 150)] == [fresh]
    spool.close()


def test_append_expires_old_rows_before_refusing(tmp_path: Path) -> None:
    """A full decision class makes room by expiry before it would refuse."""
    spool = make(tmp_path, max_bytes=1000, max_age_s=100.0, decision_share=0.25)
    spool.append("decision", "t", payload_for(200), now=T0)
    new = spool.append("decision", "t", payload_for(200), now=T0 + 200)
    assert [r.id for r in spool.peek(10)] == [new]
    assert spool.counters["expired_decision"] == 1
    assert spool.counters["refused_decision_class_full"] == 0
    spool.close()


def test_delete_removes_rows_and_ignores_unknown_ids(tmp_path: Path) -> None:
    """delete() returns how many rows went, keeps byte accounting and skips unknown ids."""
    spool = make(tmp_path)
    ids = [spool.append("telemetry", "t", b"abc", now=T0) for _ in range(3)]
    assert spool.delete([ids[0], ids[2], 999_999]) == 2
    assert spool.delete([]) == 0
    assert [r.id for r in spool.peek(10)] == [ids[1]]
    assert spool.total_bytes == row_size("t", b"abc")
    assert spool.counters["deleted"] == 2
    spool.close()


def test_delete_handles_more_ids_than_one_statement_takes(tmp_path: Path) -> None:
    """Thousands of ids are deleted in chunks inside one transaction."""
    spool = make(tmp_path, synchronous="normal")
    ids = spool.append_many([SpoolMessage("telemetry", "t", b"") for _ in range(1200)], now=T0)
    assert spool.delete(i for i in ids if isinstance(i, int)) == 1200
    assert spool.total_rows == 0 and spool.total_bytes == 0
    spool.close()


def test_ids_are_never_reused_after_delete(tmp_path: Path) -> None:
    """AUTOINCREMENT: deleting the newest row does not hand its id out again."""
    spool = make(tmp_path)
    first = spool.append("telemetry", "t", b"", now=T0)
    spool.delete([first])
    assert spool.append("telemetry", "t", b"", now=T0) > first
    spool.close()


def test_stats_per_class(tmp_path: Path) -> None:
    """stats() gives rows, bytes and the oldest row's age for every class."""
    spool = make(tmp_path)
    spool.append("telemetry", "t", b"12", now=T0)
    spool.append("telemetry", "t", b"3", now=T0 + 5)
    spool.append("decision", "d", b"", now=T0 + 7)
    stats = spool.stats(now=T0 + 10)
    assert stats["telemetry"].rows == 2
    assert stats["telemetry"].bytes == row_size("t", b"12") + row_size("t", b"3")
    assert stats["telemetry"].oldest_age_s == 10.0
    assert stats["decision"].oldest_age_s == 3.0
    assert (stats["command"].rows, stats["command"].bytes) == (0, 0)
    assert stats["command"].oldest_age_s is None
    assert spool.file_bytes() > 0
    spool.close()


def test_refusals_are_logged_with_their_reason(tmp_path: Path) -> None:
    """A refusal produces a warning naming the counted reason."""
    spool = make(tmp_path, max_bytes=1000, decision_share=0.1)
    with capture_logs() as logs, pytest.raises(SpoolFull):
        spool.append("decision", "t", payload_for(200), now=T0)
    assert [(e["event"], e["reason"]) for e in logs] == [
        ("spool_refused", "refused_decision_too_large")
    ]
    spool.close()


async def test_concurrent_appends_from_worker_threads(tmp_path: Path) -> None:
    """Appends run through asyncio.to_thread at once get distinct ids and exact accounting."""
    spool = make(tmp_path, synchronous="normal")
    ids = await asyncio.gather(
        *(asyncio.to_thread(spool.append, "telemetry", "t", b"%d" % i, now=T0) for i in range(64))
    )
    assert len(set(ids)) == 64
    assert sorted(ids) == [r.id for r in spool.peek(100)]
    assert spool.total_bytes == sum(row_size("t", b"%d" % i) for i in range(64))
    spool.close()


def test_rows_survive_close_and_reopen(tmp_path: Path) -> None:
    """Rows appended and not deleted are there after reopening, with accounting restored."""
    with make(tmp_path) as spool:
        a = spool.append("telemetry", "t", b"one", now=T0)
        b = spool.append("decision", "d", b"two", now=T0)
        c = spool.append("command", "c", b"three", now=T0)
        spool.delete([c])
        counted = spool.total_bytes
    with make(tmp_path) as again:
        assert [r.id for r in again.peek(10)] == [b, a]
        assert again.total_bytes == counted
        assert again.quarantined is None
        assert again.append("telemetry", "t", b"", now=T0) > c


def test_row_survives_sigkill_right_after_append(tmp_path: Path) -> None:
    """A process SIGKILLed right after append returned leaves the row on disk.

    This proves the commit happened before append returned; power loss is covered by
    synchronous=FULL, which a test cannot simulate.
    """
    path = tmp_path / "spool.sqlite3"
    child = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from gateway.spool import Spool
        spool = Spool(Path({str(path)!r}))
        row_id = spool.append("decision", "decisions/x", b"acked", 1, gateway_id="gw", seq=5)
        print(row_id, flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, cwd=REPO, env=env, text=True
    )
    try:
        assert proc.stdout is not None
        row_id = int(proc.stdout.readline())
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    with Spool(path) as spool:
        rows = spool.peek(10)
    assert [(r.id, r.payload, r.gateway_id, r.seq) for r in rows] == [(row_id, b"acked", "gw", 5)]


def test_garbage_file_is_quarantined_and_a_fresh_spool_works(tmp_path: Path) -> None:
    """A file that is not SQLite is moved aside (kept byte for byte) and a new spool starts."""
    path = tmp_path / "spool.sqlite3"
    garbage = b"this is not a database, " * 200
    path.write_bytes(garbage)
    with capture_logs() as logs, Spool(path) as spool:
        assert spool.quarantined is not None
        [warning] = [e for e in logs if e["event"] == "spool_database_quarantined"]
        assert warning["log_level"] == "warning"
        assert (warning["path"], warning["moved_to"]) == (str(path), str(spool.quarantined))
        assert spool.quarantined.name.startswith("spool.sqlite3.corrupt-")
        assert spool.quarantined.read_bytes() == garbage
        assert spool.counters["quarantined"] == 1
        row = spool.append("telemetry", "t", b"fresh", now=T0)
        assert [r.id for r in spool.peek(1)] == [row]
    with Spool(path) as again:
        assert again.quarantined is None
        assert again.total_rows == 1


def test_damaged_pages_are_quarantined(tmp_path: Path) -> None:
    """A real spool whose pages were overwritten fails quick_check and is moved aside."""
    path = tmp_path / "spool.sqlite3"
    with Spool(path, synchronous="normal") as spool:
        spool.append_many(
            [SpoolMessage("telemetry", f"t/{i}", os.urandom(200)) for i in range(300)], now=T0
        )
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[2 * page : 6 * page] = b"\xa5" * (4 * page)
    path.write_bytes(bytes(data))
    with Spool(path) as spool:
        assert spool.quarantined is not None
        assert spool.quarantined.exists()
        assert spool.total_rows == 0
        spool.append("decision", "d", b"works", now=T0)
        assert spool.total_rows == 1


def test_two_quarantines_in_the_same_second_keep_both_files(tmp_path: Path) -> None:
    """Quarantine names never collide: an earlier quarantined file is not overwritten."""
    path = tmp_path / "spool.sqlite3"
    moved = []
    for text in (b"first garbage " * 100, b"second garbage " * 100):
        path.write_bytes(text)
        with Spool(path) as spool:
            assert spool.quarantined is not None
            moved.append(spool.quarantined)
        path.unlink()
        for side in tmp_path.glob("spool.sqlite3-*"):
            side.unlink()
    assert moved[0] != moved[1]
    assert moved[0].read_bytes().startswith(b"first") and moved[1].read_bytes().startswith(b"sec")


def test_unknown_schema_version_is_quarantined(tmp_path: Path) -> None:
    """A SQLite file from a newer, unknown schema is moved aside instead of being misread."""
    path = tmp_path / "spool.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with Spool(path) as spool:
        assert spool.quarantined is not None and spool.quarantined.exists()


def test_disk_full_refuses_with_spoolfull_and_keeps_working(tmp_path: Path) -> None:
    """Hitting the file ceiling (SQLITE_FULL) raises SpoolFull(disk_full), counted, no crash."""
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path, max_file_bytes=64 * 1024)
    stored: list[int] = []
    with pytest.raises(SpoolFull) as info:
        for _ in range(200):
            stored.append(spool.append("telemetry", "t", os.urandom(1000), now=T0))
    assert info.value.reason == "disk_full"
    assert spool.counters["refused_telemetry_disk_full"] == 1
    assert len(stored) > 10
    # a whole batch is refused, also counted, and still no crash
    batch = spool.append_many([SpoolMessage("decision", "d", os.urandom(5000))] * 3, now=T0)
    assert all(isinstance(r, SpoolFull) and r.reason == "disk_full" for r in batch)
    assert spool.counters["refused_decision_disk_full"] == 3
    # what was stored is intact and still deliverable; accounting did not move
    assert [r.id for r in spool.peek(1000)] == stored
    assert spool.total_rows == len(stored)
    assert spool.delete(stored[:5]) == 5
    spool.close()
    with Spool(path) as again:
        assert again.total_rows == len(stored) - 5


def test_token_bucket_paces_after_the_burst() -> None:
    """Starts full, refills at rate, never above burst, and says how long to wait."""
    bucket = TokenBucket(rate=10.0, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.delay(0.0) == pytest.approx(0.1)
    assert not bucket.take(0.05)
    assert bucket.take(0.1)
    assert bucket.available(100.0) == 3.0
    assert bucket.take_up_to(100.0, 10) == 3
    assert bucket.delay(100.0, 2) == pytest.approx(0.2)
    assert bucket.delay(100.2, 2) == 0.0


def test_token_bucket_ignores_a_clock_going_backwards() -> None:
    """A clock step backwards grants nothing and does not break later refills."""
    bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert not bucket.take(10.5)
    assert bucket.take(11.0)


def test_token_bucket_rejects_impossible_settings() -> None:
    """A non-positive rate, a burst below one or a wait for more than burst is an error."""
    with pytest.raises(ValueError):
        TokenBucket(0.0, 1)
    with pytest.raises(ValueError):
        TokenBucket(1.0, 0)
    with pytest.raises(ValueError):
        TokenBucket(1.0, 2).delay(0.0, 3)
