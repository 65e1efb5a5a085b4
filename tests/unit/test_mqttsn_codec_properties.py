"""Property-based tests of the MQTT-SN v1.2 codec.

What holds, precisely:

* Round trip: decode(encode(p)) == p for every packet the strategies draw, spec-valid or
  anywhere in the codec's domain.
* Totality: decode() of any byte string returns a packet or raises MalformedPacket, nothing else.
* Prefixes: every proper prefix of a valid non-Encapsulated datagram is rejected, because the
  Length field (§5.2.1) no longer matches. An Encapsulated frame (§5.5) carries its inner message
  as opaque octets, so a prefix that cuts only into the inner message still decodes; what holds
  there is stated in `test_encapsulated_prefixes`.
* Re-encoding: for any datagram x that decodes, encode(decode(x)) == canonical(x), where
  `canonical` (below) is an independent model that (1) rewrites a 3-octet Length of a message
  that fits in 255 octets to the 1-octet form, (2) clears the Flags bits the message type does
  not use (and the reserved Ctrl bits 7-2 of an Encapsulated frame), and (3) turns a WILLTOPIC or
  WILLTOPICUPD that has a Flags octet but an empty WillTopic into the 2-octet empty form. Hence
  x == encode(decode(x)) exactly when x is canonical, and decode(encode(decode(x))) == decode(x)
  always.
"""

from __future__ import annotations

