"""The broker link's PUBLISH encoder: spec vectors, and the same bytes as gmqtt's generic builder
(the library the link used before, and still uses to parse what the broker sends)."""

from __future__ import annotations

from types import SimpleNamespace

import gmqtt
import pytest
from gmqtt.mqtt.constants import MQTTv50, MQTTv311
from gmqtt.mqtt.package import PublishPacket
from gmqtt.mqtt.property import Property
from gmqtt.mqtt.utils import unpack_variable_byte_integer
from hypothesis import given
from hypothesis import strategies as st

from gateway.bridge.publish_codec import (
    encode_properties,
    encode_publish,
    variable_byte_integer,
)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [  # MQTT 5.0 §1.5.5, table 1-1: the bounds of each length
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_variable_byte_integer_spec_table(value: int, encoded: bytes) -> None:
    assert variable_byte_integer(value) == encoded


@pytest.mark.parametrize("value", [-1, 268_435_456])
def test_variable_byte_integer_out_of_range(value: int) -> None:
    with pytest.raises(ValueError, match="variable byte integer"):
        variable_byte_integer(value)


def test_qos1_v311_vector() -> None:
    # 3.1.1 §3.3: fixed header 0x32 (QoS 1), remaining length, topic "a/b", packet id 10.
    assert encode_publish("a/b", b"hi", 1, False, packet_id=10, properties=None) == (
        b"\x32\x09\x00\x03a/b\x00\x0ahi"
    )


def test_qos0_retained_v5_vector_without_packet_id() -> None:
    # 5.0 §3.3.2.2: no packet identifier at QoS 0; an empty property block is one 0x00 byte.
    assert encode_publish("t", b"x", 0, True, packet_id=0, properties=encode_properties()) == (
        b"\x31\x05\x00\x01t\x00x"
    )


def test_user_properties_and_reply_vector() -> None:
    block = encode_properties({"k": "v"}, ("r", b"\x01\x02"))
    # 0x08 response topic, 0x09 correlation data, 0x26 user property (5.0 §3.3.2.3).
    body = b"\x08\x00\x01r" + b"\x09\x00\x02\x01\x02" + b"\x26\x00\x01k\x00\x01v"
    assert block == bytes([len(body)]) + body


@pytest.mark.parametrize("qos", [1, 2])
@pytest.mark.parametrize("packet_id", [0, 65_536])
def test_invalid_packet_id_refused(qos: int, packet_id: int) -> None:
    with pytest.raises(ValueError, match="packet identifier"):
        encode_publish("t", b"", qos, False, packet_id=packet_id, properties=None)


def test_invalid_qos_refused() -> None:
    with pytest.raises(ValueError, match="QoS"):
        encode_publish("t", b"", 3, False, packet_id=1, properties=None)


def _gmqtt_bytes(
    topic: str, payload: bytes, qos: int, retain: bool, packet_id: int, version: int,
    user: dict[str, str], reply: tuple[str, bytes] | None,
) -> bytes:
    extra: dict[str, object] = {}
    if reply is not None:
        extra["response_topic"], extra["correlation_data"] = reply
    if user:
        extra["user_property"] = list(user.items())
    message = gmqtt.Message(topic, payload, qos=qos, retain=retain, **extra)
    ids = SimpleNamespace(next_id=lambda: packet_id)
    protocol = SimpleNamespace(proto_ver=version, id_generator=ids)
    _, packet = PublishPacket.build_package(message, protocol)
    return bytes(packet)


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)


@given(
    topic=_text.filter(bool),
    payload=st.binary(max_size=300),
    qos=st.sampled_from([0, 1, 2]),
    retain=st.booleans(),
    packet_id=st.integers(1, 0xFFFF),
    v5=st.booleans(),
    user=st.dictionaries(_text, _text, max_size=3),
    reply=st.none() | st.tuples(_text.filter(bool), st.binary(max_size=20)),
)
def test_same_bytes_as_gmqtt(
    topic: str, payload: bytes, qos: int, retain: bool, packet_id: int, v5: bool,
    user: dict[str, str], reply: tuple[str, bytes] | None,
) -> None:
    version = MQTTv50 if v5 else MQTTv311
    block = encode_properties(user, reply) if v5 else None
    mine = encode_publish(
        topic, payload, qos, retain, packet_id=packet_id if qos else 0, properties=block
    )
    assert mine == _gmqtt_bytes(topic, payload, qos, retain, packet_id, version, user, reply)


@given(user=st.dictionaries(_text, _text, max_size=40))
def test_gmqtt_parses_our_property_block(user: dict[str, str]) -> None:
    block = encode_properties(user)
    parsed: list[tuple[str, str]] = []
    length, rest = unpack_variable_byte_integer(block)
    assert length == len(rest)
    while rest:
        prop = Property.factory(id_=rest[0])
        value, rest = prop.loads(rest[1:])
        parsed.append(value["user_property"])
    assert parsed == list(user.items())
