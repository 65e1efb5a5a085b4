"""Length-prefixed CBOR frames between the gateway and its recogniser worker process."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import cbor2

__all__ = ["HEADER", "MAX_FRAME", "FrameDecoder", "FrameError", "encode_frame"]

MAX_FRAME = 16 << 20
HEADER = struct.Struct(">I")


class FrameError(ValueError):
    """A frame that is too large or does not decode: the peer is not speaking the protocol."""


def encode_frame(value: object) -> bytes:
    body = cbor2.dumps(value)
    if len(body) > MAX_FRAME:
        raise FrameError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(len(body)) + body


class FrameDecoder:
    """Bytes in (any split), decoded frames out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Any]:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer)
            if size > MAX_FRAME:
                raise FrameError(f"frame of {size} bytes exceeds {MAX_FRAME}")
            end = HEADER.size + size
            if len(buffer) < end:
                return
            body = bytes(buffer[HEADER.size:end])
            del buffer[:end]
            try:
                yield cbor2.loads(body)
            except (cbor2.CBORDecodeError, ValueError) as exc:
                raise FrameError(f"undecodable frame: {exc}") from exc
