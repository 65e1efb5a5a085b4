"""Numbers from the MQTT-SN v1.2 specification, named as the specification names them."""

from __future__ import annotations

from enum import IntEnum

PROTOCOL_ID = 0x01  # §5.3.3
LONG_LENGTH_MARKER = 0x01  # §5.2.1: a first octet of 0x01 announces a 2-octet length
MAX_SHORT_LENGTH = 255
MAX_LENGTH = 0xFFFF


class MsgType(IntEnum):
    """§5.2.2, Table 3."""

    ADVERTISE = 0x00
    SEARCHGW = 0x01
    GWINFO = 0x02
    CONNECT = 0x04
    CONNACK = 0x05
    WILLTOPICREQ = 0x06
    WILLTOPIC = 0x07
    WILLMSGREQ = 0x08
    WILLMSG = 0x09
    REGISTER = 0x0A
    REGACK = 0x0B
    PUBLISH = 0x0C
    PUBACK = 0x0D
    PUBCOMP = 0x0E
    PUBREC = 0x0F
    PUBREL = 0x10
    SUBSCRIBE = 0x12
    SUBACK = 0x13
    UNSUBSCRIBE = 0x14
    UNSUBACK = 0x15
    PINGREQ = 0x16
    PINGRESP = 0x17
    DISCONNECT = 0x18
    WILLTOPICUPD = 0x1A
    WILLTOPICRESP = 0x1B
    WILLMSGUPD = 0x1C
    WILLMSGRESP = 0x1D
    ENCAPSULATED = 0xFE


class ReturnCode(IntEnum):
    """§5.3.10, Table 5."""

    ACCEPTED = 0x00
    CONGESTION = 0x01
    INVALID_TOPIC_ID = 0x02
    NOT_SUPPORTED = 0x03


class TopicIdType(IntEnum):
    """§5.3.4, Flags bits 1-0."""

    NORMAL = 0b00
    PREDEFINED = 0b01
    SHORT_NAME = 0b10


class QoS(IntEnum):
    """§5.3.4, Flags bits 6-5 (0b11 is QoS -1)."""

    AT_MOST_ONCE = 0
    AT_LEAST_ONCE = 1
    EXACTLY_ONCE = 2
    MINUS_ONE = -1


# Flags bits (§5.3.4).
FLAG_DUP = 0x80
FLAG_QOS_MASK = 0x60
FLAG_RETAIN = 0x10
FLAG_WILL = 0x08
FLAG_CLEAN_SESSION = 0x04
FLAG_TOPIC_ID_TYPE_MASK = 0x03

# Timer defaults (§7.2, Table 7).
T_RETRY = 10.0
N_RETRY = 3
KEEP_ALIVE_GRACE = 1.5  # §6.14: lost after 1.5 x the keep-alive without a message
