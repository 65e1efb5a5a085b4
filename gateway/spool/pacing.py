"""A token bucket with an explicit clock, for pacing the spool's replay. Sans-IO."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full.

    Every method takes ``now`` (any monotonic clock, seconds); the first call sets the clock
    unless ``now`` is given here. A clock that goes backwards adds no tokens.
    """

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int, now: float | None = None) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self._rate = float(rate)
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> int:
        return int(self._burst)

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        if self._last is None or now > self._last:
            self._last = now

    def available(self, now: float) -> float:
        """Tokens that could be spent at ``now`` (fractional)."""
        self._refill(now)
        return self._tokens

    def take(self, now: float, n: int = 1) -> bool:
        """Spend ``n`` tokens if there are enough; False (and nothing spent) otherwise."""
        if n < 0:
            raise ValueError("n must be >= 0")
        self._refill(now)
        if self._tokens + 1e-9 < n:
            return False
        self._tokens = max(0.0, self._tokens - n)
        return True

    def take_up_to(self, now: float, n: int) -> int:
        """Spend as many whole tokens as there are, at most ``n``; how many were spent."""
        self._refill(now)
        granted = max(0, min(n, int(self._tokens + 1e-9)))
        self._tokens = max(0.0, self._tokens - granted)
        return granted

    def delay(self, now: float, n: int = 1) -> float:
        """Seconds from ``now`` until ``take(n)`` would succeed; 0.0 when it would now."""
        if n > self._burst:
            raise ValueError(f"{n} tokens can never be available with burst {self.burst}")
        self._refill(now)
        missing = n - self._tokens
        return 0.0 if missing <= 1e-9 else missing / self._rate
