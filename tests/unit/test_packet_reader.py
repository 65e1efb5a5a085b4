"""The broker link's packet framing: spec vectors, and the same packets as gmqtt's framing."""

from __future__ import annotations

from typing import Any

from gmqtt.mqtt.protocol import MQTTProtocol
from hypothesis import given
from hypothesis import strategies as st

from gateway.bridge.packet_reader import PUBACK, split_packets
from gateway.bridge.publish_codec import variable_byte_integer


def frame(command: int, body: bytes) -> bytes:
    return bytes([command]) + variable_byte_integer(len(body)) + body


def ours(data: bytes) -> tuple[int, list[tuple[int, Any]]]:
    seen: list[tuple[int, Any]] = []
    used = split_packets(
        data,
        lambda mid, reason: seen.append((PUBACK, (mid, reason))),
        lambda c, b: seen.append((c, bytes(b))),
    )
    return used, seen


def gmqtts(data: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    """gmqtt 0.8.0's own framing (MQTTProtocol._read_packet) on the same bytes."""
    seen: list[tuple[int, bytes]] = []

    class Connection:
        @staticmethod
        def put_package(package: Any) -> None:
            seen.append((package.cmd, bytes(package.data)))

    protocol = object.__new__(MQTTProtocol)
    protocol._connection = Connection()
    return protocol._read_packet(data), seen


def test_spec_vectors() -> None:
    puback_v311 = bytes.fromhex("40 02 12 34")
    puback_v5_refused = bytes.fromhex("40 03 00 07 97")  # reason code 0x97: quota exceeded
    pingresp = bytes.fromhex("d0 00")
    assert ours(puback_v311 + pingresp) == (6, [(PUBACK, (0x1234, 0)), (0xD0, b"")])
    assert ours(puback_v5_refused) == (5, [(PUBACK, (7, 0x97))])
    assert ours(bytes.fromhex("40 04 00 08 10 00")) == (6, [(PUBACK, (8, 0x10))])  # + properties
    assert ours(puback_v311[:3]) == (0, [])  # incomplete: nothing consumed
    assert ours(bytes.fromhex("40"))[0] == 0
    publish = frame(0x30, b"\x00\x01t" + b"x" * 200)  # a two-byte remaining length (203)
    assert publish[1:3] == bytes.fromhex("cb 01")
    assert ours(publish) == (len(publish), [(0x30, publish[3:])])


def test_a_remaining_length_over_four_bytes_is_malformed_at_once() -> None:
    """(gmqtt waited for 268 MB that a fifth length byte cannot announce; the read loop drops
    the connection on -1.)"""
    assert ours(bytes.fromhex("30 ff ff ff ff 01")) == (-1, [])
    assert ours(frame(0xD0, b"") + bytes.fromhex("30 80 80 80 80")) == (-1, [(0xD0, b"")])
    assert ours(bytes.fromhex("30 ff ff ff 7f"))[0] == 0  # four bytes: valid, incomplete


packets = st.lists(
    st.one_of(
        st.tuples(st.just(PUBACK), st.binary(min_size=2, max_size=4)),
        st.tuples(
            st.sampled_from([0x20, 0x30, 0x32, 0x35, 0x50, 0x62, 0x70, 0x90, 0xB0, 0xD0, 0xE0]),
            st.binary(max_size=300),
        ),
    ),
    max_size=8,
)


@given(packets, st.integers(min_value=0, max_value=2000))
def test_the_same_packets_as_gmqtt_from_any_prefix(
    items: list[tuple[int, bytes]], cut: int
) -> None:
    data = b"".join(frame(command, body) for command, body in items)[:cut]
    used, seen = ours(data)
    gm_used, gm_seen = gmqtts(data)
    assert used == gm_used
    assert seen == [
        (command, (int.from_bytes(body[:2], "big"), body[2] if len(body) > 2 else 0)
         if command == PUBACK else body)
        for command, body in gm_seen
    ]
