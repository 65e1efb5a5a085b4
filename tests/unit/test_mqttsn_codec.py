"""Example-based tests of the MQTT-SN v1.2 codec against hand-written spec byte vectors."""

from __future__ import annotations

import pytest

from gateway.mqttsn.codec import MalformedPacket, decode, encode, encode_body, frame, split_frame
from gateway.mqttsn.constants import MAX_LENGTH, MsgType, QoS, ReturnCode, TopicIdType
from gateway.mqttsn.packets import (
    ConnAck,
    Disconnect,
    Encapsulated,
    Publish,
    Subscribe,
    Unsubscribe,
    WillTopic,
)
from tests.vectors.mqttsn_v12 import (
    MALFORMED,
    NON_CANONICAL,
    VECTORS,
    Malformed,
    NonCanonical,
    Vector,
)


def _ids(vectors: list[Vector] | list[NonCanonical] | list[Malformed]) -> list[str]:
    return [v.name for v in vectors]


# --- spec vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=_ids(VECTORS))
def test_vector_decodes_to_packet(vector: Vector) -> None:
    """Each hand-written spec datagram decodes to exactly the expected packet."""
    assert decode(vector.data) == vector.packet


@pytest.mark.parametrize("vector", VECTORS, ids=_ids(VECTORS))
def test_packet_encodes_to_vector(vector: Vector) -> None:
    """Each expected packet encodes to exactly the hand-written spec datagram."""
    assert encode(vector.packet) == vector.data


@pytest.mark.parametrize("vector", VECTORS, ids=_ids(VECTORS))
def test_vector_length_field_is_self_consistent(vector: Vector) -> None:
    """The hand-written Length field of every vector counts every octet of its datagram."""
    data = vector.data
    if data[1] == MsgType.ENCAPSULATED:
        inner = data[data[0] :]
        assert (inner[0] if inner[0] != 1 else int.from_bytes(inner[1:3], "big")) == len(inner)
    elif data[0] == 0x01:
        assert int.from_bytes(data[1:3], "big") == len(data) > 255
    else:
        assert data[0] == len(data) <= 255


def test_vectors_cover_every_message_type() -> None:
    """The vector table holds at least one datagram for every MsgType of §5.2.2, Table 3."""
    assert {vector.packet.msg_type for vector in VECTORS} == set(MsgType)


def test_vectors_name_a_spec_section() -> None:
    """Every vector names the spec section its layout comes from, and names are unique."""
    for table in (VECTORS, NON_CANONICAL, MALFORMED):
        assert all(v.section.startswith("§5.") for v in table)
        names = [v.name for v in table]
        assert len(names) == len(set(names))


def test_decoded_enum_fields_are_enum_members() -> None:
    """Decoded QoS, TopicIdType and ReturnCode values are enum members, so `is` comparisons work."""
    publish = decode(bytes.fromhex("09 0C 61 00 01 00 00 6F 6E"))
    assert isinstance(publish, Publish)
    assert publish.qos is QoS.MINUS_ONE
    assert publish.topic_id_type is TopicIdType.PREDEFINED
    connack = decode(bytes.fromhex("03 05 02"))
    assert isinstance(connack, ConnAck)
    assert connack.return_code is ReturnCode.INVALID_TOPIC_ID


# --- non-canonical but valid datagrams -------------------------------------------------------


@pytest.mark.parametrize("vector", NON_CANONICAL, ids=_ids(NON_CANONICAL))
def test_non_canonical_datagram_decodes(vector: NonCanonical) -> None:
    """A valid datagram the encoder never emits (long Length, unused flag bits) still decodes."""
    assert decode(vector.data) == vector.packet


@pytest.mark.parametrize("vector", NON_CANONICAL, ids=_ids(NON_CANONICAL))
def test_non_canonical_datagram_reencodes_canonically(vector: NonCanonical) -> None:
    """Re-encoding a non-canonical datagram's packet gives the canonical datagram, same packet."""
    assert encode(vector.packet) == vector.canonical_data
    assert decode(vector.canonical_data) == vector.packet


# --- malformed datagrams --------------------------------------------------------------------


@pytest.mark.parametrize("vector", MALFORMED, ids=_ids(MALFORMED))
def test_malformed_datagram_rejected_with_reason(vector: Malformed) -> None:
    """Each malformed datagram is rejected with MalformedPacket carrying the exact reason."""
    with pytest.raises(MalformedPacket) as caught:
        decode(vector.data)
    assert caught.value.reason == vector.reason


def test_malformed_packet_is_a_value_error_with_reason_in_message() -> None:
    """MalformedPacket is a ValueError whose message starts with its reason label."""
    with pytest.raises(ValueError, match=r"^length_mismatch: ") as caught:
        decode(b"\x05\x18")
    assert isinstance(caught.value, MalformedPacket)


