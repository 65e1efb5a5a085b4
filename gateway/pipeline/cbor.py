"""Strict, bounded decoding of untrusted CBOR (RFC 8949) and JSON (RFC 8259) payloads.

Both decoders raise only `PayloadError` (kind "bad_request"), whatever the input, and do work
and allocate memory in proportion to the input's length, never to a length the input declares.

CBOR is decoded in two passes. `_Scanner` walks the item structure over the raw bytes without
building anything: it checks every head and declared length against the bytes that are actually
left, and enforces the rules below. Only input that passes is handed to `cbor2.loads`, which
then builds the value (cbor2 alone would accept trailing bytes and duplicate keys, and trust
declared lengths). Most payloads never get there: `gateway.pipeline.cbor_onepass` decodes the
plain subset (no tags, definite lengths) in one pass under the same rules, and declines the rest
to this path. The rules, beyond well-formedness:

* exactly one top-level item: trailing bytes are an error;
* nesting (arrays and maps) at most ``max_depth`` deep;
* integers (and decimal-fraction parts) within the I-JSON range ±(2**53 - 1), so that every
  number is exact as an IEEE double, the type readings carry; floats must be finite;
* map keys are integers, text or byte strings (SenML-CBOR uses integer labels), never repeated;
* tags: only tag 4 (decimal fraction [exponent, mantissa] with integer parts, which RFC 8428 §6
  allows for SenML numbers; returned as a float), and tag 55799 (self-described CBOR) as a
  prefix of the whole payload; every other tag, bignums and epoch times included, is refused;
* simple values: only false, true and null (undefined and unassigned ones are refused);
* indefinite-length arrays and maps are allowed (SensML streams use them, RFC 8428 §6);
  indefinite-length byte and text strings are refused (no payload of ours needs them, and RFC
  8428 requires definite strings for vs and vd);
* text strings must be valid UTF-8.

`PayloadError` is defined here, the lowest module of the pipeline, so that every module can
raise it without an import cycle; `gateway.pipeline` and `gateway.pipeline.normalise` re-export
it and are where callers import it from.
"""

from __future__ import annotations

import json
import math
import re
import struct
from decimal import Decimal
from typing import Any, Final, Literal

import cbor2

from gateway.errors import GatewayError
from gateway.pipeline.cbor_onepass import NOT_PLAIN, decode_plain

__all__ = [
    "MAX_SAFE_INTEGER",
    "PayloadError",
    "PayloadErrorKind",
    "decode_cbor",
    "decode_json_strict",
]

PayloadErrorKind = Literal["bad_request", "unsupported_content_format", "too_large"]

MAX_DIAGNOSTIC: Final = 100
MAX_SAFE_INTEGER: Final = 2**53 - 1
"""Largest integer magnitude accepted: exactly representable as a double (I-JSON, RFC 7493)."""
MAX_DEPTH_LIMIT: Final = 64
"""Largest ``max_depth`` a caller may ask for."""
SELF_DESCRIBE_PREFIX: Final = b"\xd9\xd9\xf7"
_MAX_DECIMAL_EXPONENT: Final = 400
_TAG_DECIMAL_FRACTION: Final = 4
_UNSAFE_DIAGNOSTIC = re.compile(r"[^\x20-\x7e]")


class PayloadError(GatewayError):
    """A device payload the gateway refuses; front-ends map `kind` to their error response.

    ``kind`` is "bad_request" (CoAP 4.00), "unsupported_content_format" (4.15) or "too_large"
    (4.13). ``diagnostic`` is at most 100 printable ASCII characters and never contains more of
    the payload than a short quoted label, so it is safe to send back to the client.
    """

    def __init__(self, kind: PayloadErrorKind, diagnostic: str) -> None:
        safe = _UNSAFE_DIAGNOSTIC.sub("?", diagnostic)
        if len(safe) > MAX_DIAGNOSTIC:
            safe = safe[: MAX_DIAGNOSTIC - 3] + "..."
        super().__init__(f"{kind}: {safe}")
        self.kind: PayloadErrorKind = kind
        self.diagnostic: str = safe


def _bad(diagnostic: str) -> PayloadError:
    return PayloadError("bad_request", diagnostic)


def _check_max_depth(max_depth: int) -> None:
    if not 1 <= max_depth <= MAX_DEPTH_LIMIT:
        raise ValueError(f"max_depth must be 1..{MAX_DEPTH_LIMIT}, got {max_depth}")


# --------------------------------------------------------------------------------------- CBOR


