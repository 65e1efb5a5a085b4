"""Encode and decode MQTT-SN v1.2 messages (§5).

Pure functions; the only error decode() raises is MalformedPacket.
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct

from gateway.mqttsn.constants import (
    FLAG_CLEAN_SESSION,
    FLAG_DUP,
    FLAG_QOS_MASK,
    FLAG_RETAIN,
    FLAG_TOPIC_ID_TYPE_MASK,
    FLAG_WILL,
    LONG_LENGTH_MARKER,
    MAX_LENGTH,
    MAX_SHORT_LENGTH,
    MsgType,
    QoS,
    ReturnCode,
    TopicIdType,
)
from gateway.mqttsn.packets import (
    Advertise,
    ConnAck,
    Connect,
    Disconnect,
    Encapsulated,
    GwInfo,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    RegAck,
    Register,
    SearchGw,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    WillMsg,
    WillMsgReq,
    WillMsgResp,
    WillMsgUpd,
    WillTopic,
    WillTopicReq,
    WillTopicResp,
    WillTopicUpd,
)

_U16 = Struct("!H")
_U16U16 = Struct("!HH")
_U16U16U8 = Struct("!HHB")
_U8U16 = Struct("!BH")
_U8U16U16 = Struct("!BHH")

_QOS_FROM_BITS = (QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE, QoS.MINUS_ONE)
_QOS_TO_BITS = {QoS.AT_MOST_ONCE: 0, QoS.AT_LEAST_ONCE: 1, QoS.EXACTLY_ONCE: 2, QoS.MINUS_ONE: 3}
_RETURN_CODES = {int(code): code for code in ReturnCode}
_TOPIC_ID_TYPES = (TopicIdType.NORMAL, TopicIdType.PREDEFINED, TopicIdType.SHORT_NAME)


class MalformedPacket(ValueError):
    """A datagram that is not a valid MQTT-SN v1.2 message; `reason` is a short counter label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# --- decoding -------------------------------------------------------------------------------


def split_frame(data: bytes) -> tuple[int, memoryview]:
    """Check the Length field (§5.2.1) and return (MsgType octet, message variable part)."""
    size = len(data)
    if size < 2:
        raise MalformedPacket("too_short", f"{size} octets")
    if data[0] == LONG_LENGTH_MARKER:
        if size < 4:
            raise MalformedPacket("too_short", "long length header incomplete")
        length = (data[1] << 8) | data[2]
        offset = 3
    else:
        length = data[0]
        offset = 1
    if length != size:
        raise MalformedPacket("length_mismatch", f"length field {length}, datagram {size}")
    return data[offset], memoryview(data)[offset + 1 :]


def decode(data: bytes) -> Packet:
    """Decode one datagram into a packet, or raise MalformedPacket."""
    if len(data) >= 2 and data[1] == MsgType.ENCAPSULATED and data[0] != LONG_LENGTH_MARKER:
        return _decode_encapsulated(data)
    msg_type, body = split_frame(data)
    decoder = _DECODERS.get(msg_type)
    if decoder is None:
        raise MalformedPacket("unknown_type", f"0x{msg_type:02x}")
    return decoder(body)


def _text(raw: memoryview | bytes, what: str) -> str:
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPacket("bad_utf8", what) from exc


def _exact(body: memoryview, size: int, name: str) -> None:
    if len(body) != size:
        raise MalformedPacket("bad_size", f"{name} needs {size} octets, got {len(body)}")


def _at_least(body: memoryview, size: int, name: str) -> None:
    if len(body) < size:
        raise MalformedPacket("bad_size", f"{name} needs at least {size} octets, got {len(body)}")


def _return_code(value: int) -> ReturnCode:
    code = _RETURN_CODES.get(value)
    if code is None:
        raise MalformedPacket("bad_return_code", f"0x{value:02x}")
    return code


def _topic_id_type(flags: int) -> TopicIdType:
    bits = flags & FLAG_TOPIC_ID_TYPE_MASK
    if bits == 0b11:
        raise MalformedPacket("reserved_topic_id_type")
    return _TOPIC_ID_TYPES[bits]


def _qos(flags: int) -> QoS:
    return _QOS_FROM_BITS[(flags & FLAG_QOS_MASK) >> 5]


def _advertise(body: memoryview) -> Advertise:
    _exact(body, 3, "ADVERTISE")
    gw_id, duration = _U8U16.unpack_from(body)
    return Advertise(gw_id, duration)


