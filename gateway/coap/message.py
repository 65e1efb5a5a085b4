"""A small sans-IO codec for CoAP over UDP messages (RFC 7252 §3).

Pure functions over bytes: no sockets, clocks or logging. ``decode`` accepts exactly what §3
allows and raises only :class:`MalformedMessage` (its ``reason`` is a short counter-friendly
token); ``encode`` writes the canonical form (shortest option headers, minimal integers).
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import Struct
from typing import Final

__all__ = [
    "ACK",
    "CON",
    "NON",
    "RST",
    "MalformedMessage",
    "Message",
    "code_text",
    "decode",
    "decode_uint",
    "encode",
    "encode_options",
    "encode_uint",
    "reset_for",
]

VERSION: Final = 1

# Message types (§3).
CON: Final = 0
NON: Final = 1
ACK: Final = 2
RST: Final = 3


def make_code(cls: int, detail: int) -> int:
    """The 8-bit code c.dd (§3: 3-bit class, 5-bit detail)."""
    return (cls << 5) | detail


# Method codes (§12.1.1) and response codes (§12.1.2, RFC 7959 §2.9).
EMPTY: Final = 0
GET: Final = make_code(0, 1)
POST: Final = make_code(0, 2)
PUT: Final = make_code(0, 3)
DELETE: Final = make_code(0, 4)
CREATED: Final = make_code(2, 1)
DELETED: Final = make_code(2, 2)
VALID: Final = make_code(2, 3)
CHANGED: Final = make_code(2, 4)
CONTENT: Final = make_code(2, 5)
CONTINUE: Final = make_code(2, 31)
BAD_REQUEST: Final = make_code(4, 0)
BAD_OPTION: Final = make_code(4, 2)
NOT_FOUND: Final = make_code(4, 4)
METHOD_NOT_ALLOWED: Final = make_code(4, 5)
NOT_ACCEPTABLE: Final = make_code(4, 6)
REQUEST_ENTITY_INCOMPLETE: Final = make_code(4, 8)
REQUEST_ENTITY_TOO_LARGE: Final = make_code(4, 13)
UNSUPPORTED_CONTENT_FORMAT: Final = make_code(4, 15)
INTERNAL_SERVER_ERROR: Final = make_code(5, 0)
SERVICE_UNAVAILABLE: Final = make_code(5, 3)
GATEWAY_TIMEOUT: Final = make_code(5, 4)
PROXYING_NOT_SUPPORTED: Final = make_code(5, 5)

# Option numbers (§5.10, RFC 7641 §2, RFC 7959 §2.1/§4, RFC 8613 §2).
IF_MATCH: Final = 1
URI_HOST: Final = 3
ETAG: Final = 4
IF_NONE_MATCH: Final = 5
OBSERVE: Final = 6
URI_PORT: Final = 7
LOCATION_PATH: Final = 8
OSCORE: Final = 9
URI_PATH: Final = 11
CONTENT_FORMAT: Final = 12
MAX_AGE: Final = 14
URI_QUERY: Final = 15
ACCEPT: Final = 17
LOCATION_QUERY: Final = 20
BLOCK2: Final = 23
BLOCK1: Final = 27
SIZE2: Final = 28
PROXY_URI: Final = 35
PROXY_SCHEME: Final = 39
SIZE1: Final = 60

PAYLOAD_MARKER: Final = 0xFF
MAX_TOKEN_LENGTH: Final = 8
MAX_OPTION_NUMBER: Final = 0xFFFF
_HEADER: Final = Struct("!BBH")
_U16: Final = Struct("!H")

Option = tuple[int, bytes]


class MalformedMessage(Exception):
    """The datagram is not a CoAP message (§3). ``mid`` and ``mtype`` are set when the fixed
    header could be read, so that a Confirmable message can still be rejected with RST (§4.2).
    """

    def __init__(self, reason: str, *, mtype: int | None = None, mid: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.mtype = mtype
        self.mid = mid


# Not frozen: one is built per request, and a frozen dataclass sets each field through
# object.__setattr__ (mypyc also leaves its __init__ interpreted). Treat it as immutable.
@dataclass(slots=True)
class Message:
    """One CoAP message. ``options`` are (number, value) pairs in ascending number order;
    a repeatable option (Uri-Path, ...) appears once per occurrence, in message order."""

    mtype: int
    code: int
    mid: int
    token: bytes = b""
    options: tuple[Option, ...] = ()
    payload: bytes = b""

    def option(self, number: int) -> bytes | None:
        """The first value of option ``number``, or None."""
        for num, value in self.options:
            if num == number:
                return value
        return None

    def option_values(self, number: int) -> list[bytes]:
        """Every value of a repeatable option, in order."""
        return [value for num, value in self.options if num == number]

    @property
    def is_request(self) -> bool:
        return self.code != EMPTY and self.code >> 5 == 0


def code_text(code: int) -> str:
    """``c.dd`` as RFC 7252 writes codes, e.g. 0x84 -> "4.04"."""
    return f"{code >> 5}.{code & 0x1F:02d}"


def encode_uint(value: int) -> bytes:
    """The shortest big-endian bytes of an unsigned integer option value (§3.2: uint)."""
    if value < 0:
        raise ValueError("uint options cannot be negative")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def decode_uint(data: bytes) -> int:
    """A uint option value; leading zero bytes are tolerated (§3.2 says "MAY" be sent)."""
    return int.from_bytes(data, "big")


def reset_for(mid: int) -> bytes:
    """An empty Reset message (§4.2) rejecting the message with this id."""
    return _HEADER.pack((VERSION << 6) | (RST << 4), EMPTY, mid)


def decode(data: bytes) -> Message:
    """Parse one datagram; MalformedMessage for anything §3 calls a message format error."""
    size = len(data)
    if size < 4:
        raise MalformedMessage("short_header")
    first, code, mid = _HEADER.unpack_from(data)
    mtype = (first >> 4) & 0x03
    if first >> 6 != VERSION:
        raise MalformedMessage("bad_version", mtype=mtype, mid=mid)
    tkl = first & 0x0F
    if code == EMPTY:
        # §4.1: an Empty message has TKL 0 and nothing after the Message ID.
        if size != 4 or tkl:
            raise MalformedMessage("empty_with_data", mtype=mtype, mid=mid)
        return Message(mtype, EMPTY, mid)
    if tkl > MAX_TOKEN_LENGTH:
        raise MalformedMessage("token_length", mtype=mtype, mid=mid)
    pos = 4 + tkl
    if pos > size:
        raise MalformedMessage("truncated_token", mtype=mtype, mid=mid)
    token = data[4:pos]
    options: list[Option] = []
    number = 0
    while pos < size:
        byte = data[pos]
        if byte == PAYLOAD_MARKER:
            if pos + 1 == size:
                # §3: a marker followed by a zero-length payload is a format error.
                raise MalformedMessage("empty_payload", mtype=mtype, mid=mid)
            return Message(mtype, code, mid, token, tuple(options), data[pos + 1 :])
        pos += 1
        delta = byte >> 4
        length = byte & 0x0F
        if delta >= 13:
            delta, pos = _extended(data, pos, delta, "reserved_delta", mtype=mtype, mid=mid)
        if length >= 13:
            length, pos = _extended(data, pos, length, "reserved_length", mtype=mtype, mid=mid)
        number += delta
        if number > MAX_OPTION_NUMBER:
            raise MalformedMessage("option_number", mtype=mtype, mid=mid)
        end = pos + length
        if end > size:
            raise MalformedMessage("truncated_option", mtype=mtype, mid=mid)
        options.append((number, data[pos:end]))
        pos = end
    return Message(mtype, code, mid, token, tuple(options), b"")


def _extended(
    data: bytes, pos: int, nibble: int, reserved: str, *, mtype: int, mid: int
) -> tuple[int, int]:
    """Read the extension bytes of a delta/length nibble 13 or 14 (§3.1): (value, new pos)."""
    if nibble == 15:
        raise MalformedMessage(reserved, mtype=mtype, mid=mid)
    if nibble == 13:
        if pos >= len(data):
            raise MalformedMessage("truncated_option", mtype=mtype, mid=mid)
        return data[pos] + 13, pos + 1
    if pos + 2 > len(data):
        raise MalformedMessage("truncated_option", mtype=mtype, mid=mid)
    return _U16.unpack_from(data, pos)[0] + 269, pos + 2


def _nibble(value: int) -> tuple[int, bytes]:
    """The 4-bit field and extension bytes of an option delta or length (§3.1)."""
    if value < 13:
        return value, b""
    if value < 269:
        return 13, bytes((value - 13,))
    if value <= MAX_OPTION_NUMBER + 269:
        return 14, _U16.pack(value - 269)
    raise ValueError(f"option delta or length {value} is too large")


def encode_options(options: tuple[Option, ...] | list[Option]) -> bytes:
    """Options in the §3.1 format; a stable sort keeps repeated options in their order."""
    out = bytearray()
    previous = 0
    for number, value in sorted(options, key=lambda item: item[0]):
        if not 0 <= number <= MAX_OPTION_NUMBER:
            raise ValueError(f"option number {number} is out of range")
        delta_field, delta_ext = _nibble(number - previous)
        length_field, length_ext = _nibble(len(value))
        out.append((delta_field << 4) | length_field)
        out += delta_ext
        out += length_ext
        out += value
        previous = number
    return bytes(out)


def encode(message: Message) -> bytes:
    """The datagram for ``message`` (ValueError for fields out of range)."""
    if not 0 <= message.mtype <= 3 or not 0 <= message.code <= 0xFF:
        raise ValueError("message type or code out of range")
    if not 0 <= message.mid <= 0xFFFF:
        raise ValueError("message id out of range")
    if len(message.token) > MAX_TOKEN_LENGTH:
        raise ValueError("token longer than 8 bytes")
    if message.code == EMPTY and (message.token or message.options or message.payload):
        raise ValueError("an Empty message carries no token, options or payload")
    head = _HEADER.pack(
        (VERSION << 6) | (message.mtype << 4) | len(message.token), message.code, message.mid
    )
    body = head + message.token + encode_options(message.options)
    if message.payload:
        body += b"\xff" + message.payload
    return body