class _Frame:
    """An open array or map: how many items are left (None: indefinite) and the keys seen."""

    __slots__ = ("items_done", "keys", "remaining")

    def __init__(self, remaining: int | None, is_map: bool) -> None:
        self.remaining = remaining
        self.items_done = 0
        self.keys: set[int | str | bytes] | None = set() if is_map else None


class _Scanner:
    """Validates the structure of one CBOR data item; see the module docstring for the rules."""

    def __init__(self, data: bytes, max_depth: int) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth
        self.stack: list[_Frame] = []

    def _need(self, count: int) -> None:
        if count > len(self.data) - self.pos:
            raise _bad("CBOR: truncated item")

    def _head(self) -> tuple[int, int, int | None]:
        """Read one initial byte and its argument: (major type, additional info, argument)."""
        self._need(1)
        initial = self.data[self.pos]
        self.pos += 1
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, info
        if info == 31:
            return major, info, None
        if info > 27:
            raise _bad("CBOR: reserved additional information")
        size = 1 << (info - 24)
        self._need(size)
        argument = int.from_bytes(self.data[self.pos : self.pos + size], "big")
        self.pos += size
        return major, info, argument

    def _integer(self, major: int, argument: int | None) -> int:
        if argument is None:
            raise _bad("CBOR: indefinite-length integer")
        value = argument if major == 0 else -1 - argument
        if abs(value) > MAX_SAFE_INTEGER:
            raise _bad("CBOR: integer outside +-(2**53-1)")
        return value

    def _string(self, major: int, argument: int | None) -> str | bytes:
        if argument is None:
            raise _bad("CBOR: indefinite-length string")
        self._need(argument)
        raw = self.data[self.pos : self.pos + argument]
        self.pos += argument
        if major == 2:
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("CBOR: text string is not valid UTF-8") from None

    def _float(self, info: int) -> None:
        size = {25: 2, 26: 4, 27: 8}[info]
        # _head already consumed the bytes as the argument; re-read them as a float.
        raw = self.data[self.pos - size : self.pos]
        value: float = struct.unpack({2: ">e", 4: ">f", 8: ">d"}[size], raw)[0]
        if not math.isfinite(value):
            raise _bad("CBOR: NaN or infinite float")

    def _decimal_fraction(self) -> None:
        """Tag 4 content: a two-element array of integers [exponent, mantissa]."""
        major, _, argument = self._head()
        if major != 4 or argument != 2:
            raise _bad("CBOR: decimal fraction is not [exponent, mantissa]")
        for part in ("exponent", "mantissa"):
            major, _, argument = self._head()
            if major not in (0, 1):
                raise _bad(f"CBOR: decimal fraction {part} is not an integer")
            value = self._integer(major, argument)
            if part == "exponent" and abs(value) > _MAX_DECIMAL_EXPONENT:
                raise _bad("CBOR: decimal fraction exponent out of range")

    def _open(self, major: int, argument: int | None) -> None:
        if len(self.stack) >= self.max_depth:
            raise _bad(f"CBOR: nested deeper than {self.max_depth}")
        is_map = major == 5
        if argument is not None:
            # Every item takes at least one byte: a count the remaining bytes cannot hold is a
            # lie, refused before anything is built for it.
            self._need(argument * 2 if is_map else argument)
            argument = argument * 2 if is_map else argument
        self.stack.append(_Frame(argument, is_map))

    def _key(self, major: int, argument: int | None) -> int | str | bytes:
        if major in (0, 1):
            return self._integer(major, argument)
        if major in (2, 3):
            return self._string(major, argument)
        raise _bad("CBOR: map key is not an integer or a string")

    def scan(self) -> None:
        """Walk exactly one item from the start of the data, then require the end of the data."""
        while True:
            frame = self.stack[-1] if self.stack else None
            major, info, argument = self._head()
            if major == 7 and info == 31:  # "break"
                if frame is None or frame.remaining is not None:
                    raise _bad("CBOR: unexpected break")
                if frame.keys is not None and frame.items_done % 2:
                    raise _bad("CBOR: map ends after a key")
                self.stack.pop()
            elif frame is not None and frame.keys is not None and frame.items_done % 2 == 0:
                key = self._key(major, argument)
                if key in frame.keys:
                    raise _bad("CBOR: duplicate map key")
                frame.keys.add(key)
            elif major in (0, 1):
                self._integer(major, argument)
            elif major in (2, 3):
                self._string(major, argument)
            elif major in (4, 5):
                self._open(major, argument)
                if argument != 0:
                    continue  # its items come next; an empty one is complete at once
                self.stack.pop()
            elif major == 6:
                if argument != _TAG_DECIMAL_FRACTION:
                    raise _bad(f"CBOR: tag {argument} is not allowed")
                self._decimal_fraction()
            elif info in (20, 21, 22):  # false, true, null
                pass
            elif info in (25, 26, 27):
                self._float(info)
            else:
                raise _bad("CBOR: simple value other than false/true/null")
            if self._item_done():
                break
        if self.pos != len(self.data):
            raise _bad("CBOR: trailing bytes after the item")

    def _item_done(self) -> bool:
        """Count a completed item in the open containers; True once the top-level item is done."""
        while self.stack:
            frame = self.stack[-1]
            frame.items_done += 1
            if frame.remaining is None or frame.items_done < frame.remaining:
                return False
            self.stack.pop()
        return True


