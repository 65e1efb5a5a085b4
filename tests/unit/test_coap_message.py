"""The CoAP message codec against RFC 7252 byte vectors, edge cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.coap.message import (
    ACK,
    BLOCK1,
    CHANGED,
    CON,
    CONTENT,
    CONTENT_FORMAT,
    EMPTY,
    GET,
    NON,
    OBSERVE,
    POST,
    RST,
    SIZE1,
    URI_PATH,
    MalformedMessage,
    Message,
    code_text,
    decode,
    decode_uint,
    encode,
    encode_uint,
    reset_for,
)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (section, bytes, message): RFC 7252 Appendix A examples and §3/§4 rules, byte for byte.
VECTORS = [
    (
        "Appendix A: CON GET /temperature, MID 0x7d34, no token",
        bytes.fromhex("40017d34") + b"\xbb" + b"temperature",
        Message(CON, GET, 0x7D34, b"", ((URI_PATH, b"temperature"),)),
    ),
    (
        "Appendix A: piggybacked ACK 2.05 '22.3 C', MID 0x7d34",
        bytes.fromhex("60457d34") + b"\xff" + b"22.3 C",
        Message(ACK, CONTENT, 0x7D34, b"", (), b"22.3 C"),
    ),
    (
        "Appendix A: CON GET /temperature with token 0x20",
        bytes.fromhex("41017d3520") + b"\xbb" + b"temperature",
        Message(CON, GET, 0x7D35, b"\x20", ((URI_PATH, b"temperature"),)),
    ),
    (
        "Appendix A: ACK 2.05 with token 0x20",
        bytes.fromhex("61457d3520") + b"\xff" + b"22.3 C",
        Message(ACK, CONTENT, 0x7D35, b"\x20", (), b"22.3 C"),
    ),
    (
        "§4.2 / Appendix A: empty ACK (separate response follows)",
        bytes.fromhex("60007d34"),
        Message(ACK, EMPTY, 0x7D34),
    ),
    ("§4.2: empty RST", bytes.fromhex("70000001"), Message(RST, EMPTY, 1)),
    ("§4.3: CoAP ping is an empty CON", bytes.fromhex("4000abcd"), Message(CON, EMPTY, 0xABCD)),
    (
        "§3.1: repeated Uri-Path, option delta 0 for the repeats; Content-Format 60",
        bytes.fromhex("5102000107")
        + b"\xb7devices"
        + b"\x02d1"
        + b"\x09telemetry"
        + b"\x11\x3c"
        + b"\xff\xa0",
        Message(
            NON, POST, 1, b"\x07",
            ((URI_PATH, b"devices"), (URI_PATH, b"d1"), (URI_PATH, b"telemetry"),
             (CONTENT_FORMAT, b"\x3c")),
            b"\xa0",
        ),
    ),
    (
        "§3.1: delta 13 (8-bit extension, minus 13): Size1 (60) = 1024 as first option",
        bytes.fromhex("40440001") + bytes.fromhex("d22f0400"),
        Message(CON, CHANGED, 1, b"", ((SIZE1, b"\x04\x00"),)),
    ),
    (
        "§3.1: delta 14 (16-bit extension, minus 269): option 300",
        bytes.fromhex("40440001") + bytes.fromhex("e1001f") + b"x",
        Message(CON, CHANGED, 1, b"", ((300, b"x"),)),
    ),
    (
        "§3.1: length 13 (8-bit extension): a 13-byte value",
        bytes.fromhex("40440001") + bytes.fromhex("bd00") + b"a" * 13,
        Message(CON, CHANGED, 1, b"", ((URI_PATH, b"a" * 13),)),
    ),
    (
        "§3.1: length 14 (16-bit extension): a 269-byte value",
        bytes.fromhex("40440001") + bytes.fromhex("be0000") + b"b" * 269,
        Message(CON, CHANGED, 1, b"", ((URI_PATH, b"b" * 269),)),
    ),
    (
        "RFC 7641 §2: Observe 0 (empty uint); RFC 7959 §2.2: Block1 num 1, M, SZX 6",
        bytes.fromhex("42010002abcd") + b"\x60" + b"\xd1\x08\x1e",
        Message(CON, GET, 2, b"\xab\xcd", ((OBSERVE, b""), (BLOCK1, b"\x1e"))),
    ),
]


@pytest.mark.parametrize(("section", "data", "message"), VECTORS, ids=[v[0] for v in VECTORS])
def test_spec_vectors_decode(section: str, data: bytes, message: Message) -> None:
    """Each RFC byte vector decodes to the expected message."""
    assert decode(data) == message


@pytest.mark.parametrize(("section", "data", "message"), VECTORS, ids=[v[0] for v in VECTORS])
def test_spec_vectors_encode(section: str, data: bytes, message: Message) -> None:
    """Each expected message encodes to exactly the RFC bytes (canonical form)."""
    assert encode(message) == data


MALFORMED = [
    ("§3: fewer than 4 bytes", b"\x40\x01\x00", "short_header", None),
    ("§3: version 2 is silently ignored", bytes.fromhex("80010001"), "bad_version", CON),
    ("§3: TKL 9-15 are reserved (format error)", bytes.fromhex("49010001") + b"\0" * 9,
     "token_length", CON),
    ("§3: token shorter than TKL", bytes.fromhex("48010001") + b"\0" * 3, "truncated_token", CON),
    ("§4.1: an Empty message with a token", bytes.fromhex("41000001") + b"\x01",
     "empty_with_data", CON),
    ("§4.1: an Empty message with bytes after the MID", bytes.fromhex("60000001") + b"\xff",
     "empty_with_data", ACK),
    ("§3: payload marker followed by a zero-length payload", bytes.fromhex("40010001ff"),
     "empty_payload", CON),
    ("§3.1: delta nibble 15 that is not the payload marker", bytes.fromhex("40010001f0"),
     "reserved_delta", CON),
    ("§3.1: length nibble 15", bytes.fromhex("40010001bf"), "reserved_length", CON),
    ("§3.1: missing 8-bit delta extension", bytes.fromhex("40010001d0"), "truncated_option",
     CON),
    ("§3.1: missing 16-bit length extension", bytes.fromhex("40010001be00"),
     "truncated_option", CON),
    ("§3.1: option value runs past the datagram", bytes.fromhex("50010001b5") + b"abc",
     "truncated_option", NON),
    ("§3.1: option number beyond 65535", bytes.fromhex("40010001") + b"\xe0\xff\xff" * 2,
     "option_number", CON),
]


@pytest.mark.parametrize(
    ("section", "data", "reason", "mtype"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_format_errors_are_malformed(
    section: str, data: bytes, reason: str, mtype: int | None
) -> None:
    """Each §3/§4.1 format error raises MalformedMessage with its reason and, when the fixed
    header was readable, the type and MID needed to answer a CON with RST (§4.2)."""
    with pytest.raises(MalformedMessage) as info:
        decode(data)
    assert info.value.reason == reason
    assert info.value.mtype == mtype
    if mtype is not None:
        assert info.value.mid == int.from_bytes(data[2:4], "big")


def test_reset_for_echoes_the_message_id() -> None:
    """§4.2: a Reset is Empty, type RST, with the rejected message's MID."""
    assert reset_for(0x1234) == bytes.fromhex("70001234")
    assert decode(reset_for(7)) == Message(RST, EMPTY, 7)


