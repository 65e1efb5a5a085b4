"""Who is subscribed to what, and the retained messages new subscribers get (§6.9)."""

from __future__ import annotations

from gateway.topics import is_wildcard, topic_matches

MAX_RETAINED = 10_000


class SubscriptionIndex:
    """Client subscriptions, indexed for routing: exact names by dict, wildcard filters by scan."""

    __slots__ = ("_exact", "_wildcard")

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, int]] = {}
        self._wildcard: dict[str, dict[str, int]] = {}

    def add(self, client_id: str, topic_filter: str, qos: int) -> None:
        index = self._wildcard if is_wildcard(topic_filter) else self._exact
        index.setdefault(topic_filter, {})[client_id] = qos

    def remove(self, client_id: str, topic_filter: str) -> None:
        index = self._wildcard if is_wildcard(topic_filter) else self._exact
        subscribers = index.get(topic_filter)
        if subscribers is not None:
            subscribers.pop(client_id, None)
            if not subscribers:
                del index[topic_filter]

    def targets(self, topic: str) -> dict[str, int]:
        """Client id -> highest granted QoS among that client's filters matching `topic`."""
        exact = self._exact.get(topic)
        if not self._wildcard:
            return exact if exact is not None else {}
        found: dict[str, int] = dict(exact) if exact is not None else {}
        for topic_filter, subscribers in self._wildcard.items():
            if topic_matches(topic_filter, topic):
                for client_id, qos in subscribers.items():
                    if qos > found.get(client_id, -1):
                        found[client_id] = qos
        return found


class RetainedStore:
    """The last retained message per topic (bounded); an empty payload deletes (as in MQTT)."""

    __slots__ = ("_messages", "limit")

    def __init__(self, limit: int = MAX_RETAINED) -> None:
        self._messages: dict[str, tuple[bytes, int]] = {}
        self.limit = limit

    def holds(self, topic: str, payload: bytes) -> bool:
        stored = self._messages.get(topic)
        return stored is not None and stored[0] == payload

    def put(self, topic: str, payload: bytes, qos: int) -> bool:
        """Store (or delete); False when the store is full and the topic is new."""
        if not payload:
            self._messages.pop(topic, None)
            return True
        if topic not in self._messages and len(self._messages) >= self.limit:
            return False
        self._messages[topic] = (payload, qos)
        return True

    def matching(self, topic_filter: str) -> list[tuple[str, bytes, int]]:
        return [
            (topic, payload, qos)
            for topic, (payload, qos) in self._messages.items()
            if topic_matches(topic_filter, topic)
        ]