from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.mqttsn.codec import MalformedPacket, decode, encode
from gateway.mqttsn.constants import MsgType, QoS, TopicIdType
from gateway.mqttsn.packets import Encapsulated, Packet, Publish
from tests.unit.strategies import (
    STRATEGIES,
    encapsulated_packets,
    packets,
    plain_packets,
    publish_packets,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODEST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Flags bits each message type uses (§5.3.4 and the message tables of §5.4); others are ignored.
USED_FLAG_BITS = {
    MsgType.CONNECT: 0x0C,  # Will, CleanSession
    MsgType.WILLTOPIC: 0x70,  # QoS, Retain
    MsgType.WILLTOPICUPD: 0x70,  # QoS, Retain
    MsgType.PUBLISH: 0xF3,  # DUP, QoS, Retain, TopicIdType
    MsgType.SUBSCRIBE: 0xE3,  # DUP, QoS, TopicIdType
    MsgType.SUBACK: 0x60,  # QoS
    MsgType.UNSUBSCRIBE: 0x03,  # TopicIdType
}
ENCAPSULATION_CTRL_USED_BITS = 0x03  # Radius; bits 7-2 reserved (§5.5)


def _is_encapsulated(datagram: bytes) -> bool:
    return len(datagram) >= 2 and datagram[0] != 0x01 and datagram[1] == MsgType.ENCAPSULATED


def canonical(datagram: bytes) -> bytes:
    """The datagram the encoder emits for the packet a valid `datagram` decodes to."""
    if _is_encapsulated(datagram):
        ctrl = datagram[2] & ENCAPSULATION_CTRL_USED_BITS
        return datagram[:2] + bytes((ctrl,)) + datagram[3:]
    if datagram[0] == 0x01:
        msg_type, body = datagram[3], datagram[4:]
    else:
        msg_type, body = datagram[1], datagram[2:]
    if body and msg_type in USED_FLAG_BITS:
        body = bytes((body[0] & USED_FLAG_BITS[MsgType(msg_type)],)) + body[1:]
    if msg_type in (MsgType.WILLTOPIC, MsgType.WILLTOPICUPD) and len(body) == 1:
        body = b""
    size = len(body) + 2
    if size <= 255:
        return bytes((size, msg_type)) + body
    size += 2
    return bytes((0x01, size >> 8, size & 0xFF, msg_type)) + body


def _decodes_or_malformed(datagram: bytes) -> Any:
    try:
        return decode(datagram)
    except MalformedPacket as exc:
        assert exc.reason
        return None


# --- the strategies themselves --------------------------------------------------------------


def test_strategies_cover_every_packet_type() -> None:
    """tests.unit.strategies has exactly one strategy for every class in the Packet union."""
    assert set(STRATEGIES) == set(get_args(Packet))


@MODEST
@given(publish_packets())
def test_spec_publish_strategy_is_spec_valid(packet: Publish) -> None:
    """Spec-mode PUBLISH draws obey §6.8 and §5.3.8: QoS -1 never uses a normal topic id, and
    MsgId is 0x0000 (with DUP clear) exactly for QoS 0 and -1.
    """
    if packet.qos is QoS.MINUS_ONE:
        assert packet.topic_id_type is not TopicIdType.NORMAL
    unacked = packet.qos in (QoS.AT_MOST_ONCE, QoS.MINUS_ONE)
    assert (packet.msg_id == 0) == unacked
    assert not (unacked and packet.dup)


# --- round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize("codec_domain", [False, True], ids=["spec", "codec_domain"])
@pytest.mark.parametrize("cls", list(STRATEGIES), ids=[c.__name__ for c in STRATEGIES])
@FAST
@given(data=st.data())
def test_roundtrip_per_type(cls: type[Any], codec_domain: bool, data: st.DataObject) -> None:
    """decode(encode(p)) == p for every packet type, both spec-valid and over the codec's domain."""
    packet = data.draw(STRATEGIES[cls](codec_domain=codec_domain))
    assert type(packet) is cls
    assert decode(encode(packet)) == packet


@MODEST
@given(packets(codec_domain=True))
def test_roundtrip_any_packet(packet: Any) -> None:
    """decode(encode(p)) == p for a packet of any type, and encoding is deterministic."""
    datagram = encode(packet)
    assert decode(datagram) == packet
    assert encode(decode(datagram)) == datagram


@MODEST
@given(packets())
def test_encoded_length_form_is_canonical(packet: Any) -> None:
    """encode() uses the 1-octet Length iff the message fits in 255 octets (the canonical form)."""
    datagram = encode(packet)
    assert canonical(datagram) == datagram
    if not isinstance(packet, Encapsulated):
        assert (datagram[0] == 0x01) == (len(datagram) > 255)


# --- totality -------------------------------------------------------------------------------


@MODEST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_malformed(datagram: bytes) -> None:
    """Any byte string decodes to a packet or raises MalformedPacket, never another exception."""
    _decodes_or_malformed(datagram)


@st.composite
def _mutations(draw: st.DrawFn) -> bytes:
    """A valid datagram with bytes flipped, cut off, added, inserted or deleted."""
    datagram = bytearray(encode(draw(packets(codec_domain=True))))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "extend", "insert", "delete", "set"]))
        if kind == "flip" and datagram:
            i = draw(st.integers(0, len(datagram) - 1))
            datagram[i] ^= draw(st.integers(1, 255))
        elif kind == "set" and datagram:
            i = draw(st.integers(0, min(len(datagram) - 1, 4)))
            datagram[i] = draw(st.sampled_from([0x00, 0x01, 0x02, 0x03, 0xFE, 0xFF]))
        elif kind == "truncate":
            del datagram[draw(st.integers(0, len(datagram))) :]
        elif kind == "extend":
            datagram += draw(st.binary(min_size=1, max_size=8))
        elif kind == "insert":
            i = draw(st.integers(0, len(datagram)))
            datagram[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and datagram:
            i = draw(st.integers(0, len(datagram) - 1))
            del datagram[i : i + draw(st.integers(1, 4))]
    return bytes(datagram)


@MODEST
@given(_mutations())
def test_mutated_datagrams_decode_or_raise_malformed(datagram: bytes) -> None:
    """A mutated valid datagram decodes to a packet or raises MalformedPacket, nothing else."""
    packet = _decodes_or_malformed(datagram)
    if packet is not None:
        assert encode(packet) == canonical(datagram)


# --- prefixes -------------------------------------------------------------------------------


@MODEST
@given(plain_packets(codec_domain=True))
def test_every_proper_prefix_is_rejected(packet: Any) -> None:
    """Every proper prefix, empty included, of a plain (non-Encapsulated) datagram is rejected."""
    datagram = encode(packet)
    for end in range(len(datagram)):
        with pytest.raises(MalformedPacket):
            decode(datagram[:end])


@MODEST
@given(encapsulated_packets())
def test_encapsulated_prefixes(packet: Encapsulated) -> None:
    """A prefix of an Encapsulated frame is rejected up to the header; past it, only the inner
    message is cut, so it decodes to the same header with a cut inner message that is malformed.
    """
    datagram = encode(packet)
    header_length = datagram[0]
    for end in range(len(datagram)):
        prefix = datagram[:end]
        if end <= header_length:
            with pytest.raises(MalformedPacket):
                decode(prefix)
            continue
        cut = decode(prefix)
        assert cut == Encapsulated(
            packet.radius, packet.wireless_node_id, packet.message[: end - header_length]
        )
        with pytest.raises(MalformedPacket):
            decode(cut.message)


# --- re-encoding decoded datagrams ------------------------------------------------------------


@st.composite
def _noisy_datagrams(draw: st.DrawFn) -> tuple[bytes, Any]:
    """A valid datagram for a packet, possibly made non-canonical in every way the spec allows."""
    packet = draw(packets(codec_domain=True))
    datagram = encode(packet)
    if _is_encapsulated(datagram):
        noise = draw(st.integers(0, 0xFF)) & ~ENCAPSULATION_CTRL_USED_BITS
        return datagram[:2] + bytes((datagram[2] | noise,)) + datagram[3:], packet
    long_form = datagram[0] == 0x01
    msg_type = datagram[3] if long_form else datagram[1]
    body = datagram[4:] if long_form else datagram[2:]
    if body and msg_type in USED_FLAG_BITS:
        noise = draw(st.integers(0, 0xFF)) & ~USED_FLAG_BITS[MsgType(msg_type)]
        body = bytes((body[0] | noise,)) + body[1:]
    if msg_type in (MsgType.WILLTOPIC, MsgType.WILLTOPICUPD) and not body and draw(st.booleans()):
        body = bytes((draw(st.integers(0, 0xFF)),))  # Flags octet with an empty WillTopic
    if not long_form and draw(st.booleans()):
        long_form = True  # 3-octet Length for a message that fits in 255 octets
    if long_form:
        size = len(body) + 4
        return bytes((0x01, size >> 8, size & 0xFF, msg_type)) + body, packet
    return bytes((len(body) + 2, msg_type)) + body, packet


@MODEST
@given(_noisy_datagrams())
def test_reencoding_gives_canonical_datagram(case: tuple[bytes, Any]) -> None:
    """A non-canonical valid datagram decodes to the original packet and re-encodes canonically."""
    datagram, packet = case
    decoded = decode(datagram)
    assert decoded == packet
    assert encode(decoded) == canonical(datagram)
    assert (encode(decoded) == datagram) == (canonical(datagram) == datagram)
    assert decode(encode(decoded)) == decoded


@MODEST
@given(st.binary(min_size=2, max_size=40))
def test_reencoding_arbitrary_decodable_bytes(datagram: bytes) -> None:
    """Any byte string that happens to decode re-encodes to its canonical() form, same packet."""
    decoded = _decodes_or_malformed(datagram)
    if decoded is not None:
        assert encode(decoded) == canonical(datagram)
        assert decode(encode(decoded)) == decoded
