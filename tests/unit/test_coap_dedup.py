"""Message-id de-duplication (RFC 7252 §4.5) and the small rate helpers of the CoAP server."""

from __future__ import annotations

import pytest

from gateway.coap.bucket import LogThrottle, TokenBucket
from gateway.coap.dedup import DedupCache

ADDR = ("192.0.2.1", 5683)


def test_unknown_key_is_not_seen() -> None:
    """A message id never remembered is new."""
    cache = DedupCache(8, 247.0)
    assert cache.lookup((ADDR, 1), 0.0) == (False, None)


def test_remembered_response_is_returned_for_a_duplicate() -> None:
    """§4.5: a duplicate CON gets the same response again (the stored datagram)."""
    cache = DedupCache(8, 247.0)
    cache.remember((ADDR, 1), b"ack", 0.0)
    assert cache.lookup((ADDR, 1), 10.0) == (True, b"ack")
    assert cache.lookup((("192.0.2.2", 5683), 1), 10.0) == (False, None)  # other endpoint


def test_non_is_remembered_without_a_response() -> None:
    """§4.5: a duplicate NON is recognised (and then silently ignored by the caller)."""
    cache = DedupCache(8, 247.0)
    cache.remember((ADDR, 2), None, 0.0)
    assert cache.lookup((ADDR, 2), 1.0) == (True, None)


def test_entries_expire_after_the_lifetime() -> None:
    """An id is forgotten EXCHANGE_LIFETIME after it was first seen, and may then be reused."""
    cache = DedupCache(8, 247.0)
    cache.remember((ADDR, 3), b"x", 0.0)
    assert cache.lookup((ADDR, 3), 246.9)[0]
    assert cache.lookup((ADDR, 3), 247.0) == (False, None)
    assert len(cache) == 0


def test_remember_again_keeps_the_first_expiry() -> None:
    """Updating an entry's response does not extend its life (no duplicate FIFO entries)."""
    cache = DedupCache(8, 10.0)
    cache.remember((ADDR, 4), None, 0.0)
    cache.remember((ADDR, 4), b"late", 5.0)
    assert cache.lookup((ADDR, 4), 9.0) == (True, b"late")
    assert cache.lookup((ADDR, 4), 10.0) == (False, None)


def test_capacity_evicts_the_oldest_first() -> None:
    """At capacity the oldest entry goes first, counted as evicted early."""
    cache = DedupCache(3, 247.0)
    for mid in range(5):
        cache.remember((ADDR, mid), bytes([mid]), float(mid))
    assert len(cache) == 3
    assert cache.evicted_early == 2
    assert cache.lookup((ADDR, 0), 5.0) == (False, None)
    assert cache.lookup((ADDR, 1), 5.0) == (False, None)
    assert cache.lookup((ADDR, 4), 5.0) == (True, b"\x04")


def test_many_entries_stay_bounded() -> None:
    """A long run of unique ids never holds more than the capacity."""
    cache = DedupCache(100, 1.0)
    for i in range(10_000):
        cache.remember((ADDR, i), None, i * 0.001)
        assert len(cache) <= 100
    assert (ADDR, 9_999) in cache


def test_capacity_must_be_positive() -> None:
    """A cache that can hold nothing is a configuration error."""
    with pytest.raises(ValueError):
        DedupCache(0, 1.0)


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    """burst tokens at once, then `rate` per second."""
    bucket = TokenBucket(rate=10.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.05)
    assert bucket.take(0.1)
    assert bucket.take(100.0) and bucket.take(100.0) and bucket.take(100.0)
    assert not bucket.take(100.0)  # refill is capped at the burst


def test_log_throttle_reports_suppressed_lines() -> None:
    """One line per interval and key; the next one says how many were held back."""
    throttle = LogThrottle(interval=10.0)
    assert throttle.allow("a", 0.0) == 0
    assert throttle.allow("a", 1.0) is None
    assert throttle.allow("a", 2.0) is None
    assert throttle.allow("b", 2.0) == 0
    assert throttle.allow("a", 10.5) == 2
