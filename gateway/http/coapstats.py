"""CoAP traffic figures derived at scrape time from the CoAP server's counters.

The fast path counts outcomes, not datagrams (no per-datagram work is added for metrics), so
datagrams in and out and requests by response code are sums over the counters each branch of
`gateway.coap.server` already keeps. `tests/unit/test_http_coapstats.py` drives a server through
every branch and checks these sums against what went over its transport.

Device ingest outcomes are counted by `DeviceIngest` on both paths (``ingest_<kind>``); the
general path also counts every response it sends to a request (``general_response_<code>``) and
which of those came from DeviceIngest (``general_ingest_<code>``), so fast-path ingest answers
are the difference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from gateway.coap.message import (
    BAD_OPTION,
    BAD_REQUEST,
    CHANGED,
    INTERNAL_SERVER_ERROR,
    PROXY_SCHEME,
    PROXY_URI,
    PROXYING_NOT_SUPPORTED,
    REQUEST_ENTITY_TOO_LARGE,
    SERVICE_UNAVAILABLE,
    UNSUPPORTED_CONTENT_FORMAT,
)

__all__ = ["CoapTraffic", "coap_traffic", "code_text"]

INGEST_CODES: Final[Mapping[str, int]] = {
    "ingest_ok": CHANGED,
    "ingest_bad_request": BAD_REQUEST,
    "ingest_unsupported_content_format": UNSUPPORTED_CONTENT_FORMAT,
    "ingest_too_large": REQUEST_ENTITY_TOO_LARGE,
    "ingest_overloaded": SERVICE_UNAVAILABLE,
    "ingest_not_stored": SERVICE_UNAVAILABLE,
    "ingest_normalise_failed": INTERNAL_SERVER_ERROR,
    "ingest_ingest_failed": INTERNAL_SERVER_ERROR,
    "ingest_ingest_cancelled": INTERNAL_SERVER_ERROR,
    "ingest_summary_failed": INTERNAL_SERVER_ERROR,
}
"""DeviceIngest's outcome counters and the response code each one stands for."""

# drop_* counters that are not a received datagram's fate (counted after another counter, or
# not about a received datagram at all).
_NOT_RECEIVED_DROPS: Final = frozenset(
    {"drop_general_closed", "drop_general_unparsable", "drop_deferred_closed"}
)


@dataclass(frozen=True, slots=True)
class CoapTraffic:
    received: dict[str, int]  # type of handling -> datagrams; they sum to all received
    sent: dict[str, int]  # type -> datagrams; they sum to all sent
    requests: dict[str, int]  # response code ("2.04") -> requests answered with it


def code_text(code: int) -> str:
    """A CoAP code as RFC 7252 writes it: 69 -> "2.05"."""
    return f"{code >> 5}.{code & 31:02d}"


def _sum(counters: Mapping[str, int], prefix: str, exclude: frozenset[str] = frozenset()) -> int:
    return sum(v for k, v in counters.items() if k.startswith(prefix) and k not in exclude)


def _prefixed_codes(counters: Mapping[str, int], prefix: str) -> Counter[int]:
    out: Counter[int] = Counter()
    for key, value in counters.items():
        if key.startswith(prefix) and key[len(prefix):].isdigit():
            out[int(key[len(prefix):])] += value
    return out


def _bad_option_codes(counters: Mapping[str, int]) -> Counter[int]:
    out: Counter[int] = Counter()
    for option, value in _prefixed_codes(counters, "bad_option_").items():
        proxy = option in (PROXY_URI, PROXY_SCHEME)
        out[PROXYING_NOT_SUPPORTED if proxy else BAD_OPTION] += value
    return out


def coap_traffic(counters: Mapping[str, int]) -> CoapTraffic:
    """Datagrams received and sent by type, and requests by response code."""
    c = Counter(counters)
    ingest: Counter[int] = Counter()
    for key, code in INGEST_CODES.items():
        ingest[code] += c[key]
    fast_ingest = ingest - _prefixed_codes(c, "general_ingest_")
    direct = _bad_option_codes(c)
    direct[SERVICE_UNAVAILABLE] += c["general_shed_503"]
    requests = fast_ingest + direct + _prefixed_codes(c, "general_response_")
    rejected = sum(direct.values())
    received = {
        "fast_path": c["fast_path"],
        "general": c["general_datagrams"],
        "duplicate": c["duplicate_con_answered"] + c["duplicate_non_ignored"],
        "ping": c["ping_answered"],
        "rejected": rejected,
        "dropped": _sum(c, "drop_", _NOT_RECEIVED_DROPS) + c["internal_error"],
    }
    # A fast-path answer goes out now, later as a NON/piggybacked response, or (after an empty
    # ACK) as a separate response that aiocoap sends (counted in general_sent); answers whose
    # socket was gone are not sent.
    fast_answers = (
        sum(fast_ingest.values()) - c["separate_response_sent"] - c["drop_deferred_closed"]
    )
    sent = {
        "response": max(0, fast_answers) + c["duplicate_con_answered"] + rejected,
        "empty_ack": c["empty_ack_sent"],
        "reset": c["ping_answered"] + c["rst_malformed"] + c["rst_reserved_code"],
        "general": c["general_sent"],
    }
    return CoapTraffic(
        received=received,
        sent=sent,
        requests={code_text(code): n for code, n in sorted(requests.items()) if n > 0},
    )