def test_every_reserved_msg_type_is_unknown() -> None:
    """Every reserved MsgType value of Table 3 (0x03, 0x11, 0x19, 0x1E-0xFD, 0xFF) is rejected."""
    reserved = [t for t in range(256) if t not in set(MsgType)]
    assert {0x03, 0x11, 0x19, 0x1E, 0xFD, 0xFF} <= set(reserved)
    for msg_type in reserved:
        with pytest.raises(MalformedPacket) as caught:
            decode(bytes((2, msg_type)))
        assert caught.value.reason == "unknown_type", hex(msg_type)


def test_every_reserved_return_code_is_rejected() -> None:
    """Every ReturnCode value from 0x04 to 0xFF (reserved, §5.3.10) is rejected in CONNACK."""
    for code in range(0x04, 0x100):
        with pytest.raises(MalformedPacket) as caught:
            decode(bytes((3, MsgType.CONNACK, code)))
        assert caught.value.reason == "bad_return_code"


# --- the Length field (§5.2.1) ---------------------------------------------------------------


@pytest.mark.parametrize("data_size", range(244, 254))
def test_encoder_switches_to_long_length_at_256_octets(data_size: int) -> None:
    """A message of up to 255 octets uses the 1-octet Length; 256 or more uses 0x01 + 2 octets."""
    datagram = encode(Publish(0x11, 0, bytes(data_size)))
    short_total = 2 + 5 + data_size
    if short_total <= 255:
        assert datagram[0] == short_total == len(datagram)
        assert datagram[1] == MsgType.PUBLISH
    else:
        assert short_total >= 256
        assert datagram[0] == 0x01
        assert int.from_bytes(datagram[1:3], "big") == short_total + 2 == len(datagram)
        assert datagram[3] == MsgType.PUBLISH
    assert decode(datagram) == Publish(0x11, 0, bytes(data_size))


def test_frame_boundary_255_and_256() -> None:
    """frame() keeps a 255-octet message short and gives a would-be 256-octet one 0x01 + 2."""
    assert frame(MsgType.WILLMSG, bytes(253))[:2] == b"\xff\x09"
    long_form = frame(MsgType.WILLMSG, bytes(254))
    assert long_form[:4] == b"\x01\x01\x02\x09"
    assert len(long_form) == 258


def test_frame_maximum_length() -> None:
    """frame() accepts a 65535-octet message and refuses anything longer with ValueError."""
    assert len(frame(MsgType.WILLMSG, bytes(MAX_LENGTH - 4))) == MAX_LENGTH
    with pytest.raises(ValueError, match="exceeds"):
        frame(MsgType.WILLMSG, bytes(MAX_LENGTH - 3))


def test_split_frame_short_and_long() -> None:
    """split_frame() returns the MsgType and the variable part for both Length forms."""
    msg_type, body = split_frame(bytes.fromhex("04 18 0E 10"))
    assert (msg_type, bytes(body)) == (MsgType.DISCONNECT, b"\x0e\x10")
    msg_type, body = split_frame(bytes.fromhex("01 00 06 18 0E 10"))
    assert (msg_type, bytes(body)) == (MsgType.DISCONNECT, b"\x0e\x10")


def test_encode_body_is_frame_payload() -> None:
    """encode() is frame(msg_type, encode_body(packet)) for a plain packet."""
    packet = Subscribe(2, "s/#", QoS.AT_LEAST_ONCE)
    assert encode(packet) == frame(MsgType.SUBSCRIBE, encode_body(packet))


# --- packets the encoder refuses ------------------------------------------------------------


@pytest.mark.parametrize(
    "packet",
    [
        Subscribe(1, "abc", topic_id_type=TopicIdType.SHORT_NAME),
        Subscribe(1, "ab", topic_id_type=TopicIdType.PREDEFINED),
        Subscribe(1, 7, topic_id_type=TopicIdType.NORMAL),
        Unsubscribe(1, "a", topic_id_type=TopicIdType.SHORT_NAME),
        Unsubscribe(1, 7, topic_id_type=TopicIdType.SHORT_NAME),
        Encapsulated(0, bytes(253), b"\x02\x16"),
    ],
    ids=[
        "sub_short_3",
        "sub_predef_str",
        "sub_normal_int",
        "unsub_short_1",
        "unsub_short_int",
        "encaps_node_id_too_long",
    ],
)
def test_encoder_refuses_unrepresentable_packets(
    packet: Subscribe | Unsubscribe | Encapsulated,
) -> None:
    """Packets whose fields cannot be put on the wire are refused with ValueError."""
    with pytest.raises(ValueError):
        encode(packet)


def test_encode_body_refuses_encapsulated() -> None:
    """encode_body() has no variable part to give for Encapsulated, which only encode() frames."""
    with pytest.raises(ValueError):
        encode_body(Encapsulated(0, b"", b"\x02\x16"))


def test_empty_will_topic_has_no_flags_octet() -> None:
    """The empty WILLTOPIC (§5.4.7) and empty DISCONNECT are exactly the 2-octet header."""
    assert encode(WillTopic("")) == b"\x02\x07"
    assert encode(Disconnect()) == b"\x02\x18"
