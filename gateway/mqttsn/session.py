"""Per-client session state (§6): what the gateway remembers about one MQTT-SN client."""

from __future__ import annotations

import base64
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from gateway.mqttsn.events import Address
from gateway.mqttsn.topics import TopicRegistry


class ClientState(Enum):
    """§6.14 client states, plus CONNECTING for the will handshake of §6.3."""

    CONNECTING = "connecting"
    ACTIVE = "active"
    ASLEEP = "asleep"
    AWAKE = "awake"
    DISCONNECTED = "disconnected"
    LOST = "lost"


CONNECTED_STATES = frozenset({ClientState.ACTIVE, ClientState.AWAKE})
# States in which messages for the client are queued rather than discarded.
SESSION_STATES = frozenset(
    {ClientState.ACTIVE, ClientState.AWAKE, ClientState.ASLEEP, ClientState.CONNECTING}
)


@dataclass(slots=True)
class Will:
    topic: str
    message: bytes = b""
    qos: int = 0
    retain: bool = False


@dataclass(slots=True)
class OutboundMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(slots=True)
class InFlight:
    """A gateway-to-client message awaiting its acknowledgement (§6.13 retry timer)."""

    msg_id: int
    awaiting: str  # "regack", "puback", "pubrec" or "pubcomp"
    message: OutboundMessage | None  # None for a REGISTER
    topic_id: int
    topic_id_type: int
    deadline: float
    retries: int = 0


@dataclass(slots=True)
class ClientSession:
    client_id: str
    address: Address
    node_id: bytes | None = None
    state: ClientState = ClientState.CONNECTING
    clean_session: bool = True
    keepalive: int = 0
    sleep_duration: int = 0
    last_seen: float = 0.0
    will: Will | None = None
    pending_will: Will | None = None  # between WILLTOPIC and WILLMSG; a will only once complete
    registry: TopicRegistry = field(default_factory=TopicRegistry)
    subscriptions: dict[str, int] = field(default_factory=dict)
    pending_registration: dict[str, int] = field(default_factory=dict)  # topic -> REGISTER msg id
    rejected_topics: set[str] = field(default_factory=set)
    queue: deque[OutboundMessage] = field(default_factory=deque)
    inflight: dict[int, InFlight] = field(default_factory=dict)
    qos2_received: set[int] = field(default_factory=set)
    # Client QoS 1/2 PUBLISHes awaiting the driver's ack_publish: msg id -> (topic id, QoS).
    acks_pending: dict[int, tuple[int, int]] = field(default_factory=dict)
    next_msg_id: int = 1
    ping_after_flush: bool = False

    @property
    def key(self) -> Address:
        """What identifies this client's datagrams: its address (+ a forwarder's node id)."""
        return self.address if self.node_id is None else (self.address, self.node_id)

    def allocate_msg_id(self) -> int:
        msg_id = self.next_msg_id
        while msg_id in self.inflight:
            msg_id = msg_id % 0xFFFF + 1
        self.next_msg_id = msg_id % 0xFFFF + 1
        return msg_id

    def reset(self) -> None:
        """Forget everything a clean session must not keep (§6.3)."""
        self.will = self.pending_will = None
        self.registry.clear()
        self.subscriptions.clear()
        self.pending_registration.clear()
        self.rejected_topics.clear()
        self.queue.clear()
        self.inflight.clear()
        self.qos2_received.clear()
        self.acks_pending.clear()
        self.ping_after_flush = False

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe snapshot for the session store (timers are re-armed on restore)."""
        return {
            "client_id": self.client_id,
            "address": list(self.address),
            "node_id": _b64(self.node_id) if self.node_id is not None else None,
            "state": self.state.value,
            "clean_session": self.clean_session,
            "keepalive": self.keepalive,
            "sleep_duration": self.sleep_duration,
            "will": None if self.will is None else {
                "topic": self.will.topic, "message": _b64(self.will.message),
                "qos": self.will.qos, "retain": self.will.retain,
            },
            "topics": [[topic_id, name] for topic_id, name in self.registry],
            "subscriptions": self.subscriptions,
            "rejected_topics": sorted(self.rejected_topics),
            "pending_registration": self.pending_registration,
            # Kept with their msg ids and stage, so a restart finishes each exchange (DUP re-send,
            # or PUBREL after PUBREC) instead of starting it again.
            "inflight": [
                {
                    "msg_id": entry.msg_id, "awaiting": entry.awaiting,
                    "message": None if entry.message is None else _message_record(entry.message),
                    "topic_id": entry.topic_id, "topic_id_type": entry.topic_id_type,
                }
                for entry in self.inflight.values()
            ],
            "queue": [_message_record(message) for message in self.queue],
            "qos2_received": sorted(self.qos2_received),
            "next_msg_id": self.next_msg_id,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ClientSession:
        will = record.get("will")
        node_id = record.get("node_id")
        return cls(
            client_id=record["client_id"],
            address=tuple(record["address"]),
            node_id=None if node_id is None else _unb64(node_id),
            state=ClientState(record["state"]),
            clean_session=record["clean_session"],
            keepalive=record["keepalive"],
            sleep_duration=record["sleep_duration"],
            will=None if will is None else Will(
                will["topic"], _unb64(will["message"]), will["qos"], will["retain"]
            ),
            registry=TopicRegistry((int(i), str(n)) for i, n in record["topics"]),
            subscriptions={str(k): int(v) for k, v in record["subscriptions"].items()},
            rejected_topics=set(record["rejected_topics"]),
            pending_registration={
                str(k): int(v) for k, v in record["pending_registration"].items()
            },
            inflight={
                entry["msg_id"]: InFlight(
                    entry["msg_id"], entry["awaiting"],
                    None if entry["message"] is None else _message(entry["message"]),
                    entry["topic_id"], entry["topic_id_type"], 0.0,
                )
                for entry in record["inflight"]
            },
            queue=deque(_message(m) for m in record["queue"]),
            qos2_received=set(record["qos2_received"]),
            next_msg_id=record["next_msg_id"],
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def _message(record: dict[str, Any]) -> OutboundMessage:
    return OutboundMessage(
        record["topic"], _unb64(record["payload"]), record["qos"], record["retain"]
    )


def _message_record(message: OutboundMessage) -> dict[str, Any]:
    return {
        "topic": message.topic, "payload": _b64(message.payload),
        "qos": message.qos, "retain": message.retain,
    }
