"""One-pass decoding of the plain CBOR subset that nearly every device payload uses.

`decode_plain` builds the value while it checks the rules of `gateway.pipeline.cbor` (see its
docstring), for items made only of definite-length arrays and maps, integers, byte and text
strings, floats, false, true and null. Anything else - a tag, an indefinite length, a reserved
or unassigned head, and every rule violation - returns `NOT_PLAIN`, and the caller hands the
payload to the full scanner, which accepts it or names the precise error. So for any input this
either returns exactly what the scanner + cbor2 would return, or declines.

It replaces "decode with cbor2, then re-encode and compare bytes", which cost a full encode per
payload and declined every non-shortest encoding. Compiled with mypyc (setup.py HOT_PATH).
"""

from __future__ import annotations

import math
from struct import Struct
from typing import Any, Final

__all__ = ["NOT_PLAIN", "decode_plain"]

NOT_PLAIN: Final = object()
"""Returned when the payload needs the full scanner (outside the subset, or invalid)."""

_MAX_SAFE_INTEGER: Final = 2**53 - 1
_F16: Final = Struct(">e")
_F32: Final = Struct(">f")
_F64: Final = Struct(">d")


class _Decline(Exception):
    """Internal: leave this payload to the full scanner."""


class _Reader:
    __slots__ = ("data", "end", "max_depth", "pos")

    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.max_depth = max_depth

    def argument(self, info: int) -> int:
        """The head's argument for additional information 0-27 (1, 2, 4 or 8 bytes follow)."""
        if info < 24:
            return info
        if info > 27:  # reserved (28-30) or indefinite (31)
            raise _Decline
        size = 1 << (info - 24)
        pos = self.pos
        if size > self.end - pos:
            raise _Decline
        data = self.data
        self.pos = pos + size
        if size == 1:
            return data[pos]
        if size == 2:
            return (data[pos] << 8) | data[pos + 1]
        return int.from_bytes(data[pos : pos + size], "big")

    def integer(self, major: int, info: int) -> int:
        argument = self.argument(info)
        if major == 0:
            if argument > _MAX_SAFE_INTEGER:
                raise _Decline
            return argument
        if argument >= _MAX_SAFE_INTEGER:  # -1 - argument below -(2**53 - 1)
            raise _Decline
        return -1 - argument

    def raw(self, info: int) -> bytes:
        length = self.argument(info)
        pos = self.pos
        if length > self.end - pos:
            raise _Decline
        self.pos = pos + length
        return self.data[pos : pos + length]

    def text(self, info: int) -> str:
        try:
            return self.raw(info).decode("utf-8")
        except UnicodeDecodeError:
            raise _Decline from None

    def simple(self, info: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info == 22:
            return None
        if info == 25:
            struct = _F16
        elif info == 26:
            struct = _F32
        elif info == 27:
            struct = _F64
        else:
            raise _Decline
        pos = self.pos
        size = struct.size
        if size > self.end - pos:
            raise _Decline
        self.pos = pos + size
        value: float = struct.unpack_from(self.data, pos)[0]
        if not math.isfinite(value):
            raise _Decline
        return value

    def initial(self) -> int:
        """The next initial byte (major type in the top 3 bits, additional info below)."""
        pos = self.pos
        if pos >= self.end:
            raise _Decline
        self.pos = pos + 1
        return self.data[pos]

    def atom(self, major: int, info: int) -> int | str | bytes:
        """An integer (major 0, 1), byte string (2) or text string (3)."""
        if major <= 1:
            return self.integer(major, info)
        if major == 3:
            return self.text(info)
        return self.raw(info)

    def item(self, depth: int) -> Any:
        """One data item; ``depth`` is the number of containers already open around it."""
        initial = self.initial()
        major = initial >> 5
        info = initial & 0x1F
        if major <= 3:
            return self.atom(major, info)
        if major == 7:
            return self.simple(info)
        if major == 6 or depth >= self.max_depth:
            raise _Decline
        count = self.argument(info)
        if major == 4:
            if count > self.end - self.pos:  # every item takes at least one byte
                raise _Decline
            return [self.item(depth + 1) for _ in range(count)]
        if 2 * count > self.end - self.pos:
            raise _Decline
        mapping: dict[Any, Any] = {}
        for _ in range(count):
            initial = self.initial()
            if initial >> 5 > 3:  # map keys are integers or strings
                raise _Decline
            key = self.atom(initial >> 5, initial & 0x1F)
            if key in mapping:
                raise _Decline
            mapping[key] = self.item(depth + 1)
        return mapping


def decode_plain(body: bytes, max_depth: int) -> Any:
    """The value of ``body`` when it is one plain item obeying every rule, else NOT_PLAIN."""
    reader = _Reader(body, max_depth)
    try:
        value = reader.item(0)
    except _Decline:
        return NOT_PLAIN
    if reader.pos != reader.end:
        return NOT_PLAIN
    return value