def _searchgw(body: memoryview) -> SearchGw:
    _exact(body, 1, "SEARCHGW")
    return SearchGw(body[0])


def _gwinfo(body: memoryview) -> GwInfo:
    _at_least(body, 1, "GWINFO")
    return GwInfo(body[0], bytes(body[1:]))


def _connect(body: memoryview) -> Connect:
    _at_least(body, 5, "CONNECT")
    flags, protocol_id, duration = body[0], body[1], _U16.unpack_from(body, 2)[0]
    return Connect(
        client_id=_text(body[4:], "ClientId"),
        duration=duration,
        will=bool(flags & FLAG_WILL),
        clean_session=bool(flags & FLAG_CLEAN_SESSION),
        protocol_id=protocol_id,
    )


def _connack(body: memoryview) -> ConnAck:
    _exact(body, 1, "CONNACK")
    return ConnAck(_return_code(body[0]))


def _empty(cls: Callable[[], Packet], name: str) -> Callable[[memoryview], Packet]:
    def decode_empty(body: memoryview) -> Packet:
        _exact(body, 0, name)
        return cls()

    return decode_empty


def _willtopic(body: memoryview) -> WillTopic:
    # §5.4.7: the empty WILLTOPIC (delete the will) has neither Flags nor WillTopic. A Flags octet
    # followed by an empty WillTopic names no topic either, so it is read as the empty form
    # (its QoS and Retain bits are meaningless without a topic).
    if len(body) <= 1:
        return WillTopic("")
    flags = body[0]
    return WillTopic(_text(body[1:], "WillTopic"), _qos(flags), bool(flags & FLAG_RETAIN))


def _willmsg(body: memoryview) -> WillMsg:
    return WillMsg(bytes(body))


def _register(body: memoryview) -> Register:
    _at_least(body, 4, "REGISTER")
    topic_id, msg_id = _U16U16.unpack_from(body)
    return Register(topic_id, msg_id, _text(body[4:], "TopicName"))


def _regack(body: memoryview) -> RegAck:
    _exact(body, 5, "REGACK")
    topic_id, msg_id, code = _U16U16U8.unpack_from(body)
    return RegAck(topic_id, msg_id, _return_code(code))


def _publish(body: memoryview) -> Publish:
    _at_least(body, 5, "PUBLISH")
    flags, topic_id, msg_id = _U8U16U16.unpack_from(body)
    return Publish(
        topic_id=topic_id,
        msg_id=msg_id,
        data=bytes(body[5:]),
        qos=_QOS_FROM_BITS[(flags & FLAG_QOS_MASK) >> 5],
        topic_id_type=_topic_id_type(flags),
        dup=bool(flags & FLAG_DUP),
        retain=bool(flags & FLAG_RETAIN),
    )


def _puback(body: memoryview) -> PubAck:
    _exact(body, 5, "PUBACK")
    topic_id, msg_id, code = _U16U16U8.unpack_from(body)
    return PubAck(topic_id, msg_id, _return_code(code))


def _msg_id_only(cls: Callable[[int], Packet], name: str) -> Callable[[memoryview], Packet]:
    def decode_msg_id(body: memoryview) -> Packet:
        _exact(body, 2, name)
        return cls(_U16.unpack_from(body)[0])

    return decode_msg_id


def _subscription_topic(flags: int, raw: memoryview, name: str) -> tuple[TopicIdType, str | int]:
    topic_id_type = _topic_id_type(flags)
    if topic_id_type is TopicIdType.PREDEFINED:
        _exact(raw, 2, f"{name} predefined TopicId")
        return topic_id_type, _U16.unpack_from(raw)[0]
    if topic_id_type is TopicIdType.SHORT_NAME:
        _exact(raw, 2, f"{name} short TopicName")
    elif not raw:
        raise MalformedPacket("bad_size", f"{name} has an empty TopicName")
    return topic_id_type, _text(raw, "TopicName")


def _subscribe(body: memoryview) -> Subscribe:
    _at_least(body, 4, "SUBSCRIBE")
    flags, msg_id = _U8U16.unpack_from(body)
    topic_id_type, topic = _subscription_topic(flags, body[3:], "SUBSCRIBE")
    return Subscribe(msg_id, topic, _qos(flags), topic_id_type, bool(flags & FLAG_DUP))


def _suback(body: memoryview) -> SubAck:
    _exact(body, 6, "SUBACK")
    flags = body[0]
    topic_id, msg_id, code = _U16U16U8.unpack_from(body, 1)
    return SubAck(topic_id, msg_id, _return_code(code), _qos(flags))


