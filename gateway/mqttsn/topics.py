"""Topic names, ids and filters (§3.1, §6.7-6.9 of MQTT-SN v1.2; wildcards as in MQTT 3.1.1)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

MAX_TOPIC_ID = 0xFFFF


def is_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


def is_valid_topic_name(topic: str) -> bool:
    """A name a message can be published to: non-empty, no wildcards, no NUL."""
    return bool(topic) and not is_wildcard(topic) and "\0" not in topic


def is_valid_filter(topic_filter: str) -> bool:
    """MQTT filter rules: '#' only last and alone in its level, '+' alone in its level."""
    if not topic_filter or "\0" in topic_filter:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` matches the MQTT filter (topics starting with '$' never match wildcards)."""
    if topic_filter == topic:
        return True
    if not is_wildcard(topic_filter):
        return False
    if topic.startswith("$"):
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


def short_name_to_id(name: str) -> int:
    """The 2-octet TopicId field that carries a short topic name."""
    raw = name.encode()
    if len(raw) != 2:
        raise ValueError(f"a short topic name is exactly 2 octets, got {name!r}")
    return (raw[0] << 8) | raw[1]


def short_id_to_name(topic_id: int) -> str | None:
    """The short topic name in a TopicId field, or None if it is not valid UTF-8."""
    try:
        return bytes((topic_id >> 8, topic_id & 0xFF)).decode()
    except UnicodeDecodeError:
        return None


class PredefinedTopics:
    """Gateway-wide predefined topic ids from configuration (§3.1.2)."""

    def __init__(self, topics: Mapping[int, str]) -> None:
        self._by_id = dict(topics)
        self._by_name = {name: topic_id for topic_id, name in self._by_id.items()}

    def name(self, topic_id: int) -> str | None:
        return self._by_id.get(topic_id)

    def topic_id(self, name: str) -> int | None:
        return self._by_name.get(name)


class TopicRegistry:
    """One client's normal topic ids (§6.5): assigned by the gateway, 1..65535."""

    __slots__ = ("_by_id", "_by_name", "_next_id")

    def __init__(self, entries: Iterable[tuple[int, str]] = ()) -> None:
        self._by_id: dict[int, str] = {}
        self._by_name: dict[str, int] = {}
        self._next_id = 1
        for topic_id, name in entries:
            self._by_id[topic_id] = name
            self._by_name[name] = topic_id
            self._next_id = max(self._next_id, topic_id % MAX_TOPIC_ID + 1)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return iter(self._by_id.items())

    def name(self, topic_id: int) -> str | None:
        return self._by_id.get(topic_id)

    def topic_id(self, name: str) -> int | None:
        return self._by_name.get(name)

    def register(self, name: str) -> int | None:
        """The id of `name`, assigning a new one if needed; None when all ids are taken."""
        existing = self._by_name.get(name)
        if existing is not None:
            return existing
        if len(self._by_id) >= MAX_TOPIC_ID:
            return None
        topic_id = self._next_id
        while topic_id in self._by_id:
            topic_id = topic_id % MAX_TOPIC_ID + 1
        self._next_id = topic_id % MAX_TOPIC_ID + 1
        self._by_id[topic_id] = name
        self._by_name[name] = topic_id
        return topic_id

    def remove(self, name: str) -> None:
        topic_id = self._by_name.pop(name, None)
        if topic_id is not None:
            del self._by_id[topic_id]

    def clear(self) -> None:
        self._by_id.clear()
        self._by_name.clear()
        self._next_id = 1
