"""MQTT topic rules shared by every front-end and the bridge: validation, matching, mountpoint.

Pure functions (no I/O): the sans-IO MQTT-SN core uses them too.
"""

from __future__ import annotations

_MAX_TOPIC_BYTES = 65535


def add_mountpoint(mountpoint: str, topic: str) -> str:
    """The broker topic (or filter) for a local one; an empty mountpoint leaves it unchanged."""
    return mountpoint + topic


def strip_mountpoint(mountpoint: str, topic: str) -> str | None:
    """The local topic for a broker topic, or None when it lies outside the mountpoint."""
    if not topic.startswith(mountpoint):
        return None
    return topic[len(mountpoint) :]


def _check_common(text: str, what: str) -> None:
    if not text:
        raise ValueError(f"empty {what}")
    if "\x00" in text:
        raise ValueError(f"{what} {text!r} contains NUL")
    if len(text.encode("utf-8")) > _MAX_TOPIC_BYTES:
        raise ValueError(f"{what} is longer than {_MAX_TOPIC_BYTES} bytes")


def validate_mountpoint(mountpoint: str) -> None:
    """Raise ValueError unless ``mountpoint`` can prefix topic names (no wildcards, no NUL)."""
    if "+" in mountpoint or "#" in mountpoint or "\x00" in mountpoint:
        raise ValueError(f"mountpoint {mountpoint!r} must not contain '+', '#' or NUL")


def is_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


def is_valid_topic_name(topic: str) -> bool:
    """A name a message can be published to (MQTT 3.1.1/5 §4.7)."""
    try:
        validate_topic(topic)
    except ValueError:
        return False
    return True


def is_valid_filter(topic_filter: str) -> bool:
    """A filter a client can subscribe to (MQTT 3.1.1/5 §4.7)."""
    try:
        validate_filter(topic_filter)
    except ValueError:
        return False
    return True


def validate_topic(topic: str) -> None:
    """Raise ValueError unless ``topic`` is a valid MQTT topic name (used for PUBLISH)."""
    _check_common(topic, "topic")
    if "+" in topic or "#" in topic:
        raise ValueError(f"topic {topic!r} must not contain wildcards")


def validate_filter(topic_filter: str) -> None:
    """Raise ValueError unless ``topic_filter`` is a valid MQTT topic filter (for SUBSCRIBE)."""
    _check_common(topic_filter, "topic filter")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"'#' must be the whole last level in {topic_filter!r}")
        if "+" in level and level != "+":
            raise ValueError(f"'+' must be a whole level in {topic_filter!r}")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a valid topic name matches a valid filter (MQTT 3.1.1/5 §4.7 rules).

    Filters starting with a wildcard do not match topics starting with ``$``.
    """
    if topic_filter == topic:
        return True
    if not is_wildcard(topic_filter):
        return False
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)
