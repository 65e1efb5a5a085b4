"""Events the sans-IO gateway core hands to its driver (`GatewayCore.next_event`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Address = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ClientConnected:
    client_id: str
    address: Address
    clean_session: bool


@dataclass(frozen=True, slots=True)
class ClientDisconnected:
    """The client left ACTIVE: `reason` is disconnect, asleep, lost_keepalive, lost_retries,
    lost_sleep, or replaced (another CONNECT with the same client id from elsewhere)."""

    client_id: str
    address: Address
    reason: str


@dataclass(slots=True, unsafe_hash=True, init=False)
class MessagePublished:
    """A client (or, with `client_id` None, a QoS -1 sender; with `will`, a lost client's will)
    published a message. For QoS 1/2 from a client (`needs_ack`), the driver must call
    `GatewayCore.ack_publish` once the message is safe: that sends PUBACK/PUBREC.

    One per published message: not frozen, with its own __init__ (cheaper, see
    `packets.Publish`); immutable by convention."""

    client_id: str | None
    topic: str
    payload: bytes
    qos: int
    retain: bool
    msg_id: int
    will: bool

    def __init__(  # noqa: PLR0917 - the signature the generated __init__ had
        self, client_id: str | None, topic: str, payload: bytes, qos: int, retain: bool,
        msg_id: int = 0, will: bool = False,
    ) -> None:
        self.client_id = client_id
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.msg_id = msg_id
        self.will = will

    @property
    def needs_ack(self) -> bool:
        return self.qos > 0 and self.client_id is not None and not self.will


@dataclass(frozen=True, slots=True)
class SubscriptionAdded:
    client_id: str
    topic_filter: str
    qos: int


@dataclass(frozen=True, slots=True)
class SubscriptionRemoved:
    client_id: str
    topic_filter: str


Event = (
    ClientConnected | ClientDisconnected | MessagePublished | SubscriptionAdded
    | SubscriptionRemoved
)
