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


@dataclass(frozen=True, slots=True)
class MessagePublished:
    """A client (or, with `client_id` None, a QoS -1 sender; with `will`, a lost client's will)
    published a message. For QoS 1/2 from a client (`needs_ack`), the driver must call
    `GatewayCore.ack_publish` once the message is safe: that sends PUBACK/PUBREC."""

    client_id: str | None
    topic: str
    payload: bytes
    qos: int
    retain: bool
    msg_id: int = 0
    will: bool = False

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
