"""MQTT-SN topic ids: predefined, per-client registered and short names (§3.1, §6.5-6.9).

Name and filter rules are MQTT's, in `gateway.topics`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

MAX_TOPIC_ID = 0xFFFF


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