def _decimals_to_floats(value: Any) -> Any:
    """Replace the Decimals cbor2 makes of tag 4 by floats (refusing those that overflow)."""
    if isinstance(value, Decimal):
        number = float(value)
        if not math.isfinite(number):
            raise _bad("CBOR: decimal fraction too large")
        return number
    if isinstance(value, list):
        return [_decimals_to_floats(item) for item in value]
    if isinstance(value, dict):
        return {key: _decimals_to_floats(item) for key, item in value.items()}
    return value


def decode_cbor(data: bytes, *, max_depth: int = 8) -> Any:
    """Decode one CBOR data item under the rules of this module; PayloadError otherwise.

    Maps become dicts, arrays lists, byte strings bytes, decimal fractions floats.
    """
    _check_max_depth(max_depth)
    body = data[len(SELF_DESCRIBE_PREFIX) :] if data.startswith(SELF_DESCRIBE_PREFIX) else data
    if not body:
        raise _bad("CBOR: empty payload")
    value = decode_plain(body, max_depth)
    if value is not NOT_PLAIN:
        return value
    return decode_cbor_scanned(body, max_depth)


def decode_cbor_scanned(body: bytes, max_depth: int) -> Any:
    """The full check: scan every item's head, then let cbor2 build the value."""
    _Scanner(body, max_depth).scan()
    try:
        value = cbor2.loads(body)
    except Exception as exc:  # the scanner should have caught it; never let cbor2's escape
        raise _bad("CBOR: undecodable item") from exc
    return _decimals_to_floats(value)


# --------------------------------------------------------------------------------------- JSON

_JSON_STRUCTURE = re.compile(r'["\\\[\]{}]')
_MAX_JSON_NUMBER_CHARS: Final = 40


def _json_depth_ok(text: str, max_depth: int) -> None:
    """Refuse nesting deeper than max_depth before json builds (or recurses into) anything."""
    depth = 0
    in_string = False
    skip_to = -1
    for match in _JSON_STRUCTURE.finditer(text):
        index = match.start()
        if index < skip_to:
            continue
        char = match.group()
        if in_string:
            if char == "\\":
                skip_to = index + 2
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise _bad(f"JSON: nested deeper than {max_depth}")
        elif char in "]}":
            depth -= 1


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _bad("JSON: duplicate object key")
        result[key] = value
    return result


def _json_int(text: str) -> int:
    if len(text) > _MAX_JSON_NUMBER_CHARS:
        raise _bad("JSON: integer outside +-(2**53-1)")
    value = int(text)
    if abs(value) > MAX_SAFE_INTEGER:
        raise _bad("JSON: integer outside +-(2**53-1)")
    return value


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _bad("JSON: number too large")
    return value


def _json_constant(text: str) -> Any:
    raise _bad(f"JSON: {text} is not allowed")


def _check_strings(value: Any) -> None:
    """Refuse lone surrogates (from \\ud800-style escapes): they are not Unicode text."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            strings = [item]
        elif isinstance(item, dict):
            strings = list(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
            continue
        else:
            continue
        for text in strings:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise _bad("JSON: string with a lone surrogate") from None


def decode_json_strict(data: bytes, *, max_depth: int = 8) -> Any:
    """Decode UTF-8 JSON text; duplicate keys, NaN/Infinity, out-of-range numbers, trailing
    data, nesting deeper than max_depth and invalid UTF-8 raise PayloadError."""
    _check_max_depth(max_depth)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("JSON: not valid UTF-8") from None
    _json_depth_ok(text, max_depth)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_json_object,
            parse_int=_json_int,
            parse_float=_json_float,
            parse_constant=_json_constant,
        )
    except PayloadError:
        raise
    except (ValueError, RecursionError) as exc:
        raise _bad("JSON: invalid document") from exc
    _check_strings(value)
    return value
