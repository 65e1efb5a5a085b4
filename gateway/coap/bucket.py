"""A token bucket with an explicit clock. Sans-IO."""

from __future__ import annotations

__all__ = ["LogThrottle", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``take`` spends one."""

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float) -> bool:
        tokens = self._tokens + (now - self._last) * self._rate
        tokens = min(tokens, self._burst)
        self._last = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


class LogThrottle:
    """At most one log line per key every ``interval`` seconds; counts what it held back."""

    __slots__ = ("_interval", "_state")

    def __init__(self, interval: float = 10.0) -> None:
        self._interval = interval
        self._state: dict[str, list[float]] = {}  # key -> [last logged at, suppressed since]

    def allow(self, key: str, now: float) -> int | None:
        """None to stay quiet, else how many lines were suppressed since the last one."""
        state = self._state.get(key)
        if state is None:
            self._state[key] = [now, 0.0]
            return 0
        if now - state[0] < self._interval:
            state[1] += 1
            return None
        suppressed = int(state[1])
        state[0], state[1] = now, 0.0
        return suppressed
