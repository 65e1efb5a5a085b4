"""Message-id de-duplication (RFC 7252 §4.5), bounded in time and in size. Sans-IO.

The fast path remembers every request it answered, keyed by (remote address, message id), with
the exact response datagram it sent (None for a Non-confirmable request: a duplicate NON is
silently ignored, §4.5). A duplicate Confirmable request gets that response again instead of
being processed twice.

Entries live ``lifetime`` seconds (EXCHANGE_LIFETIME, 247 s by default). At most ``capacity``
entries are kept: under a sustained high request rate the oldest are forgotten first, which
shortens the effective window below EXCHANGE_LIFETIME. Retransmissions arrive within
MAX_TRANSMIT_SPAN (45 s) of the original, so the window only matters when
``capacity / request rate`` drops below that; ``counters`` shows how often that happens.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

__all__ = ["DedupCache"]

class DedupCache:
    """FIFO of (expiry, key) plus a dict key -> response; both always hold the same keys."""

    __slots__ = ("_entries", "_order", "capacity", "evicted_early", "lifetime")

    def __init__(self, capacity: int, lifetime: float) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.lifetime = lifetime
        self._entries: dict[Hashable, bytes | None] = {}
        self._order: deque[tuple[float, Hashable]] = deque()
        self.evicted_early = 0  # entries dropped for space before their lifetime was over

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def lookup(self, key: Hashable, now: float) -> tuple[bool, bytes | None]:
        """(seen, stored response). Expired entries are dropped first."""
        self._expire(now)
        entries = self._entries
        if key not in entries:
            return False, None
        return True, entries[key]

    def remember(self, key: Hashable, response: bytes | None, now: float) -> None:
        """Record a processed message; a key already present keeps its original expiry."""
        if key in self._entries:
            self._entries[key] = response
            return
        self._entries[key] = response
        self._order.append((now + self.lifetime, key))
        if len(self._order) > self.capacity:
            _, oldest = self._order.popleft()
            del self._entries[oldest]
            self.evicted_early += 1

    def _expire(self, now: float) -> None:
        order = self._order
        while order and order[0][0] <= now:
            _, key = order.popleft()
            del self._entries[key]