def _unsubscribe(body: memoryview) -> Unsubscribe:
    _at_least(body, 4, "UNSUBSCRIBE")
    flags, msg_id = _U8U16.unpack_from(body)
    topic_id_type, topic = _subscription_topic(flags, body[3:], "UNSUBSCRIBE")
    return Unsubscribe(msg_id, topic, topic_id_type)


def _pingreq(body: memoryview) -> PingReq:
    return PingReq(_text(body, "ClientId"))


def _disconnect(body: memoryview) -> Disconnect:
    if not body:
        return Disconnect()
    _exact(body, 2, "DISCONNECT")
    return Disconnect(_U16.unpack_from(body)[0])


def _willtopicupd(body: memoryview) -> WillTopicUpd:
    # §5.4.22: as for WILLTOPIC, Flags without a WillTopic is read as the empty WILLTOPICUPD.
    if len(body) <= 1:
        return WillTopicUpd("")
    flags = body[0]
    return WillTopicUpd(_text(body[1:], "WillTopic"), _qos(flags), bool(flags & FLAG_RETAIN))


def _return_code_only(
    cls: Callable[[ReturnCode], Packet], name: str
) -> Callable[[memoryview], Packet]:
    def decode_return_code(body: memoryview) -> Packet:
        _exact(body, 1, name)
        return cls(_return_code(body[0]))

    return decode_return_code


def _willmsgupd(body: memoryview) -> WillMsgUpd:
    return WillMsgUpd(bytes(body))


def _decode_encapsulated(data: bytes) -> Encapsulated:
    # §5.5: the encapsulation header has its own 1-octet Length; the inner message follows it.
    header_length = data[0]
    if header_length < 3 or header_length >= len(data):
        raise MalformedPacket("bad_encapsulation", f"header length {header_length}")
    ctrl = data[2]
    return Encapsulated(ctrl & 0x03, bytes(data[3:header_length]), bytes(data[header_length:]))


_DECODERS: dict[int, Callable[[memoryview], Packet]] = {
    MsgType.ADVERTISE: _advertise,
    MsgType.SEARCHGW: _searchgw,
    MsgType.GWINFO: _gwinfo,
    MsgType.CONNECT: _connect,
    MsgType.CONNACK: _connack,
    MsgType.WILLTOPICREQ: _empty(WillTopicReq, "WILLTOPICREQ"),
    MsgType.WILLTOPIC: _willtopic,
    MsgType.WILLMSGREQ: _empty(WillMsgReq, "WILLMSGREQ"),
    MsgType.WILLMSG: _willmsg,
    MsgType.REGISTER: _register,
    MsgType.REGACK: _regack,
    MsgType.PUBLISH: _publish,
    MsgType.PUBACK: _puback,
    MsgType.PUBCOMP: _msg_id_only(PubComp, "PUBCOMP"),
    MsgType.PUBREC: _msg_id_only(PubRec, "PUBREC"),
    MsgType.PUBREL: _msg_id_only(PubRel, "PUBREL"),
    MsgType.SUBSCRIBE: _subscribe,
    MsgType.SUBACK: _suback,
    MsgType.UNSUBSCRIBE: _unsubscribe,
    MsgType.UNSUBACK: _msg_id_only(UnsubAck, "UNSUBACK"),
    MsgType.PINGREQ: _pingreq,
    MsgType.PINGRESP: _empty(PingResp, "PINGRESP"),
    MsgType.DISCONNECT: _disconnect,
    MsgType.WILLTOPICUPD: _willtopicupd,
    MsgType.WILLTOPICRESP: _return_code_only(WillTopicResp, "WILLTOPICRESP"),
    MsgType.WILLMSGUPD: _willmsgupd,
    MsgType.WILLMSGRESP: _return_code_only(WillMsgResp, "WILLMSGRESP"),
}


# --- encoding -------------------------------------------------------------------------------


def frame(msg_type: int, body: bytes) -> bytes:
    """Prefix the Length field (1 octet up to 255, else 0x01 + 2 octets) and the MsgType."""
    size = len(body) + 2
    if size <= MAX_SHORT_LENGTH:
        return bytes((size, msg_type)) + body
    size += 2
    if size > MAX_LENGTH:
        raise ValueError(f"message of {size} octets exceeds the MQTT-SN maximum of {MAX_LENGTH}")
    return bytes((LONG_LENGTH_MARKER, size >> 8, size & 0xFF, msg_type)) + body


