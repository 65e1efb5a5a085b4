"""MQTT PUBLISH packets, encoded without a library (MQTT 3.1.1 §3.3, MQTT 5.0 §3.3).

The broker link writes about three PUBLISHes per command it decides; building each through
gmqtt's generic packet factory (property lookup by name, one small ``bytearray.extend`` per
field) cost more than the rest of the publish path. This module builds the same bytes in one
pass and caches the topic and property encodings, which repeat from message to message.
Pure: bytes out, no sockets, no state beyond the bounded caches.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from functools import lru_cache

_PUBLISH = 0x30
_RESPONSE_TOPIC = 0x08
_CORRELATION_DATA = 0x09
_USER_PROPERTY = 0x26
_MAX_REMAINING = 268_435_455  # the largest variable byte integer (four bytes)
_U16 = struct.Struct("!H")


_ONE_BYTE = tuple(bytes((value,)) for value in range(128))


def variable_byte_integer(value: int) -> bytes:
    """MQTT 5.0 §1.5.5 (3.1.1 §2.2.3: "remaining length"): 7 bits per byte, low first."""
    if 0 <= value < 128:
        return _ONE_BYTE[value]  # property blocks and small packets: most calls
    if 128 <= value < 16384:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if not 0 <= value <= _MAX_REMAINING:
        raise ValueError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        if value:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def _utf8(text: str) -> bytes:
    data = text.encode("utf-8", errors="replace")
    if len(data) > 0xFFFF:
        raise ValueError("string longer than 65,535 bytes")
    return _U16.pack(len(data)) + data


@lru_cache(maxsize=4096)
def encoded_topic(topic: str) -> bytes:
    """The topic as a length-prefixed UTF-8 string (cached: a gateway publishes to a bounded
    set of topics per device)."""
    return _utf8(topic)


_NAMES_CACHED = 256
_name_heads: dict[str, bytes] = {}  # a bounded memo of a pure function, like lru_cache


def _user_property_name(name: str) -> bytes:
    """The property identifier and the name, encoded (memoised: a gateway uses a few names;
    a plain dict, cheaper than lru_cache on a path that runs for every publish)."""
    head = _name_heads.get(name)
    if head is None:
        head = bytes((_USER_PROPERTY,)) + _utf8(name)
        if len(_name_heads) < _NAMES_CACHED:
            _name_heads[name] = head
    return head


def encode_properties(
    user: Mapping[str, str] | None = None,
    reply: tuple[str, bytes] | None = None,
) -> bytes:
    """A PUBLISH property block (MQTT 5.0 §3.3.2.3): its length, then response topic and
    correlation data (``reply``), then user properties in the mapping's order."""
    parts: list[bytes] = []
    if reply is not None:
        response_topic, correlation = reply
        if len(correlation) > 0xFFFF:
            raise ValueError("correlation data longer than 65,535 bytes")
        parts += (
            bytes((_RESPONSE_TOPIC,)), _utf8(response_topic),
            bytes((_CORRELATION_DATA,)), _U16.pack(len(correlation)), correlation,
        )
    if user:
        for name, value in user.items():
            parts.append(_user_property_name(name))
            parts.append(_utf8(value))
    body = b"".join(parts)
    return variable_byte_integer(len(body)) + body


def encode_publish(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    *,
    packet_id: int,
    properties: bytes | None,
    dup: bool = False,
) -> bytes:
    """One PUBLISH packet. ``properties``: an ``encode_properties`` block for MQTT 5.0, None for
    MQTT 3.1.1 (which has none). ``packet_id`` is ignored at QoS 0."""
    if qos not in (0, 1, 2):
        raise ValueError(f"invalid QoS {qos}")
    head = _PUBLISH | (dup << 3) | (qos << 1) | int(retain)
    name = encoded_topic(topic)
    remaining = len(name) + len(payload)
    if qos:
        if not 0 < packet_id <= 0xFFFF:
            raise ValueError(f"invalid packet identifier {packet_id}")
        remaining += 2
    if properties is not None:
        remaining += len(properties)
    parts = [_ONE_BYTE[head], variable_byte_integer(remaining), name]  # head: 0x30-0x3f
    if qos:
        parts.append(_U16.pack(packet_id))
    if properties is not None:
        parts.append(properties)
    parts.append(payload)
    return b"".join(parts)
