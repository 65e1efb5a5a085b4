"""Unit tests of the bridge's topic helpers, backoff and echo filter."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.bridge.link import EchoFilter, backoff_delays
from gateway.topics import (
    add_mountpoint,
    strip_mountpoint,
    topic_matches,
    validate_filter,
    validate_mountpoint,
    validate_topic,
)

level = st.text(alphabet="abc$ /+#\x00é", max_size=4).filter(
    lambda s: "/" not in s and "+" not in s and "#" not in s and "\x00" not in s
)
topic_names = st.lists(level, min_size=1, max_size=5).map("/".join)


def test_add_mountpoint_prefixes() -> None:
    """A mountpoint is a plain prefix; an empty one leaves topics unchanged."""
    assert add_mountpoint("edge/site1/", "sensors/t") == "edge/site1/sensors/t"
    assert add_mountpoint("", "sensors/t") == "sensors/t"
    assert add_mountpoint("edge/site1/", "cmd/#") == "edge/site1/cmd/#"


def test_strip_mountpoint_inside_and_outside() -> None:
    """Stripping returns the local topic, or None outside the mountpoint."""
    assert strip_mountpoint("edge/site1/", "edge/site1/cmd/a") == "cmd/a"
    assert strip_mountpoint("edge/site1/", "edge/site2/cmd/a") is None
    assert strip_mountpoint("edge/site1/", "edge/site1") is None
    assert strip_mountpoint("", "cmd/a") == "cmd/a"


@given(mountpoint=st.sampled_from(["", "edge/s/", "a/"]), topic=topic_names)
def test_strip_inverts_add(mountpoint: str, topic: str) -> None:
    """strip(add(topic)) is the identity for any mountpoint."""
    assert strip_mountpoint(mountpoint, add_mountpoint(mountpoint, topic)) == topic


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("+/+", "/x", True),
        ("+", "/x", False),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("a/b/c", "a/b", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    """Filter matching follows the MQTT rules for '+', '#' and '$' topics."""
    assert topic_matches(topic_filter, topic) is expected


@given(topic=topic_names)
def test_topic_matches_itself_and_hash(topic: str) -> None:
    """Every topic matches itself, and '#' unless it starts with '$'."""
    assert topic_matches(topic, topic)
    assert topic_matches("#", topic) is (not topic.startswith("$"))


@pytest.mark.parametrize("bad", ["", "a/+", "a/#", "a\x00b", "x" * 65536])
def test_validate_topic_rejects(bad: str) -> None:
    """Topic names must be non-empty, wildcard-free, NUL-free and at most 65535 bytes."""
    with pytest.raises(ValueError):
        validate_topic(bad)


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "a/b+", "#/a", "a\x00"])
def test_validate_filter_rejects(bad: str) -> None:
    """Wildcards must occupy whole levels and '#' must be last."""
    with pytest.raises(ValueError):
        validate_filter(bad)


@pytest.mark.parametrize("good", ["#", "+", "a/+/b", "a/#", "+/+/#", "$SYS/#"])
def test_validate_filter_accepts(good: str) -> None:
    """Well-formed filters pass validation."""
    validate_filter(good)
    validate_topic("a/b")


def test_validate_mountpoint() -> None:
    """A mountpoint may not contain wildcards."""
    validate_mountpoint("edge/site1/")
    validate_mountpoint("")
    with pytest.raises(ValueError):
        validate_mountpoint("edge/+/")


def test_backoff_is_bounded_and_grows() -> None:
    """Backoff delays stay within [low, high] and their ceiling doubles up to high."""
    delays = backoff_delays(0.5, 8.0, random.Random(1))
    values = [next(delays) for _ in range(20)]
    assert all(0.5 <= v <= 8.0 for v in values)
    assert max(values[:2]) <= 1.0
    assert max(values[8:]) > 4.0


def test_echo_filter_consumes_each_publish_once() -> None:
    """Each remembered publish cancels exactly one echo of the same topic and payload."""
    echo = EchoFilter()
    echo.remember("a/b", b"1")
    echo.remember("a/b", b"1")
    assert not echo.consume("a/b", b"2")
    assert echo.consume("a/b", b"1")
    assert echo.consume("a/b", b"1")
    assert not echo.consume("a/b", b"1")


def test_echo_filter_forgets_after_window_and_limit() -> None:
    """Entries expire after the window and the oldest go beyond the size limit."""
    now = [0.0]
    echo = EchoFilter(window=5.0, limit=3, clock=lambda: now[0])
    echo.remember("old", b"")
    now[0] = 6.0
    assert not echo.consume("old", b"")
    for i in range(5):
        echo.remember(f"t{i}", b"")
    assert len(echo) == 3
    assert not echo.consume("t0", b"")
    assert echo.consume("t4", b"")