def _flags(
    *,
    dup: bool = False,
    qos: QoS = QoS.AT_MOST_ONCE,
    retain: bool = False,
    will: bool = False,
    clean_session: bool = False,
    topic_id_type: TopicIdType = TopicIdType.NORMAL,
) -> int:
    return (
        (FLAG_DUP if dup else 0)
        | (_QOS_TO_BITS[qos] << 5)
        | (FLAG_RETAIN if retain else 0)
        | (FLAG_WILL if will else 0)
        | (FLAG_CLEAN_SESSION if clean_session else 0)
        | int(topic_id_type)
    )


def _subscription_body(topic: str | int, topic_id_type: TopicIdType) -> bytes:
    if topic_id_type is TopicIdType.PREDEFINED:
        if not isinstance(topic, int):
            raise ValueError("a predefined topic is an int topic id")
        return _U16.pack(topic)
    if not isinstance(topic, str):
        raise ValueError("a normal or short topic is a str topic name")
    raw = topic.encode()
    if topic_id_type is TopicIdType.SHORT_NAME and len(raw) != 2:
        raise ValueError("a short topic name is exactly 2 octets")
    return raw


def encode_body(packet: Packet) -> bytes:
    """The variable part of a message (everything after MsgType)."""
    match packet:
        case Publish():
            flags = _flags(
                dup=packet.dup, qos=packet.qos, retain=packet.retain,
                topic_id_type=packet.topic_id_type,
            )
            return _U8U16U16.pack(flags, packet.topic_id, packet.msg_id) + packet.data
        case PubAck() | RegAck():
            return _U16U16U8.pack(packet.topic_id, packet.msg_id, packet.return_code)
        case PubRec() | PubRel() | PubComp() | UnsubAck():
            return _U16.pack(packet.msg_id)
        case Advertise():
            return _U8U16.pack(packet.gw_id, packet.duration)
        case SearchGw():
            return bytes((packet.radius,))
        case GwInfo():
            return bytes((packet.gw_id,)) + packet.gw_add
        case Connect():
            flags = _flags(will=packet.will, clean_session=packet.clean_session)
            head = bytes((flags, packet.protocol_id)) + _U16.pack(packet.duration)
            return head + packet.client_id.encode()
        case ConnAck() | WillTopicResp() | WillMsgResp():
            return bytes((packet.return_code,))
        case WillTopicReq() | WillMsgReq() | PingResp():
            return b""
        case WillTopic() | WillTopicUpd():
            if not packet.will_topic:
                return b""
            flags = _flags(qos=packet.qos, retain=packet.retain)
            return bytes((flags,)) + packet.will_topic.encode()
        case WillMsg() | WillMsgUpd():
            return packet.will_msg
        case Register():
            return _U16U16.pack(packet.topic_id, packet.msg_id) + packet.topic_name.encode()
        case Subscribe():
            flags = _flags(dup=packet.dup, qos=packet.qos, topic_id_type=packet.topic_id_type)
            topic = _subscription_body(packet.topic, packet.topic_id_type)
            return _U8U16.pack(flags, packet.msg_id) + topic
        case SubAck():
            return bytes((_flags(qos=packet.qos),)) + _U16U16U8.pack(
                packet.topic_id, packet.msg_id, packet.return_code
            )
        case Unsubscribe():
            flags = _flags(topic_id_type=packet.topic_id_type)
            topic = _subscription_body(packet.topic, packet.topic_id_type)
            return _U8U16.pack(flags, packet.msg_id) + topic
        case PingReq():
            return packet.client_id.encode()
        case Disconnect():
            return b"" if packet.duration is None else _U16.pack(packet.duration)
        case Encapsulated():
            raise ValueError("Encapsulated has no body of its own; use encode()")
    raise TypeError(f"not an MQTT-SN packet: {packet!r}")


def encode(packet: Packet) -> bytes:
    """Encode a packet into one datagram."""
    if isinstance(packet, Encapsulated):
        header_length = 3 + len(packet.wireless_node_id)
        if header_length > MAX_SHORT_LENGTH:
            raise ValueError("wireless node id too long")
        ctrl = packet.radius & 0x03
        header = bytes((header_length, MsgType.ENCAPSULATED, ctrl)) + packet.wireless_node_id
        return header + packet.message
    return frame(packet.msg_type, encode_body(packet))
