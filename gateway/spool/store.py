"""The durable store-and-forward spool: one SQLite file (WAL) under EGW_DATA_DIR.

Everything bound for the broker while it is unreachable (or slower than ingest) is appended
here; the replay loop ``peek``s rows in replay order, publishes them and ``delete``s each row
only after the broker's PUBACK. The API is blocking and meant for a worker thread
(``asyncio.to_thread``); one connection, guarded by a lock.

Durability: ``synchronous=FULL`` by default
    ``append`` returns only after its transaction committed, and with ``synchronous=FULL`` a WAL
    commit is fsync'ed before it returns. The spool is what lets the gateway acknowledge a QoS
    1/2 message (PUBACK/PUBREC, CoAP ACK) while the broker is down, and the contract is
    "acknowledge only after writing": a row the sensor was told is safe must survive a power
    cut, not just a crash of the process. WAL with ``synchronous=NORMAL`` survives a process
    crash (SIGKILL) but can lose the last transactions on power loss, i.e. messages that were
    already acknowledged and that the sensor will never resend. The cost of FULL is one fsync
    per commit; ``append_many`` commits a batch with one fsync (group commit), so callers
    under load should batch. ``synchronous="normal"`` stays available for sites that accept the
    trade (or for tests that only exercise the logic).

Priority classes, replay order and bounds
    ``decision`` (decisions and alarms) > ``command`` > ``telemetry``; FIFO within a class (the
    AUTOINCREMENT row id, never reused, is the order). The spool is bounded by accounted bytes
    (``max_bytes``; a row counts ``len(payload) + len(topic) + ROW_OVERHEAD``) and by age
    (``max_age_s``, by the wall clock at append, because rows outlive the process). Each class
    may use at most its share of ``max_bytes``. Overflow policy per class:

    * telemetry: the oldest telemetry rows are dropped (``dropped_telemetry_overflow``), also
      to make room for a decision or a command when the whole spool is full;
    * decision: the new row is refused with ``SpoolFull`` (``refused_decision_<reason>``);
    * command: refused like decisions. A command that was acknowledged to its issuer must not
      vanish silently, and dropping an older command while keeping a newer one could replay
      an actuator sequence out of context; a refusal is immediate and visible to the issuer.

    Rows older than ``max_age_s`` are expired (``expired_<class>``) by ``expire``, by ``peek``
    when given ``now`` and by ``append`` when it needs room. Every drop is counted by reason in
    ``counters``.

Failures
    A database that is not SQLite or fails ``PRAGMA quick_check`` at open is moved aside to
    ``<name>.corrupt-<UTC timestamp>`` (with its -wal/-shm files), never deleted, and a fresh
    one is created; a warning names both paths and ``quarantined`` says where the old file
    went. A full disk (SQLITE_FULL, also the optional ``max_file_bytes`` ceiling) makes
    ``append`` raise ``SpoolFull("disk_full")`` after rolling back; nothing crashes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

__all__ = [
    "CLASSES",
    "DEFAULT_FILENAME",
    "PRIORITY",
    "ROW_OVERHEAD",
    "ClassStats",
    "Row",
    "Spool",
    "SpoolFull",
    "SpoolMessage",
    "row_size",
]

log = structlog.get_logger(__name__)

DEFAULT_FILENAME = "spool.sqlite3"
SCHEMA_VERSION = 1
ROW_OVERHEAD = 64
"""Accounted bytes per row beyond payload and topic (header, columns, index entries)."""

CLASSES = ("decision", "command", "telemetry")
PRIORITY = {"decision": 0, "command": 1, "telemetry": 2}
"""Replay order: lower first. Alarms are spooled in the ``decision`` class."""
_TELEMETRY = "telemetry"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS spool (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        cls TEXT NOT NULL,
        prio INTEGER NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        qos INTEGER NOT NULL,
        retain INTEGER NOT NULL,
        gateway_id TEXT NOT NULL,
        seq INTEGER,
        created_at REAL NOT NULL,
        bytes INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS spool_order ON spool (prio, id)",
    "CREATE INDEX IF NOT EXISTS spool_age ON spool (created_at)",
)
_COLUMNS = "id, cls, topic, payload, qos, retain, gateway_id, COALESCE(seq, id), created_at, bytes"
_CHUNK = 500  # ids per DELETE statement, well below SQLite's bound-parameter limit
_LOG_INTERVAL = 10.0  # seconds between two refusal log lines of the same reason


class SpoolFull(Exception):
    """A row was not stored; ``reason`` is one of too_large, class_full, spool_full, disk_full."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SpoolMessage:
    """One message to append; ``seq=None`` means "use the row id"."""

    cls: str
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    gateway_id: str = ""
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """A stored message, as ``peek`` returns it."""

    id: int
    cls: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    gateway_id: str
    seq: int
    created_at: float
    size: int  # accounted bytes, see row_size


