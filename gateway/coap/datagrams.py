"""The CoAP socket's datagram protocol: our own fast path, the general path behind it. Sync.

Every datagram is parsed by our codec (`gateway.coap.message`). The common case, a CON or NON
POST of telemetry or a command to ``devices/{id}/...`` (see `gateway.coap.fastpath`), is
answered right here: de-duplicated by message id (RFC 7252 §4.5), normalised, handed to
``pipeline.ingest`` and answered with a piggybacked ACK (CON) or a NON response, all inside
``datagram_received``. Every other datagram is handed to the general path (aiocoap,
`gateway.coap.general`), which the server (`gateway.coap.server`) attaches once it runs.

Nothing a client sends can raise out of ``datagram_received``: malformed messages are counted by
reason and, for CON, rejected with RST (§4.2); NON, ACK and RST ones are dropped silently
(§4.3, §4.2). ``counters`` counts every drop and every answer.

No coroutines here: this module is on the mypyc-compiled hot path (setup.py), and the server's
asynchronous lifecycle stays interpreted.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from struct import Struct
from typing import Final, cast

import structlog

from gateway.coap.bucket import LogThrottle, TokenBucket
from gateway.coap.dedup import DedupCache
from gateway.coap.fastpath import FastRequest, classify, unsupported_critical
from gateway.coap.general import GeneralPath
from gateway.coap.handler import DeviceIngest, Later, Outcome
from gateway.coap.message import (
    ACK,
    BAD_OPTION,
    CHANGED,
    CON,
    EMPTY,
    MAX_AGE,
    NON,
    PROXY_SCHEME,
    PROXY_URI,
    PROXYING_NOT_SUPPORTED,
    SERVICE_UNAVAILABLE,
    MalformedMessage,
    Message,
    decode,
    encode_options,
    encode_uint,
    reset_for,
)
from gateway.mqttsn.events import Address
from gateway.pipeline.normalise import CF_CBOR
from schemas.config import CoapConfig

__all__ = ["CoapDatagrams", "addr_text"]

log = structlog.get_logger(__name__)

_HEADER: Final = Struct("!BBH")
_CBOR_BODY: Final = b"\xc1\x3c\xff"  # Content-Format (delta 12, length 1) = 60, payload marker
_ACK_FIRST: Final = 0x40 | (ACK << 4)
_NON_FIRST: Final = 0x40 | (NON << 4)
_RESERVED_CLASSES: Final = frozenset({1, 3, 6, 7})  # §3: classes other than 0, 2, 4, 5


@dataclass(eq=False, slots=True)
class _Pending:
    """A fast-path request whose answer comes later (see CoapDatagrams._defer)."""

    message: Message
    key: tuple[Address, int]
    addr: Address
    timer: asyncio.TimerHandle | None = None
    acked: bool = False


def addr_text(addr: Address) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in str(addr[0]) else f"{addr[0]}:{addr[1]}"


def _discard(_data: bytes, _addr: Address) -> None:
    return None


class CoapDatagrams:
    """The datagram protocol of the CoAP socket (asyncio calls it directly)."""

    def __init__(
        self,
        config: CoapConfig,
        ingest: DeviceIngest,
        counters: Counter[str],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.config = config
        self.counters = counters
        self.ingest = ingest
        self.general: GeneralPath | None = None  # attached by the server once aiocoap runs
        self._loop = loop
        self._transport: asyncio.DatagramTransport | None = None
        self._sendto: Callable[[bytes, Address], None] = _discard
        self._dedup = DedupCache(config.dedup_capacity, config.exchange_lifetime)
        self._bucket = TokenBucket(config.slow_path_rate, config.slow_path_burst, loop.time())
        self._throttle = LogThrottle()
        self._pending: set[_Pending] = set()
        self._overload_options = encode_options([(MAX_AGE, encode_uint(config.overload_max_age))])

    @property
    def transport(self) -> asyncio.DatagramTransport | None:
        return self._transport

    @property
    def dedup_entries(self) -> int:
        return len(self._dedup)

    def send(self, data: bytes, addr: Address) -> None:
        self._sendto(data, addr)

    def forget_pending(self) -> None:
        """At close: answers still on their way are not sent (their timers are cancelled)."""
        for pending in self._pending:
            if pending.timer is not None:
                pending.timer.cancel()
        self._pending.clear()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._sendto = self._transport.sendto

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._sendto = _discard

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable from a vanished client) cannot be mapped to a remote.
        self.counters["socket_errors"] += 1

    def datagram_received(self, data: bytes, addr: Address) -> None:
        try:
            self._datagram(data, addr)
        except Exception:  # never let one datagram take the socket down
            self.counters["internal_error"] += 1
            suppressed = self._throttle.allow("coap_datagram_failed", self._loop.time())
            if suppressed is not None:
                log.exception("coap_datagram_failed", remote=addr_text(addr),
                              suppressed=suppressed)

    def _datagram(self, data: bytes, addr: Address) -> None:
        counters = self.counters
        try:
            message = decode(data)
        except MalformedMessage as exc:
            self._malformed(exc, addr)
            return
        code = message.code
        mtype = message.mtype
        if 0 < code < 32:  # a request (class 0, not Empty)
            if mtype > NON:
                counters["drop_request_in_ack_or_rst"] += 1
                return
            now = self._loop.time()
            key = (addr, message.mid)
            seen, cached = self._dedup.lookup(key, now)
            if seen:
                if mtype == CON and cached is not None:
                    self._sendto(cached, addr)
                    counters["duplicate_con_answered"] += 1
                else:
                    counters["duplicate_non_ignored"] += 1
                return
            fast = classify(message)
            if isinstance(fast, FastRequest):
                self._answer(message, fast, key, addr, now)
                return
            counters["general_" + fast] += 1
            critical = unsupported_critical(message)
            if critical is not None:
                self._bad_option(message, critical, key, addr, now)
                return
            if not self._bucket.take(now):
                self._shed(message, key, addr, now)
                return
        elif code == EMPTY:
            if mtype == CON:  # CoAP ping (§4.3): answered with RST
                self._sendto(reset_for(message.mid), addr)
                counters["ping_answered"] += 1
                return
            if mtype == NON:  # §4.3: a NON is never Empty
                counters["drop_empty_non"] += 1
                return
            # Empty ACK / RST: aiocoap matches them to its CON notifications.
        elif code >> 5 in _RESERVED_CLASSES:
            counters["drop_reserved_code"] += 1
            if mtype == CON:
                self._sendto(reset_for(message.mid), addr)
                counters["rst_reserved_code"] += 1
            return
        elif mtype < ACK and not self._bucket.take(self._loop.time()):  # CON/NON response
            counters["drop_general_shed"] += 1
            return
        general = self.general
        if general is None:
            counters["drop_not_started"] += 1
            return
        counters["general_datagrams"] += 1
        general.receive(data, addr)

    def _answer(
        self, message: Message, fast: FastRequest, key: tuple[Address, int], addr: Address,
        now: float,
    ) -> None:
        outcome = self.ingest.handle(
            fast.kind, fast.device_id, message.payload, fast.content_format
        )
        self.counters["fast_path"] += 1
        if isinstance(outcome, Outcome):
            data = self._response(message, outcome)
            self._sendto(data, addr)
            self._dedup.remember(key, data if message.mtype == CON else None, now)
        else:
            self._defer(message, outcome, key, addr, now)

    def _response(self, message: Message, outcome: Outcome) -> bytes:
        """The piggybacked ACK (CON) or the NON response (NON) carrying `outcome`."""
        token = message.token
        if message.mtype == CON:
            head = _HEADER.pack(_ACK_FIRST | len(token), outcome.code, message.mid)
        else:
            general = self.general
            mid = general.next_message_id() if general is not None else 0
            head = _HEADER.pack(_NON_FIRST | len(token), outcome.code, mid)
        if outcome.code == CHANGED and outcome.content_format == CF_CBOR:
            return head + token + _CBOR_BODY + outcome.payload
        data = head + token + encode_options(outcome.options())
        if outcome.payload:
            data += b"\xff" + outcome.payload
        return data

    # ---------------------------------------------------------- answers that come later
    def _defer(
        self, message: Message, later: Later, key: tuple[Address, int], addr: Address,
        now: float,
    ) -> None:
        """RFC 7252 §5.2.2: wait `empty_ack_delay` for a piggybacked answer, else send an empty
        ACK now and the answer later as a separate CON response (NON: a NON response).

        While what the request carried is not yet safe upstream (`later.safe`), nothing is
        acknowledged: the empty-ACK clock starts only once it is; a client retransmitting
        meanwhile is ignored as a duplicate and gets the answer when it comes.
        """
        self._dedup.remember(key, None, now)  # a duplicate meanwhile is ignored (§4.5)
        pending = _Pending(message, key, addr)
        if message.mtype == CON:
            safe = later.safe
            if safe is None:
                self._arm_empty_ack(pending)
            else:
                safe.add_done_callback(partial(self._safe_done, pending, later.outcome))
        self._pending.add(pending)
        later.outcome.add_done_callback(partial(self._deferred_done, pending))

    def _arm_empty_ack(self, pending: _Pending) -> None:
        pending.timer = self._loop.call_later(
            self.config.empty_ack_delay, self._empty_ack, pending
        )

    def _safe_done(
        self, pending: _Pending, outcome: asyncio.Future[Outcome], _safe: asyncio.Future[None]
    ) -> None:
        if not outcome.done() and pending in self._pending:
            self._arm_empty_ack(pending)

    def _empty_ack(self, pending: _Pending) -> None:
        pending.timer = None
        pending.acked = True
        ack = _HEADER.pack(_ACK_FIRST, EMPTY, pending.message.mid)
        self._sendto(ack, pending.addr)
        self._dedup.remember(pending.key, ack, self._loop.time())  # duplicates get the ACK
        self.counters["empty_ack_sent"] += 1

    def _deferred_done(self, pending: _Pending, future: asyncio.Future[Outcome]) -> None:
        self._pending.discard(pending)
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None
        if future.cancelled() or self._transport is None:
            self.counters["drop_deferred_closed"] += 1
            return
        outcome = future.result()
        message = pending.message
        if message.mtype != CON or not pending.acked:
            data = self._response(message, outcome)
            self._sendto(data, pending.addr)
            if message.mtype == CON:
                self._dedup.remember(pending.key, data, self._loop.time())
            self.counters["deferred_answered"] += 1
            return
        general = self.general
        if general is None:
            self.counters["drop_deferred_closed"] += 1
            return
        general.send_separate(
            pending.addr, message.token, outcome.code, outcome.payload, outcome.options()
        )
        self.counters["separate_response_sent"] += 1

    def _direct_reply(
        self, message: Message, key: tuple[Address, int], addr: Address, now: float,
        *, code: int, options: bytes, diagnostic: bytes,
    ) -> None:
        """Answer a CON request here with a piggybacked ACK, remembered for duplicates."""
        token = message.token
        data = (
            _HEADER.pack(_ACK_FIRST | len(token), code, message.mid)
            + token + options + b"\xff" + diagnostic
        )
        self._sendto(data, addr)
        self._dedup.remember(key, data, now)

    def _shed(self, message: Message, key: tuple[Address, int], addr: Address, now: float) -> None:
        """The general path is over its rate: 5.03 with Max-Age for CON, silence for NON."""
        if message.mtype != CON:
            self.counters["drop_general_shed"] += 1
            return
        self._direct_reply(
            message, key, addr, now,
            code=SERVICE_UNAVAILABLE, options=self._overload_options, diagnostic=b"overloaded",
        )
        self.counters["general_shed_503"] += 1

    def _bad_option(
        self, message: Message, option: int, key: tuple[Address, int], addr: Address,
        now: float,
    ) -> None:
        """§5.4.1: an unsupported critical option: 4.02 (5.05 for Proxy-*) for CON, NON is
        rejected silently."""
        if message.mtype != CON:
            self.counters["drop_non_bad_option"] += 1
            return
        if option in (PROXY_URI, PROXY_SCHEME):
            code, diagnostic = PROXYING_NOT_SUPPORTED, b"not a proxy"
        else:
            code, diagnostic = BAD_OPTION, f"option {option} not supported".encode()
        self._direct_reply(message, key, addr, now, code=code, options=b"", diagnostic=diagnostic)
        self.counters[f"bad_option_{option}"] += 1

    def _malformed(self, exc: MalformedMessage, addr: Address) -> None:
        """§4.2: reject a CON with RST; §4.3 / §3: NON, ACK, RST and other versions: drop."""
        counters = self.counters
        counters["drop_malformed_" + exc.reason] += 1
        if exc.mtype == CON and exc.mid is not None and exc.reason != "bad_version":
            self._sendto(reset_for(exc.mid), addr)
            counters["rst_malformed"] += 1
        suppressed = self._throttle.allow("coap_malformed", self._loop.time())
        if suppressed is not None:
            log.info("coap_malformed", remote=addr_text(addr), reason=exc.reason,
                     suppressed=suppressed)
