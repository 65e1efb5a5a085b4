"""MQTT-SN client sessions in SQLite, so that they survive a gateway restart."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_SCHEMA = "CREATE TABLE IF NOT EXISTS sessions (client_id TEXT PRIMARY KEY, record TEXT NOT NULL)"


class SessionStore:
    """One SQLite file (WAL); all calls are blocking and meant for a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def load_all(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT record FROM sessions ORDER BY client_id").fetchall()
        return [json.loads(record) for (record,) in rows]

    def apply(self, changes: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Write changed sessions and delete forgotten ones in one transaction."""
        if not changes:
            return
        upserts = [(cid, json.dumps(rec)) for cid, rec in changes.items() if rec is not None]
        deletes = [(cid,) for cid, rec in changes.items() if rec is None]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO sessions (client_id, record) VALUES (?, ?) "
                "ON CONFLICT(client_id) DO UPDATE SET record = excluded.record",
                upserts,
            )
            self._db.executemany("DELETE FROM sessions WHERE client_id = ?", deletes)

    def close(self) -> None:
        self._db.close()