@dataclass(frozen=True, slots=True)
class ClassStats:
    """Rows, accounted bytes and the age of the oldest row (None when empty) of one class."""

    rows: int
    bytes: int
    oldest_age_s: float | None


def row_size(topic: str, payload: bytes) -> int:
    """Accounted bytes of one row."""
    return len(payload) + len(topic.encode()) + ROW_OVERHEAD


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _is_disk_full(exc: sqlite3.Error) -> bool:
    return _primary_code(exc) == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc)


def _is_corrupt(exc: sqlite3.Error) -> bool:
    if _primary_code(exc) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return True
    text = str(exc)
    return "file is not a database" in text or "malformed" in text


class Spool:
    """The durable spool; see the module docstring for the policy. Thread-safe, blocking."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 512 * 1024 * 1024,
        max_age_s: float = 7 * 24 * 3600.0,
        decision_share: float = 0.25,
        command_share: float = 0.25,
        telemetry_share: float = 1.0,
        synchronous: Literal["full", "normal"] = "full",
        max_file_bytes: int | None = None,
    ) -> None:
        if max_bytes < 1 or max_age_s <= 0:
            raise ValueError("max_bytes and max_age_s must be positive")
        shares = {"decision": decision_share, "command": command_share, _TELEMETRY: telemetry_share}
        for name, share in shares.items():
            if not 0.0 < share <= 1.0:
                raise ValueError(f"{name}_share must be in (0, 1], got {share!r}")
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be full or normal, got {synchronous!r}")
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.class_limits = {name: int(max_bytes * share) for name, share in shares.items()}
        self.counters: Counter[str] = Counter()
        self.quarantined: Path | None = None
        self._synchronous = synchronous.upper()
        self._max_file_bytes = max_file_bytes
        self._lock = threading.Lock()
        self._rows = dict.fromkeys(CLASSES, 0)
        self._bytes = dict.fromkeys(CLASSES, 0)
        self._log_state: dict[str, tuple[float, int]] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()
        for cls, rows, size in self._db.execute(
            "SELECT cls, COUNT(*), COALESCE(SUM(bytes), 0) FROM spool GROUP BY cls"
        ):
            if cls in self._rows:
                self._rows[cls], self._bytes[cls] = int(rows), int(size)

    # -- opening, checking, quarantining -----------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)

    def _problem(self) -> str | None:
        """Why the existing file cannot be used as it is, or None."""
        try:
            db = self._connect()
        except sqlite3.DatabaseError as exc:
            if _is_corrupt(exc):
                return str(exc)
            raise
        try:
            result = [str(r[0]) for r in db.execute("PRAGMA quick_check").fetchall()]
            if result != ["ok"]:
                return "quick_check: " + "; ".join(result[:5])
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, SCHEMA_VERSION):
                return f"unknown schema version {version}"
            return None
        except sqlite3.DatabaseError as exc:
            if _is_corrupt(exc):
                return str(exc)
            raise  # locked, I/O error, ...: not evidence of corruption, never quarantine
        finally:
            db.close()

    def _quarantine(self, reason: str) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        self.path.rename(target)
        for suffix in ("-wal", "-shm", "-journal"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.rename(target.with_name(target.name + suffix))
        self.counters["quarantined"] += 1
        log.warning(
            "spool_database_quarantined",
            path=str(self.path),
            moved_to=str(target),
            reason=reason,
            action="started a fresh, empty spool; the old file is kept for inspection",
        )
        return target

    def _open(self) -> sqlite3.Connection:
        if self.path.exists():
            problem = self._problem()
            if problem is not None:
                self.quarantined = self._quarantine(problem)
        db = self._connect()
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RuntimeError(f"spool {self.path}: cannot use WAL mode (got {mode})")
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.execute("PRAGMA journal_size_limit=67108864")
            if self._max_file_bytes is not None:
                page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
                pages = max(1, self._max_file_bytes // page_size)
                db.execute(f"PRAGMA max_page_count={pages}")
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        """Close the connection; everything appended is already committed."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------

    def append(
        self,
        cls: str,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        *,
        gateway_id: str = "",
        seq: int | None = None,
        now: float | None = None,
    ) -> int:
        """Store one message and commit; its row id. Raises ``SpoolFull`` when not stored.

        Once this returned, the message is durable (see the module docstring) and may be
        acknowledged to its sender.
        """
        message = SpoolMessage(cls, topic, payload, qos, retain, gateway_id, seq)
        result = self.append_many([message], now=now)[0]
        if isinstance(result, SpoolFull):
            raise result
        return result

    def append_many(
        self, messages: Sequence[SpoolMessage], now: float | None = None
    ) -> list[int | SpoolFull]:
        """Store a batch in ONE transaction (one fsync); per message, its row id or why not.

        Refusals of single messages do not affect the others; a full disk refuses the whole
        batch (``SpoolFull("disk_full")`` for each message).
        """
        for message in messages:
            if message.cls not in PRIORITY:
                raise ValueError(f"unknown spool class {message.cls!r}")
            if message.qos not in (0, 1, 2):
                raise ValueError(f"invalid qos {message.qos!r}")
        if not messages:
            return []
        t = time.time() if now is None else now
        with self._lock:
            rows, size = dict(self._rows), dict(self._bytes)
            counts: Counter[str] = Counter()
            results: list[int | SpoolFull] = []
            try:
                self._db.execute("BEGIN IMMEDIATE")
                expired = False
                for m in messages:
                    need = row_size(m.topic, m.payload)
                    reason, expired = self._make_room(
                        m.cls, need, t, rows=rows, size=size, counts=counts, expired=expired
                    )
                    if reason is not None:
                        counts[f"refused_{m.cls}_{reason}"] += 1
                        results.append(SpoolFull(reason))
                        continue
                    cursor = self._db.execute(
                        "INSERT INTO spool (cls, prio, topic, payload, qos, retain, gateway_id,"
                        " seq, created_at, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            m.cls, PRIORITY[m.cls], m.topic, m.payload, m.qos, int(m.retain),
                            m.gateway_id, m.seq, t, need,
                        ),
                    )
                    assert cursor.lastrowid is not None
                    rows[m.cls] += 1
                    size[m.cls] += need
                    counts[f"appended_{m.cls}"] += 1
                    results.append(cursor.lastrowid)
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback()
                if not _is_disk_full(exc):
                    raise
                for m in messages:
                    self.counters[f"refused_{m.cls}_disk_full"] += 1
                self._log_refusal(
                    "refused_disk_full", len(messages), path=str(self.path), error=str(exc)
                )
                return [SpoolFull("disk_full") for _ in messages]
            except BaseException:
                self._rollback()
                raise
            self._rows, self._bytes = rows, size
            self.counters.update(counts)
            for key, n in counts.items():
                if key.startswith("refused_"):
                    self._log_refusal(key, n)
            return results

    def _make_room(
        self,
        cls: str,
        need: int,
        now: float,
        *,
        rows: dict[str, int],
        size: dict[str, int],
        counts: Counter[str],
        expired: bool,
    ) -> tuple[str | None, bool]:
        """Expire/evict inside the open transaction; (refusal reason or None, expired yet)."""
        limit = self.class_limits[cls]
        if need > min(limit, self.max_bytes):
            return "too_large", expired

        def class_excess() -> int:
            return size[cls] + need - limit

        def total_excess() -> int:
            return sum(size.values()) + need - self.max_bytes

        if class_excess() <= 0 and total_excess() <= 0:
            return None, expired
        if not expired:
            self._expire_locked(now, rows, size, counts)
            expired = True
        if class_excess() > 0:
            if cls != _TELEMETRY:
                return "class_full", expired
            self._evict_telemetry(class_excess(), rows, size, counts)
        excess = total_excess()
        if excess > 0 and not self._evict_telemetry(excess, rows, size, counts):
            return "spool_full", expired
        return None, expired

    def _evict_telemetry(
        self, need: int, rows: dict[str, int], size: dict[str, int], counts: Counter[str]
    ) -> bool:
        """Drop the oldest telemetry rows freeing at least ``need`` bytes; False if impossible."""
        if size[_TELEMETRY] < need:
            return False
        freed, dropped, last_id = 0, 0, None
        prio = PRIORITY[_TELEMETRY]
        while freed < need:
            batch = self._db.execute(
                "SELECT id, bytes FROM spool WHERE prio = ? AND id > ? ORDER BY id LIMIT 256",
                (prio, -1 if last_id is None else last_id),
            ).fetchall()
            if not batch:  # accounting says there is enough; the table disagrees
                raise RuntimeError("spool byte accounting out of step with the table")
            for row_id, row_bytes in batch:
                freed += int(row_bytes)
                dropped += 1
                last_id = int(row_id)
                if freed >= need:
                    break
        self._db.execute("DELETE FROM spool WHERE prio = ? AND id <= ?", (prio, last_id))
        rows[_TELEMETRY] -= dropped
        size[_TELEMETRY] -= freed
        counts["dropped_telemetry_overflow"] += dropped
        return True

    def _expire_locked(
        self, now: float, rows: dict[str, int], size: dict[str, int], counts: Counter[str]
    ) -> int:
        cutoff = now - self.max_age_s
        groups = self._db.execute(
            "SELECT cls, COUNT(*), SUM(bytes) FROM spool WHERE created_at < ? GROUP BY cls",
            (cutoff,),
        ).fetchall()
        if not groups:
            return 0
        self._db.execute("DELETE FROM spool WHERE created_at < ?", (cutoff,))
        total = 0
        for cls, n, freed in groups:
            rows[cls] -= int(n)
            size[cls] -= int(freed)
            counts[f"expired_{cls}"] += int(n)
            total += int(n)
        return total

    def expire(self, now: float | None = None) -> int:
        """Delete rows older than ``max_age_s``; how many."""
        t = time.time() if now is None else now
        with self._lock:
            rows, size = dict(self._rows), dict(self._bytes)
            counts: Counter[str] = Counter()
            try:
                self._db.execute("BEGIN IMMEDIATE")
                n = self._expire_locked(t, rows, size, counts)
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._rows, self._bytes = rows, size
            self.counters.update(counts)
            if n:
                log.warning("spool_rows_expired", rows=n, max_age_s=self.max_age_s, **counts)
            return n

    def delete(self, ids: Iterable[int]) -> int:
        """Delete delivered rows (after the broker's PUBACK); unknown ids are ignored."""
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        with self._lock:
            rows, size = dict(self._rows), dict(self._bytes)
            deleted = 0
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    for cls, row_bytes in self._db.execute(
                        f"DELETE FROM spool WHERE id IN ({marks}) RETURNING cls, bytes", chunk
                    ).fetchall():
                        rows[cls] -= 1
                        size[cls] -= int(row_bytes)
                        deleted += 1
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback()
                if _is_disk_full(exc):
                    self.counters["delete_failed_disk_full"] += 1
                    raise SpoolFull("disk_full") from exc
                raise
            except BaseException:
                self._rollback()
                raise
            self._rows, self._bytes = rows, size
            self.counters["deleted"] += deleted
            return deleted

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _log_refusal(self, key: str, n: int, **fields: str) -> None:
        """A warning per reason at most every ``_LOG_INTERVAL`` s, with what it held back."""
        now = time.monotonic()
        last, held = self._log_state.get(key, (float("-inf"), 0))
        if now - last < _LOG_INTERVAL:
            self._log_state[key] = (last, held + n)
            return
        self._log_state[key] = (now, 0)
        log.warning("spool_refused", reason=key, messages=n + held, **fields)

    # -- reading -----------------------------------------------------------------------------

    def peek(self, n: int, skip: Iterable[int] = (), now: float | None = None) -> list[Row]:
        """Up to ``n`` rows in replay order (priority class, then FIFO), leaving them stored.

        ``skip`` lists ids to pass over (e.g. already in flight); with ``now``, rows older
        than ``max_age_s`` are expired first.
        """
        if n <= 0:
            return []
        if now is not None:
            self.expire(now)
        passed = set(skip)
        with self._lock:
            fetched = self._db.execute(
                f"SELECT {_COLUMNS} FROM spool ORDER BY prio, id LIMIT ?", (n + len(passed),)
            ).fetchall()
        out = [
            Row(int(r[0]), r[1], r[2], bytes(r[3]), int(r[4]), bool(r[5]), r[6], int(r[7]),
                float(r[8]), int(r[9]))
            for r in fetched
            if r[0] not in passed
        ]
        return out[:n]

    @property
    def total_rows(self) -> int:
        return sum(self._rows.values())

    @property
    def total_bytes(self) -> int:
        """Accounted bytes of all stored rows (not the file size: see ``file_bytes``)."""
        return sum(self._bytes.values())

    def file_bytes(self) -> int:
        """Bytes on disk: database plus WAL."""
        wal = self.path.with_name(self.path.name + "-wal")
        return sum(p.stat().st_size for p in (self.path, wal) if p.exists())

    def stats(self, now: float | None = None) -> dict[str, ClassStats]:
        """Per class: rows, accounted bytes, age of the oldest row (by FIFO order) in seconds."""
        t = time.time() if now is None else now
        out: dict[str, ClassStats] = {}
        with self._lock:
            for cls in CLASSES:
                first = self._db.execute(
                    "SELECT created_at FROM spool WHERE prio = ? ORDER BY id LIMIT 1",
                    (PRIORITY[cls],),
                ).fetchone()
                age = None if first is None else max(0.0, t - float(first[0]))
                out[cls] = ClassStats(self._rows[cls], self._bytes[cls], age)
        return out
