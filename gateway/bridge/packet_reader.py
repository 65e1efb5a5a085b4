"""Frames the broker's byte stream into MQTT packets; PUBACKs skip gmqtt's generic handling.

Every QoS 1 publish comes back as a PUBACK, so the broker link reads one per broker-bound
message. gmqtt builds a packet object for each, dispatches it by name and logs it twice at
debug level before the link hears of it; `split_packets` frames the stream (MQTT 5.0 §2.1:
fixed header, variable byte integer length) and hands a PUBACK's packet id straight to the
link with its reason code (which gmqtt ignored), every other packet to gmqtt as before. Pure:
bytes in, callbacks out.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["PUBACK", "split_packets"]

PUBACK = 0x40  # packet type 4, flags 0
_MAX_LENGTH_BYTES = 4


def split_packets(
    data: bytes,
    on_puback: Callable[[int, int], None],
    on_packet: Callable[[int, bytes], None],
) -> int:
    """Feed the complete packets at the start of ``data`` to the callbacks, in order: a PUBACK's
    packet id and reason code (MQTT 5.0 §3.4.2.1; 0 when absent, as always in 3.1.1) to
    ``on_puback``, any other packet's first byte and body to ``on_packet``. Returns
    the number of bytes consumed (the rest is an incomplete packet), or -1 when a remaining
    length runs over four bytes (a malformed stream: the connection must be dropped)."""
    size = len(data)
    pos = 0
    while size - pos >= 2:
        length = 0
        shift = 0
        index = pos + 1
        while True:
            if index >= size:
                return pos
            byte = data[index]
            index += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift >= 7 * _MAX_LENGTH_BYTES:
                return -1
        end = index + length
        if end > size:
            return pos
        command = data[pos]
        if command == PUBACK and length >= 2:
            reason = data[index + 2] if length > 2 else 0
            on_puback((data[index] << 8) | data[index + 1], reason)
        else:
            on_packet(command, data[index:end])
        pos = end
    return pos
