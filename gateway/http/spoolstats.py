"""Spool figures for the metrics endpoint, read in a worker thread and kept for a short while.

`Spool.stats()` queries SQLite under the spool's lock, which a group commit (fsync) may hold:
never on the event loop. One scrape refreshes the snapshot when it is older than `ttl`; while a
refresh runs, other scrapes wait for it; one that takes longer than `timeout` leaves the old
snapshot in place.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.spool import ClassStats, Spool

__all__ = ["SpoolSnapshot", "SpoolStatsCache"]


@dataclass(frozen=True, slots=True)
class SpoolSnapshot:
    classes: dict[str, ClassStats]
    file_bytes: int
    counters: dict[str, int]


def read_snapshot(spool: Spool) -> SpoolSnapshot:
    """Blocking: run it in a worker thread."""
    return SpoolSnapshot(spool.stats(), spool.file_bytes(), dict(spool.counters))


class SpoolStatsCache:
    def __init__(
        self,
        ttl: float = 1.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._lock = asyncio.Lock()
        self._taken_at: float | None = None
        self.snapshot: SpoolSnapshot | None = None

    async def refresh(self, spool: Spool | None) -> None:
        if spool is None:
            self.snapshot = None
            return
        async with self._lock:
            taken_at = self._taken_at
            if taken_at is not None and self._clock() - taken_at < self._ttl:
                return
            try:
                async with asyncio.timeout(self._timeout):
                    self.snapshot = await asyncio.to_thread(read_snapshot, spool)
            except TimeoutError:
                return  # keep the previous snapshot; the thread finishes on its own
            self._taken_at = self._clock()