@pytest.mark.parametrize(
    ("value", "data"), [(0, b""), (1, b"\x01"), (60, b"\x3c"), (256, b"\x01\x00"),
                        (0xFFFFFF, b"\xff\xff\xff")]
)
def test_uint_options_are_minimal(value: int, data: bytes) -> None:
    """§3.2: uint option values use the fewest bytes; 0 is the empty string."""
    assert encode_uint(value) == data
    assert decode_uint(data) == value


def test_uint_with_leading_zeros_is_read() -> None:
    """§3.2: a sender MAY use leading zero bytes; they are accepted."""
    assert decode_uint(b"\x00\x3c") == 60


def test_code_text() -> None:
    """Codes print as c.dd (§3)."""
    assert [code_text(c) for c in (GET, CHANGED, 0x84, 0x8D, 0xA3)] == [
        "0.01", "2.04", "4.04", "4.13", "5.03"
    ]


def test_option_accessors_keep_repeats_in_order() -> None:
    """option() is the first value, option_values() every value in message order."""
    message = decode(VECTORS[7][1])
    assert message.option(URI_PATH) == b"devices"
    assert message.option_values(URI_PATH) == [b"devices", b"d1", b"telemetry"]
    assert message.option(OBSERVE) is None
    assert message.is_request


@pytest.mark.parametrize(
    "message",
    [
        Message(CON, GET, 70000),
        Message(CON, GET, 1, b"123456789"),
        Message(CON, EMPTY, 1, b"\x01"),
        Message(CON, GET, 1, b"", ((70000, b""),)),
        Message(4, GET, 1),
    ],
)
def test_encode_refuses_out_of_range_fields(message: Message) -> None:
    """encode raises ValueError for a field no datagram can carry."""
    with pytest.raises(ValueError):
        encode(message)


# --------------------------------------------------------------------------- properties
options = st.lists(
    st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=300)), max_size=8
).map(lambda opts: tuple(sorted(opts, key=lambda o: o[0])))

non_empty_messages = st.builds(
    Message,
    mtype=st.integers(0, 3),
    code=st.integers(1, 255),
    mid=st.integers(0, 0xFFFF),
    token=st.binary(max_size=8),
    options=options,
    payload=st.binary(max_size=200),
)
empty_messages = st.builds(
    Message, mtype=st.integers(0, 3), code=st.just(EMPTY), mid=st.integers(0, 0xFFFF)
)


@FAST
@given(st.one_of(non_empty_messages, empty_messages))
def test_round_trip(message: Message) -> None:
    """decode(encode(m)) == m for every message with options in number order."""
    assert decode(encode(message)) == message


@FAST
@given(st.binary(max_size=64))
def test_any_bytes_decode_or_raise_malformed(data: bytes) -> None:
    """decode() of arbitrary bytes returns a Message or raises MalformedMessage, nothing else;
    whatever decodes re-encodes to a datagram that decodes to the same message."""
    try:
        message = decode(data)
    except MalformedMessage:
        return
    assert decode(encode(message)) == message


@FAST
@given(non_empty_messages, st.data())
def test_every_proper_prefix_is_rejected_or_shorter(message: Message, data: st.DataObject) -> None:
    """A datagram cut short fails to decode or decodes to a different (smaller) message."""
    wire = encode(message)
    cut = data.draw(st.integers(0, len(wire) - 1))
    try:
        shorter = decode(wire[:cut])
    except MalformedMessage:
        return
    assert shorter != message
