"""Hand-written MQTT-SN v1.2 byte vectors, built octet by octet from the field tables of §5.

Every hex string is written out by hand from the specification's layout: Length (1 octet, or
0x01 followed by a 2-octet big-endian length, §5.2.1), MsgType (§5.2.2), then the message's
variable part (§5.4). Flags octet (§5.3.4): DUP bit 7, QoS bits 6-5 (0b11 is QoS -1), Retain
bit 4, Will bit 3, CleanSession bit 2, TopicIdType bits 1-0. Long payloads are written as a
hand-written header followed by one repeated octet (see `_times`).

* `VECTORS`: canonical datagrams; decode(bytes) == packet and encode(packet) == bytes.
* `NON_CANONICAL`: valid datagrams the encoder never produces (long Length form for a short
  message, flag bits a message does not use, reserved Ctrl bits); they decode to `packet`, and
  encode(packet) gives `canonical`.
* `MALFORMED`: datagrams decode() must reject with MalformedPacket whose `.reason` is `reason`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.mqttsn.constants import QoS, ReturnCode, TopicIdType
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

Q0, Q1, Q2, QM1 = QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE, QoS.MINUS_ONE
NORMAL, PREDEF, SHORT = TopicIdType.NORMAL, TopicIdType.PREDEFINED, TopicIdType.SHORT_NAME
OK, CONG, BAD_TID, NOT_SUP = (
    ReturnCode.ACCEPTED,
    ReturnCode.CONGESTION,
    ReturnCode.INVALID_TOPIC_ID,
    ReturnCode.NOT_SUPPORTED,
)


def _times(octet: str, count: int) -> str:
    """`count` copies of one hex octet, space separated (for long Data fields)."""
    return " ".join([octet] * count)


@dataclass(frozen=True)
class Vector:
    """A canonical datagram and the packet it encodes."""

    name: str
    section: str
    hex: str
    packet: Packet

    @property
    def data(self) -> bytes:
        return bytes.fromhex(self.hex)


@dataclass(frozen=True)
class NonCanonical:
    """A valid datagram that decodes to `packet`, whose canonical encoding is `canonical`."""

    name: str
    section: str
    hex: str
    packet: Packet
    canonical: str

    @property
    def data(self) -> bytes:
        return bytes.fromhex(self.hex)

    @property
    def canonical_data(self) -> bytes:
        return bytes.fromhex(self.canonical)


@dataclass(frozen=True)
class Malformed:
    """A datagram decode() must reject with MalformedPacket(reason)."""

    name: str
    section: str
    hex: str
    reason: str

    @property
    def data(self) -> bytes:
        return bytes.fromhex(self.hex)


# 300-octet, 248-octet (longest short-form PUBLISH) and 249-octet (shortest long-form) payloads.
LONG_PUBLISH_HEX = "01 01 35 0C 20 00 11 00 2A " + _times("5A", 300)  # Length 0x0135 = 309
LONG_PUBLISH = Publish(0x0011, 0x002A, b"Z" * 300, Q1)

VECTORS: list[Vector] = [
    # §5.4.1 ADVERTISE: Length | MsgType | GwId | Duration(2)
    Vector("advertise", "§5.4.1 ADVERTISE", "05 00 05 03 84", Advertise(5, 900)),
    Vector("advertise_max", "§5.4.1 ADVERTISE", "05 00 FF FF FF", Advertise(255, 65535)),
    # §5.4.2 SEARCHGW: Length | MsgType | Radius
    Vector("searchgw", "§5.4.2 SEARCHGW", "03 01 01", SearchGw(1)),
    Vector("searchgw_radius0", "§5.4.2 SEARCHGW", "03 01 00", SearchGw(0)),
    # §5.4.3 GWINFO: Length | MsgType | GwId | GwAdd (only when sent by a client)
    Vector("gwinfo_from_gw", "§5.4.3 GWINFO", "03 02 07", GwInfo(7)),
    Vector(
        "gwinfo_with_gwadd",
        "§5.4.3 GWINFO",
        "07 02 07 C0 A8 01 0A",
        GwInfo(7, bytes([192, 168, 1, 10])),
    ),
    # §5.4.4 CONNECT: Length | MsgType | Flags | ProtocolId | Duration(2) | ClientId
    Vector(
        "connect_clean",
        "§5.4.4 CONNECT",
        "0D 04 04 01 00 3C 73 65 6E 73 6F 72 31",
        Connect("sensor1", 60, will=False, clean_session=True),
    ),
    Vector(
        "connect_will_persistent",
        "§5.4.4 CONNECT",
        "07 04 08 01 01 2C 63",
        Connect("c", 300, will=True, clean_session=False),
    ),
    Vector(
        "connect_will_clean_23_char_id",
        "§5.4.4 CONNECT",
        "1D 04 0C 01 00 00 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66 67 68 69 6A 6B 6C 6D",
        Connect("0123456789abcdefghijklm", 0, will=True, clean_session=True),
    ),
    Vector("connect_utf8_id", "§5.4.4 CONNECT", "08 04 04 01 00 0A C3 A9", Connect("é", 10)),
    # §5.4.5 CONNACK: Length | MsgType | ReturnCode
    Vector("connack_accepted", "§5.4.5 CONNACK", "03 05 00", ConnAck(OK)),
    Vector("connack_congestion", "§5.4.5 CONNACK", "03 05 01", ConnAck(CONG)),
    Vector("connack_invalid_topic_id", "§5.4.5 CONNACK", "03 05 02", ConnAck(BAD_TID)),
    Vector("connack_not_supported", "§5.4.5 CONNACK", "03 05 03", ConnAck(NOT_SUP)),
    # §5.4.6 WILLTOPICREQ: Length | MsgType
    Vector("willtopicreq", "§5.4.6 WILLTOPICREQ", "02 06", WillTopicReq()),
    # §5.4.7 WILLTOPIC: Length | MsgType | Flags | WillTopic; empty form is exactly 2 octets
    Vector(
        "willtopic_qos1_retain",
        "§5.4.7 WILLTOPIC",
        "0B 07 30 64 65 76 2F 67 6F 6E 65",
        WillTopic("dev/gone", Q1, retain=True),
    ),
    Vector("willtopic_qos2", "§5.4.7 WILLTOPIC", "04 07 40 77", WillTopic("w", Q2)),
    Vector("willtopic_qos0", "§5.4.7 WILLTOPIC", "04 07 00 77", WillTopic("w", Q0)),
    Vector("willtopic_empty", "§5.4.7 WILLTOPIC (empty)", "02 07", WillTopic("")),
    # §5.4.8 WILLMSGREQ: Length | MsgType
    Vector("willmsgreq", "§5.4.8 WILLMSGREQ", "02 08", WillMsgReq()),
    # §5.4.9 WILLMSG: Length | MsgType | WillMsg
    Vector("willmsg", "§5.4.9 WILLMSG", "06 09 62 79 65 21", WillMsg(b"bye!")),
    Vector("willmsg_empty", "§5.4.9 WILLMSG", "02 09", WillMsg(b"")),
    # §5.4.10 REGISTER: Length | MsgType | TopicId(2) | MsgId(2) | TopicName
    Vector(
        "register_from_client",
        "§5.4.10 REGISTER",
        "0C 0A 00 00 00 01 74 2F 74 65 6D 70",
        Register(0, 1, "t/temp"),
    ),
    Vector(
        "register_from_gw", "§5.4.10 REGISTER", "07 0A 00 11 01 02 61", Register(0x11, 0x0102, "a")
    ),
    # §5.4.11 REGACK: Length | MsgType | TopicId(2) | MsgId(2) | ReturnCode
    Vector("regack_accepted", "§5.4.11 REGACK", "07 0B 00 11 00 01 00", RegAck(0x11, 1, OK)),
    Vector("regack_congestion", "§5.4.11 REGACK", "07 0B 00 00 00 03 01", RegAck(0, 3, CONG)),
    Vector("regack_not_supported", "§5.4.11 REGACK", "07 0B 00 00 00 02 03", RegAck(0, 2, NOT_SUP)),
    # §5.4.12 PUBLISH: Length | MsgType | Flags | TopicId(2) | MsgId(2) | Data
    Vector(
        "publish_qos0_normal",
        "§5.4.12 PUBLISH",
        "0B 0C 00 00 11 00 00 32 31 2E 35",
        Publish(0x11, 0, b"21.5"),
    ),
    Vector(
        "publish_qos1_predefined",
        "§5.4.12 PUBLISH",
        "09 0C 21 00 05 12 34 01 02",
        Publish(5, 0x1234, b"\x01\x02", Q1, PREDEF),
    ),
    Vector(
        "publish_qos2_short",
        "§5.4.12 PUBLISH",
        "08 0C 42 61 62 00 01 FF",
        Publish(0x6162, 1, b"\xff", Q2, SHORT),
    ),
    Vector(
        "publish_qosm1_predefined",
        "§5.4.12 PUBLISH",
        "09 0C 61 00 01 00 00 6F 6E",
        Publish(1, 0, b"on", QM1, PREDEF),
    ),
    Vector(
        "publish_qosm1_short",
        "§5.4.12 PUBLISH",
        "08 0C 62 74 31 00 00 31",
        Publish(0x7431, 0, b"1", QM1, SHORT),
    ),
    Vector(
        "publish_dup_retain_qos1_empty_data",
        "§5.4.12 PUBLISH",
        "07 0C B0 00 42 00 07",
        Publish(0x42, 7, b"", Q1, NORMAL, dup=True, retain=True),
    ),
    Vector(
        "publish_dup_qos2_predefined",
        "§5.4.12 PUBLISH",
        "08 0C C1 00 09 FF FF 00",
        Publish(9, 0xFFFF, b"\x00", Q2, PREDEF, dup=True),
    ),
    Vector(
        "publish_retain_qos0",
        "§5.4.12 PUBLISH",
        "08 0C 10 00 11 00 00 78",
        Publish(0x11, 0, b"x", retain=True),
    ),
    Vector(
        "publish_255_octets_short_form",
        "§5.2.1 Length + §5.4.12 PUBLISH",
        "FF 0C 00 00 11 00 00 " + _times("A5", 248),
        Publish(0x11, 0, b"\xa5" * 248),
    ),
    Vector(
        "publish_258_octets_long_form",
        "§5.2.1 Length + §5.4.12 PUBLISH",
        "01 01 02 0C 00 00 11 00 00 " + _times("A5", 249),
        Publish(0x11, 0, b"\xa5" * 249),
    ),
    Vector(
        "publish_309_octets_long_form",
        "§5.2.1 Length + §5.4.12 PUBLISH",
        LONG_PUBLISH_HEX,
        LONG_PUBLISH,
    ),
    Vector(
        "publish_65535_octets_long_form",
        "§5.2.1 Length + §5.4.12 PUBLISH",
        "01 FF FF 0C 00 00 11 00 00 " + _times("00", 65535 - 9),
        Publish(0x11, 0, bytes(65535 - 9)),
    ),
    # §5.4.13 PUBACK: Length | MsgType | TopicId(2) | MsgId(2) | ReturnCode
    Vector("puback_accepted", "§5.4.13 PUBACK", "07 0D 00 11 12 34 00", PubAck(0x11, 0x1234, OK)),
    Vector(
        "puback_invalid_topic_id",
        "§5.4.13 PUBACK",
        "07 0D 00 11 12 35 02",
        PubAck(0x11, 0x1235, BAD_TID),
    ),
    # §5.4.14 PUBREC, PUBREL, PUBCOMP: Length | MsgType | MsgId(2)
    Vector("pubrec", "§5.4.14 PUBREC", "04 0F 12 34", PubRec(0x1234)),
    Vector("pubrel", "§5.4.14 PUBREL", "04 10 12 34", PubRel(0x1234)),
    Vector("pubcomp", "§5.4.14 PUBCOMP", "04 0E 12 34", PubComp(0x1234)),
    # §5.4.15 SUBSCRIBE: Length | MsgType | Flags | MsgId(2) | TopicName or TopicId
    Vector(
        "subscribe_topic_name_qos1",
        "§5.4.15 SUBSCRIBE",
        "08 12 20 00 02 73 2F 23",
        Subscribe(2, "s/#", Q1),
    ),
    Vector(
        "subscribe_wildcard_qos0",
        "§5.4.15 SUBSCRIBE",
        "0B 12 00 00 03 2B 2F 74 65 6D 70",
        Subscribe(3, "+/temp"),
    ),
    Vector(
        "subscribe_predefined_dup_qos2",
        "§5.4.15 SUBSCRIBE",
        "07 12 C1 00 04 00 09",
        Subscribe(4, 9, Q2, PREDEF, dup=True),
    ),
    Vector(
        "subscribe_short_name",
        "§5.4.15 SUBSCRIBE",
        "07 12 02 00 05 78 79",
        Subscribe(5, "xy", Q0, SHORT),
    ),
    # §5.4.16 SUBACK: Length | MsgType | Flags | TopicId(2) | MsgId(2) | ReturnCode
    Vector("suback_qos1", "§5.4.16 SUBACK", "08 13 20 00 11 00 02 00", SubAck(0x11, 2, OK, Q1)),
    Vector(
        "suback_wildcard_qos2", "§5.4.16 SUBACK", "08 13 40 00 00 00 03 00", SubAck(0, 3, OK, Q2)
    ),
    Vector("suback_rejected", "§5.4.16 SUBACK", "08 13 00 00 00 00 05 03", SubAck(0, 5, NOT_SUP)),
    # §5.4.17 UNSUBSCRIBE: Length | MsgType | Flags | MsgId(2) | TopicName or TopicId
    Vector(
        "unsubscribe_topic_name",
        "§5.4.17 UNSUBSCRIBE",
        "08 14 00 00 06 73 2F 23",
        Unsubscribe(6, "s/#"),
    ),
    Vector(
        "unsubscribe_predefined",
        "§5.4.17 UNSUBSCRIBE",
        "07 14 01 00 07 00 09",
        Unsubscribe(7, 9, PREDEF),
    ),
    Vector(
        "unsubscribe_short_name",
        "§5.4.17 UNSUBSCRIBE",
        "07 14 02 00 08 78 79",
        Unsubscribe(8, "xy", SHORT),
    ),
    # §5.4.18 UNSUBACK: Length | MsgType | MsgId(2)
    Vector("unsuback", "§5.4.18 UNSUBACK", "04 15 00 06", UnsubAck(6)),
    # §5.4.19 PINGREQ: Length | MsgType | ClientId (optional)
    Vector("pingreq", "§5.4.19 PINGREQ", "02 16", PingReq()),
    Vector(
        "pingreq_client_id",
        "§5.4.19 PINGREQ",
        "09 16 73 65 6E 73 6F 72 31",
        PingReq("sensor1"),
    ),
    # §5.4.20 PINGRESP: Length | MsgType
    Vector("pingresp", "§5.4.20 PINGRESP", "02 17", PingResp()),
    # §5.4.21 DISCONNECT: Length | MsgType | Duration(2) (optional)
    Vector("disconnect", "§5.4.21 DISCONNECT", "02 18", Disconnect()),
    Vector("disconnect_sleep", "§5.4.21 DISCONNECT", "04 18 0E 10", Disconnect(3600)),
    Vector("disconnect_duration0", "§5.4.21 DISCONNECT", "04 18 00 00", Disconnect(0)),
    # §5.4.22 WILLTOPICUPD: Length | MsgType | Flags | WillTopic; empty form is exactly 2 octets
    Vector("willtopicupd_qos2", "§5.4.22 WILLTOPICUPD", "04 1A 40 78", WillTopicUpd("x", Q2)),
    Vector(
        "willtopicupd_qos1_retain",
        "§5.4.22 WILLTOPICUPD",
        "08 1A 30 61 2F 62 2F 63",
        WillTopicUpd("a/b/c", Q1, retain=True),
    ),
    Vector("willtopicupd_empty", "§5.4.22 WILLTOPICUPD (empty)", "02 1A", WillTopicUpd("")),
    # §5.4.23 WILLMSGUPD: Length | MsgType | WillMsg
    Vector("willmsgupd", "§5.4.23 WILLMSGUPD", "05 1C 6F 66 66", WillMsgUpd(b"off")),
    # §5.4.24 WILLTOPICRESP: Length | MsgType | ReturnCode
    Vector("willtopicresp", "§5.4.24 WILLTOPICRESP", "03 1B 00", WillTopicResp(OK)),
    Vector("willtopicresp_congestion", "§5.4.24 WILLTOPICRESP", "03 1B 01", WillTopicResp(CONG)),
    # §5.4.25 WILLMSGRESP: Length | MsgType | ReturnCode
    Vector("willmsgresp", "§5.4.25 WILLMSGRESP", "03 1D 00", WillMsgResp(OK)),
    Vector("willmsgresp_not_supported", "§5.4.25 WILLMSGRESP", "03 1D 03", WillMsgResp(NOT_SUP)),
    # §5.5 Encapsulated: Length (of the header) | 0xFE | Ctrl | Wireless Node Id | MQTT-SN message
    Vector(
        "encapsulated_pingreq",
        "§5.5 Encapsulated",
        "05 FE 01 12 34 02 16",
        Encapsulated(1, b"\x12\x34", b"\x02\x16"),
    ),
    Vector(
        "encapsulated_zigbee64_connect",
        "§5.5 Encapsulated",
        "0B FE 00 00 13 A2 00 40 8B 2C 7E 07 04 04 01 00 3C 63",
        Encapsulated(0, bytes.fromhex("0013A200408B2C7E"), bytes.fromhex("07040401003C63")),
    ),
    Vector(
        "encapsulated_empty_node_id_radius3",
        "§5.5 Encapsulated",
        "03 FE 03 03 05 00",
        Encapsulated(3, b"", b"\x03\x05\x00"),
    ),
    Vector(
        "encapsulated_long_inner_publish",
        "§5.5 Encapsulated + §5.2.1 Length",
        "05 FE 02 AB CD " + LONG_PUBLISH_HEX,
        Encapsulated(2, b"\xab\xcd", bytes.fromhex(LONG_PUBLISH_HEX)),
    ),
]


NON_CANONICAL: list[NonCanonical] = [
    NonCanonical(
        "long_length_disconnect",
        "§5.2.1 Length (3-octet form for a 4-octet message)",
        "01 00 04 18",
        Disconnect(),
        "02 18",
    ),
    NonCanonical(
        "long_length_pubrec",
        "§5.2.1 Length (3-octet form for a 6-octet message)",
        "01 00 06 0F 12 34",
        PubRec(0x1234),
        "04 0F 12 34",
    ),
    NonCanonical(
        "long_length_publish_257",
        "§5.2.1 Length (3-octet form, 257 octets; 255 in 1-octet form)",
        "01 01 01 0C 00 00 11 00 00 " + _times("A5", 248),
        Publish(0x11, 0, b"\xa5" * 248),
        "FF 0C 00 00 11 00 00 " + _times("A5", 248),
    ),
    NonCanonical(
        "publish_will_clean_bits_ignored",
        "§5.4.12 PUBLISH (Will, CleanSession not used)",
        "07 0C 0C 00 11 00 00",
        Publish(0x11, 0, b""),
        "07 0C 00 00 11 00 00",
    ),
    NonCanonical(
        "connect_unused_flag_bits_ignored",
        "§5.4.4 CONNECT (DUP, QoS, Retain, TopicIdType not used)",
        "07 04 F7 01 00 3C 63",
        Connect("c", 60, will=False, clean_session=True),
        "07 04 04 01 00 3C 63",
    ),
    NonCanonical(
        "subscribe_unused_flag_bits_ignored",
        "§5.4.15 SUBSCRIBE (Retain, Will, CleanSession not used)",
        "08 12 3C 00 02 73 2F 23",
        Subscribe(2, "s/#", Q1),
        "08 12 20 00 02 73 2F 23",
    ),
    NonCanonical(
        "suback_unused_flag_bits_ignored",
        "§5.4.16 SUBACK (only QoS used)",
        "08 13 B0 00 11 00 02 00",
        SubAck(0x11, 2, OK, Q1),
        "08 13 20 00 11 00 02 00",
    ),
    NonCanonical(
        "unsubscribe_unused_flag_bits_ignored",
        "§5.4.17 UNSUBSCRIBE (only TopicIdType used)",
        "07 14 E1 00 07 00 09",
        Unsubscribe(7, 9, PREDEF),
        "07 14 01 00 07 00 09",
    ),
    NonCanonical(
        "willtopic_unused_flag_bits_ignored",
        "§5.4.7 WILLTOPIC (only QoS and Retain used)",
        "04 07 8F 77",
        WillTopic("w"),
        "04 07 00 77",
    ),
    NonCanonical(
        "willtopic_flags_without_topic",
        "§5.4.7 WILLTOPIC (Flags but empty WillTopic: read as the empty WILLTOPIC)",
        "03 07 30",
        WillTopic(""),
        "02 07",
    ),
    NonCanonical(
        "willtopicupd_flags_without_topic",
        "§5.4.22 WILLTOPICUPD (Flags but empty WillTopic: read as the empty WILLTOPICUPD)",
        "03 1A 20",
        WillTopicUpd(""),
        "02 1A",
    ),
    NonCanonical(
        "encapsulated_reserved_ctrl_bits_ignored",
        "§5.5 Encapsulated (Ctrl bits 7-2 reserved)",
        "05 FE FD 12 34 02 16",
        Encapsulated(1, b"\x12\x34", b"\x02\x16"),
        "05 FE 01 12 34 02 16",
    ),
]


MALFORMED: list[Malformed] = [
    # §5.2.1 Length
    Malformed("empty", "§5.2.1 Length", "", "too_short"),
    Malformed("one_octet", "§5.2.1 Length", "02", "too_short"),
    Malformed("long_marker_only", "§5.2.1 Length", "01", "too_short"),
    Malformed("long_header_truncated_2", "§5.2.1 Length", "01 00", "too_short"),
    Malformed("long_header_truncated_3", "§5.2.1 Length", "01 00 04", "too_short"),
    Malformed("length_field_too_long", "§5.2.1 Length", "05 18", "length_mismatch"),
    Malformed("length_field_too_short", "§5.2.1 Length", "02 18 00", "length_mismatch"),
    Malformed("length_field_zero", "§5.2.1 Length", "00 18", "length_mismatch"),
    Malformed("length_255_datagram_7", "§5.2.1 Length", "FF 0C 00 00 11 00 00", "length_mismatch"),
    Malformed("long_length_too_long", "§5.2.1 Length", "01 00 05 18", "length_mismatch"),
    Malformed("long_length_too_short", "§5.2.1 Length", "01 00 03 18", "length_mismatch"),
    Malformed(
        "long_length_publish_off_by_one",
        "§5.2.1 Length",
        "01 01 36 0C 20 00 11 00 2A " + _times("5A", 300),
        "length_mismatch",
    ),
    # §5.2.2 MsgType: reserved values
    Malformed("type_0x03_reserved", "§5.2.2 MsgType", "02 03", "unknown_type"),
    Malformed("type_0x11_reserved", "§5.2.2 MsgType", "02 11", "unknown_type"),
    Malformed("type_0x19_reserved", "§5.2.2 MsgType", "02 19", "unknown_type"),
    Malformed("type_0x1e_reserved", "§5.2.2 MsgType", "02 1E", "unknown_type"),
    Malformed("type_0xfd_reserved", "§5.2.2 MsgType", "02 FD", "unknown_type"),
    Malformed("type_0xff_reserved", "§5.2.2 MsgType", "02 FF", "unknown_type"),
    Malformed("type_0x03_long_form", "§5.2.2 MsgType", "01 00 04 03", "unknown_type"),
    Malformed(
        "encapsulation_with_long_length",
        "§5.5 Encapsulated (its Length is 1 octet)",
        "01 00 04 FE",
        "unknown_type",
    ),
    # Wrong sizes for fixed-size or minimum-size messages (§5.4)
    Malformed("advertise_short", "§5.4.1 ADVERTISE", "04 00 05 03", "bad_size"),
    Malformed("advertise_long", "§5.4.1 ADVERTISE", "06 00 05 03 84 00", "bad_size"),
    Malformed("searchgw_no_radius", "§5.4.2 SEARCHGW", "02 01", "bad_size"),
    Malformed("searchgw_long", "§5.4.2 SEARCHGW", "04 01 01 01", "bad_size"),
    Malformed("gwinfo_no_gwid", "§5.4.3 GWINFO", "02 02", "bad_size"),
    Malformed("connect_no_client_id", "§5.4.4 CONNECT", "06 04 04 01 00 3C", "bad_size"),
    Malformed("connect_flags_only", "§5.4.4 CONNECT", "03 04 04", "bad_size"),
    Malformed("connack_empty", "§5.4.5 CONNACK", "02 05", "bad_size"),
    Malformed("connack_long", "§5.4.5 CONNACK", "04 05 00 00", "bad_size"),
    Malformed("willtopicreq_long", "§5.4.6 WILLTOPICREQ", "03 06 00", "bad_size"),
    Malformed("willmsgreq_long", "§5.4.8 WILLMSGREQ", "03 08 00", "bad_size"),
    Malformed("register_short", "§5.4.10 REGISTER", "05 0A 00 00 00", "bad_size"),
    Malformed("regack_short", "§5.4.11 REGACK", "06 0B 00 11 00 01", "bad_size"),
    Malformed("regack_long", "§5.4.11 REGACK", "08 0B 00 11 00 01 00 00", "bad_size"),
    Malformed("publish_short", "§5.4.12 PUBLISH", "06 0C 00 00 11 00", "bad_size"),
    Malformed("puback_short", "§5.4.13 PUBACK", "06 0D 00 11 12 34", "bad_size"),
    Malformed("puback_long", "§5.4.13 PUBACK", "08 0D 00 11 12 34 00 00", "bad_size"),
    Malformed("pubrec_short", "§5.4.14 PUBREC", "03 0F 12", "bad_size"),
    Malformed("pubrel_long", "§5.4.14 PUBREL", "05 10 12 34 00", "bad_size"),
    Malformed("pubcomp_empty", "§5.4.14 PUBCOMP", "02 0E", "bad_size"),
    Malformed("subscribe_no_topic", "§5.4.15 SUBSCRIBE", "05 12 00 00 01", "bad_size"),
    Malformed(
        "subscribe_predefined_3_octets", "§5.4.15 SUBSCRIBE", "08 12 01 00 01 00 09 00", "bad_size"
    ),
    Malformed("subscribe_predefined_1_octet", "§5.4.15 SUBSCRIBE", "06 12 01 00 01 09", "bad_size"),
    Malformed("subscribe_short_name_1_octet", "§5.4.15 SUBSCRIBE", "06 12 02 00 01 78", "bad_size"),
    Malformed(
        "subscribe_short_name_3_octets", "§5.4.15 SUBSCRIBE", "08 12 02 00 01 78 79 7A", "bad_size"
    ),
    Malformed("suback_short", "§5.4.16 SUBACK", "07 13 00 00 11 00 02", "bad_size"),
    Malformed("suback_long", "§5.4.16 SUBACK", "09 13 00 00 11 00 02 00 00", "bad_size"),
    Malformed("unsubscribe_no_topic", "§5.4.17 UNSUBSCRIBE", "05 14 00 00 01", "bad_size"),
    Malformed(
        "unsubscribe_predefined_1_octet", "§5.4.17 UNSUBSCRIBE", "06 14 01 00 01 09", "bad_size"
    ),
    Malformed("unsuback_short", "§5.4.18 UNSUBACK", "03 15 00", "bad_size"),
    Malformed("unsuback_long", "§5.4.18 UNSUBACK", "05 15 00 05 00", "bad_size"),
    Malformed("pingresp_long", "§5.4.20 PINGRESP", "03 17 00", "bad_size"),
    Malformed("disconnect_1_octet_duration", "§5.4.21 DISCONNECT", "03 18 0E", "bad_size"),
    Malformed("disconnect_3_octet_duration", "§5.4.21 DISCONNECT", "05 18 0E 10 00", "bad_size"),
    Malformed("willtopicresp_empty", "§5.4.24 WILLTOPICRESP", "02 1B", "bad_size"),
    Malformed("willtopicresp_long", "§5.4.24 WILLTOPICRESP", "04 1B 00 00", "bad_size"),
    Malformed("willmsgresp_empty", "§5.4.25 WILLMSGRESP", "02 1D", "bad_size"),
    # §5.3.4 Flags: TopicIdType 0b11 is reserved
    Malformed(
        "publish_reserved_topic_id_type",
        "§5.3.4 Flags / §5.4.12 PUBLISH",
        "07 0C 03 00 11 00 00",
        "reserved_topic_id_type",
    ),
    Malformed(
        "subscribe_reserved_topic_id_type",
        "§5.3.4 Flags / §5.4.15 SUBSCRIBE",
        "07 12 03 00 01 00 09",
        "reserved_topic_id_type",
    ),
    Malformed(
        "unsubscribe_reserved_topic_id_type",
        "§5.3.4 Flags / §5.4.17 UNSUBSCRIBE",
        "07 14 03 00 01 00 09",
        "reserved_topic_id_type",
    ),
    # UTF-8 text fields that are not UTF-8
    Malformed("connect_client_id_0xff", "§5.3.1 ClientId", "07 04 04 01 00 3C FF", "bad_utf8"),
    Malformed(
        "register_truncated_sequence", "§5.3.12 TopicName", "07 0A 00 00 00 01 C3", "bad_utf8"
    ),
    Malformed("subscribe_overlong_nul", "§5.3.12 TopicName", "07 12 00 00 01 C0 80", "bad_utf8"),
    Malformed(
        "subscribe_short_name_not_utf8", "§5.3.12 TopicName", "07 12 02 00 01 FF FE", "bad_utf8"
    ),
    Malformed(
        "unsubscribe_encoded_surrogate", "§5.3.12 TopicName", "08 14 00 00 01 ED A0 80", "bad_utf8"
    ),
    Malformed("willtopic_0xff", "§5.3.14 WillTopic", "04 07 00 FF", "bad_utf8"),
    Malformed(
        "willtopicupd_encoded_surrogate", "§5.3.14 WillTopic", "06 1A 00 ED A0 80", "bad_utf8"
    ),
    Malformed("pingreq_client_id_continuation", "§5.3.1 ClientId", "03 16 80", "bad_utf8"),
    # §5.3.10 ReturnCode: 0x04-0xFF reserved
    Malformed("connack_rc_0x04", "§5.3.10 ReturnCode", "03 05 04", "bad_return_code"),
    Malformed("regack_rc_0xff", "§5.3.10 ReturnCode", "07 0B 00 01 00 01 FF", "bad_return_code"),
    Malformed("puback_rc_0x04", "§5.3.10 ReturnCode", "07 0D 00 01 00 01 04", "bad_return_code"),
    Malformed("suback_rc_0x80", "§5.3.10 ReturnCode", "08 13 00 00 01 00 01 80", "bad_return_code"),
    Malformed("willtopicresp_rc_0x04", "§5.3.10 ReturnCode", "03 1B 04", "bad_return_code"),
    Malformed("willmsgresp_rc_0xff", "§5.3.10 ReturnCode", "03 1D FF", "bad_return_code"),
    # §5.5 Encapsulation header
    Malformed("encapsulation_length_2", "§5.5 Encapsulated", "02 FE", "bad_encapsulation"),
    Malformed(
        "encapsulation_length_2_with_message",
        "§5.5 Encapsulated",
        "02 FE 00 02 16",
        "bad_encapsulation",
    ),
    Malformed("encapsulation_length_0", "§5.5 Encapsulated", "00 FE 00 02 16", "bad_encapsulation"),
    Malformed("encapsulation_no_message", "§5.5 Encapsulated", "03 FE 00", "bad_encapsulation"),
    Malformed(
        "encapsulation_node_id_no_message",
        "§5.5 Encapsulated",
        "05 FE 00 12 34",
        "bad_encapsulation",
    ),
    Malformed(
        "encapsulation_header_past_end", "§5.5 Encapsulated", "09 FE 00 12 34", "bad_encapsulation"
    ),
]
