"""One dataclass per MQTT-SN v1.2 message (§5.4), fields named as in the specification; all
frozen but PUBLISH (see there), which is immutable by convention.

Topic ids are always ints. For a short topic name (TopicIdType.SHORT_NAME) in PUBLISH, REGACK,
PUBACK and SUBACK the int is the two name octets read big-endian; SUBSCRIBE and UNSUBSCRIBE carry
either a topic name (str, normal or short) or a predefined topic id (int).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gateway.mqttsn.constants import MsgType, QoS, ReturnCode, TopicIdType


@dataclass(frozen=True, slots=True)
class Advertise:
    gw_id: int
    duration: int
    msg_type = MsgType.ADVERTISE


@dataclass(frozen=True, slots=True)
class SearchGw:
    radius: int
    msg_type = MsgType.SEARCHGW


@dataclass(frozen=True, slots=True)
class GwInfo:
    gw_id: int
    gw_add: bytes = b""
    msg_type = MsgType.GWINFO


@dataclass(frozen=True, slots=True)
class Connect:
    client_id: str
    duration: int
    will: bool = False
    clean_session: bool = True
    protocol_id: int = 0x01
    msg_type = MsgType.CONNECT


@dataclass(frozen=True, slots=True)
class ConnAck:
    return_code: ReturnCode
    msg_type = MsgType.CONNACK


@dataclass(frozen=True, slots=True)
class WillTopicReq:
    msg_type = MsgType.WILLTOPICREQ


@dataclass(frozen=True, slots=True)
class WillTopic:
    """An empty `will_topic` is the spec's empty WILLTOPIC (no Flags octet): delete the will."""

    will_topic: str
    qos: QoS = QoS.AT_MOST_ONCE
    retain: bool = False
    msg_type = MsgType.WILLTOPIC


@dataclass(frozen=True, slots=True)
class WillMsgReq:
    msg_type = MsgType.WILLMSGREQ


@dataclass(frozen=True, slots=True)
class WillMsg:
    will_msg: bytes
    msg_type = MsgType.WILLMSG


@dataclass(frozen=True, slots=True)
class Register:
    topic_id: int
    msg_id: int
    topic_name: str
    msg_type = MsgType.REGISTER


@dataclass(frozen=True, slots=True)
class RegAck:
    topic_id: int
    msg_id: int
    return_code: ReturnCode
    msg_type = MsgType.REGACK


# Not frozen, with its own __init__: every datagram makes one, and a frozen dataclass's
# generated __init__ (one object.__setattr__ per field) costs ~1 us where a compiled one
# costs ~40 ns. Treat it as immutable all the same (hashable, like the others).
@dataclass(slots=True, unsafe_hash=True, init=False)
class Publish:
    topic_id: int
    msg_id: int
    data: bytes
    qos: QoS
    topic_id_type: TopicIdType
    dup: bool
    retain: bool
    # ClassVar: compiled by mypyc, a plain class attribute would become a dataclass field (and
    # an argument `dataclasses.replace` passes to __init__).
    msg_type: ClassVar[MsgType] = MsgType.PUBLISH

    def __init__(  # noqa: PLR0917 - the signature the generated __init__ had
        self,
        topic_id: int,
        msg_id: int,
        data: bytes,
        qos: QoS = QoS.AT_MOST_ONCE,
        topic_id_type: TopicIdType = TopicIdType.NORMAL,
        dup: bool = False,
        retain: bool = False,
    ) -> None:
        self.topic_id = topic_id
        self.msg_id = msg_id
        self.data = data
        self.qos = qos
        self.topic_id_type = topic_id_type
        self.dup = dup
        self.retain = retain


@dataclass(frozen=True, slots=True)
class PubAck:
    topic_id: int
    msg_id: int
    return_code: ReturnCode
    msg_type = MsgType.PUBACK


@dataclass(frozen=True, slots=True)
class PubRec:
    msg_id: int
    msg_type = MsgType.PUBREC


@dataclass(frozen=True, slots=True)
class PubRel:
    msg_id: int
    msg_type = MsgType.PUBREL


@dataclass(frozen=True, slots=True)
class PubComp:
    msg_id: int
    msg_type = MsgType.PUBCOMP


@dataclass(frozen=True, slots=True)
class Subscribe:
    msg_id: int
    topic: str | int
    qos: QoS = QoS.AT_MOST_ONCE
    topic_id_type: TopicIdType = TopicIdType.NORMAL
    dup: bool = False
    msg_type = MsgType.SUBSCRIBE


@dataclass(frozen=True, slots=True)
class SubAck:
    topic_id: int
    msg_id: int
    return_code: ReturnCode
    qos: QoS = QoS.AT_MOST_ONCE
    msg_type = MsgType.SUBACK


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    msg_id: int
    topic: str | int
    topic_id_type: TopicIdType = TopicIdType.NORMAL
    msg_type = MsgType.UNSUBSCRIBE


@dataclass(frozen=True, slots=True)
class UnsubAck:
    msg_id: int
    msg_type = MsgType.UNSUBACK


@dataclass(frozen=True, slots=True)
class PingReq:
    client_id: str = ""
    msg_type = MsgType.PINGREQ


@dataclass(frozen=True, slots=True)
class PingResp:
    msg_type = MsgType.PINGRESP


@dataclass(frozen=True, slots=True)
class Disconnect:
    duration: int | None = None
    msg_type = MsgType.DISCONNECT


@dataclass(frozen=True, slots=True)
class WillTopicUpd:
    """An empty `will_topic` deletes the will (§5.4.22)."""

    will_topic: str
    qos: QoS = QoS.AT_MOST_ONCE
    retain: bool = False
    msg_type = MsgType.WILLTOPICUPD


@dataclass(frozen=True, slots=True)
class WillTopicResp:
    return_code: ReturnCode
    msg_type = MsgType.WILLTOPICRESP


@dataclass(frozen=True, slots=True)
class WillMsgUpd:
    will_msg: bytes
    msg_type = MsgType.WILLMSGUPD


@dataclass(frozen=True, slots=True)
class WillMsgResp:
    return_code: ReturnCode
    msg_type = MsgType.WILLMSGRESP


@dataclass(frozen=True, slots=True)
class Encapsulated:
    """§5.5: a message relayed by a forwarder; `message` is the inner datagram, still encoded."""

    radius: int
    wireless_node_id: bytes
    message: bytes
    msg_type = MsgType.ENCAPSULATED


Packet = (
    Advertise | SearchGw | GwInfo | Connect | ConnAck | WillTopicReq | WillTopic | WillMsgReq
    | WillMsg | Register | RegAck | Publish | PubAck | PubRec | PubRel | PubComp | Subscribe
    | SubAck | Unsubscribe | UnsubAck | PingReq | PingResp | Disconnect | WillTopicUpd
    | WillTopicResp | WillMsgUpd | WillMsgResp | Encapsulated
)
