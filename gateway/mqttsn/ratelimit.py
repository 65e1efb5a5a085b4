"""Per-address token buckets: an address that floods is dropped, others are not disturbed."""

from __future__ import annotations

from gateway.mqttsn.events import Address


class AddressRateLimiter:
    __slots__ = ("_buckets", "_burst", "_rate")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._buckets: dict[Address, list[float]] = {}  # addr -> [tokens, last refill]

    def allow(self, addr: Address, now: float) -> bool:
        bucket = self._buckets.get(addr)
        if bucket is None:
            self._buckets[addr] = [self._burst - 1.0, now]
            return True
        tokens = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def forget_idle(self, idle_since: float) -> None:
        """Drop buckets untouched since `idle_since` (they would be full again anyway)."""
        for addr in [a for a, (_, last) in self._buckets.items() if last < idle_since]:
            del self._buckets[addr]
