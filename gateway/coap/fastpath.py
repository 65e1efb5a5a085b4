"""Which requests the fast path answers by itself. Sans-IO.

The fast path takes only the common case: a CON or NON POST to ``devices/{id}/telemetry`` or
``devices/{id}/command`` whose options are limited to Uri-Host, Uri-Port, Uri-Path and
Content-Format. Anything else (Block1/Block2, Observe, OSCORE, Accept, Uri-Query, No-Response,
a critical option we do not know, an odd device id) is declined, with a short reason, and goes
to the general aiocoap-based path, which implements the rest of CoAP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from gateway.coap.message import (
    ACCEPT,
    BLOCK1,
    BLOCK2,
    CONTENT_FORMAT,
    NON,
    POST,
    URI_HOST,
    URI_PATH,
    URI_PORT,
    URI_QUERY,
    Message,
)

__all__ = [
    "SUPPORTED_CRITICAL",
    "FastRequest",
    "Kind",
    "classify",
    "unsupported_critical",
    "valid_device_id",
]

Kind = Literal["telemetry", "command"]

_KINDS: Final[dict[bytes, Kind]] = {b"telemetry": "telemetry", b"command": "command"}
_DEVICES: Final = b"devices"
_ROUTING_OPTIONS: Final = frozenset({URI_HOST, URI_PORT})
SUPPORTED_CRITICAL: Final = frozenset(
    {URI_HOST, URI_PORT, URI_PATH, URI_QUERY, ACCEPT, BLOCK2, BLOCK1}
)
"""Critical (odd-numbered, RFC 7252 §5.4.1) options the server acts on. Any other critical
option in a request - If-Match, If-None-Match, OSCORE, Proxy-Uri, Q-Block, EDHOC, unknown
ones - means the request cannot be served as asked: 4.02 Bad Option (5.05 for the proxy
options, §5.7.2), instead of aiocoap's silent ignoring."""


# Not frozen: one is built per request, and a frozen dataclass sets each field through
# object.__setattr__ (mypyc also leaves its __init__ interpreted). Treat it as immutable.
@dataclass(slots=True)
class FastRequest:
    """What the fast path needs from a request it accepted."""

    kind: Kind
    device_id: str
    content_format: int | None


def valid_device_id(device_id: str) -> bool:
    """A device id that can be one MQTT topic level: not empty, no '/', '+', '#' or NUL."""
    # Spelled out: any() over a generator builds a generator object per request.
    return (
        device_id != ""
        and "/" not in device_id
        and "+" not in device_id
        and "#" not in device_id
        and "\x00" not in device_id
    )


def classify(message: Message) -> FastRequest | str:
    """A FastRequest, or the reason (a short token for counters) to use the general path."""
    if message.code != POST:
        return "method"
    if message.mtype > NON:  # ACK or RST
        return "type"
    path: list[bytes] = []
    content_format: int | None = None
    for number, value in message.options:
        if number == URI_PATH:
            path.append(value)
        elif number == CONTENT_FORMAT:
            if content_format is not None or len(value) > 2:
                return "content_format_option"
            content_format = int.from_bytes(value, "big")
        elif number not in _ROUTING_OPTIONS:
            return f"option_{number}"
    if len(path) != 3 or path[0] != _DEVICES:
        return "path"
    kind = _KINDS.get(path[2])
    if kind is None:
        return "path"
    try:
        device_id = path[1].decode("utf-8")
    except UnicodeDecodeError:
        return "device_id"
    if not valid_device_id(device_id):
        return "device_id"
    return FastRequest(kind, device_id, content_format)


def unsupported_critical(message: Message) -> int | None:
    """The first critical option of `message` the server does not act on (§5.4.1), or None."""
    for number, _value in message.options:
        if number & 1 and number not in SUPPORTED_CRITICAL:
            return number
    return None
