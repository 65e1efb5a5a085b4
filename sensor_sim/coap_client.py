"""A simulated CoAP device on its own UDP socket, speaking through gateway.coap.message.

CON requests are retransmitted as RFC 7252 §4.2 says: the first timeout is random in
[ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR], doubled after each of MAX_RETRANSMIT re-sends.
An empty ACK means a separate response follows (matched by token; a CON one is ACKed).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from gateway.coap.message import (
    ACK,
    CON,
    CONTENT_FORMAT,
    EMPTY,
    NON,
    POST,
    RST,
    URI_PATH,
    MalformedMessage,
    Message,
    code_text,
    decode,
    encode,
    encode_uint,
)
from sensor_sim.report import Counts

ACK_RANDOM_FACTOR = 1.5
Address = tuple[str, int]


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, client: CoapClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.client.received(data)

    def error_received(self, exc: Exception) -> None:
        self.client.errors[f"socket_{type(exc).__name__}"] += 1


class CoapClient:
    def __init__(self, gateway: Address, *, ack_timeout: float, max_retransmit: int,
                 errors: Any, rng: random.Random) -> None:
        self.gateway = gateway
        self.ack_timeout = ack_timeout
        self.max_retransmit = max_retransmit
        self.errors = errors
        self.rng = rng
        self.transport: asyncio.DatagramTransport | None = None
        self._mid = rng.randrange(0x10000)
        self._token = rng.randrange(1 << 32)
        self._by_mid: dict[int, asyncio.Future[Message]] = {}
        self._by_token: dict[bytes, asyncio.Future[Message]] = {}
        self._settled: set[int] = set()
        self.duplicate_answers = 0
        self.last_rtt = 0.0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self), remote_addr=self.gateway
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _ids(self) -> tuple[int, bytes]:
        self._mid = (self._mid + 1) & 0xFFFF
        self._token = (self._token + 1) & 0xFFFFFFFF
        return self._mid, self._token.to_bytes(4, "big")

    async def post(self, path: str, payload: bytes, content_format: int, confirmable: bool,
                   counts: Counts) -> str:
        """POST once and settle it: the outcome name ("acked", "rejected", ...)."""
        assert self.transport is not None
        mid, token = self._ids()
        options = [(URI_PATH, part.encode()) for part in path.split("/")]
        options.append((CONTENT_FORMAT, encode_uint(content_format)))
        datagram = encode(Message(CON if confirmable else NON, POST, mid, token,
                                  tuple(options), payload))
        counts.sent += 1
        if not confirmable:
            self.transport.sendto(datagram)
            counts.unconfirmed += 1
            return "unconfirmed"
        loop = asyncio.get_running_loop()
        ack: asyncio.Future[Message] = loop.create_future()
        response: asyncio.Future[Message] = loop.create_future()
        self._by_mid[mid] = ack
        self._by_token[token] = response
        started = time.monotonic()
        timeout = self.rng.uniform(self.ack_timeout, self.ack_timeout * ACK_RANDOM_FACTOR)
        try:
            for attempt in range(self.max_retransmit + 1):
                if attempt:
                    counts.retransmitted += 1
                self.transport.sendto(datagram)
                try:
                    answer = await asyncio.wait_for(asyncio.shield(ack), timeout)
                    break
                except TimeoutError:
                    timeout *= 2
            else:
                counts.lost += 1
                self.errors["coap_timeout"] += 1
                return "lost"
            if answer.mtype == RST:
                counts.rejected += 1
                self.errors["coap_reset"] += 1
                return "rejected"
            if answer.code == EMPTY:  # separate response follows
                try:
                    answer = await asyncio.wait_for(response, 2 * self.ack_timeout * 8)
                except TimeoutError:
                    counts.lost += 1
                    self.errors["coap_no_separate_response"] += 1
                    return "lost"
        finally:
            self._by_mid.pop(mid, None)
            self._by_token.pop(token, None)
            self._settled.add(mid)
            if len(self._settled) > 4096:
                self._settled.clear()
        if answer.code >> 5 != 2:
            counts.rejected += 1
            self.errors[f"coap_{code_text(answer.code)}"] += 1
            return "rejected"
        counts.acked += 1
        self.last_rtt = time.monotonic() - started
        return "acked"

    def received(self, data: bytes) -> None:
        try:
            message = decode(data)
        except MalformedMessage as exc:
            self.errors[f"coap_malformed_{exc.reason}"] += 1
            return
        assert self.transport is not None
        if message.mtype in (ACK, RST):
            future = self._by_mid.get(message.mid)
            if future is not None and not future.done():
                future.set_result(message)
            elif message.mid in self._settled:
                self.duplicate_answers += 1
            return
        if message.mtype == CON:
            self.transport.sendto(encode(Message(ACK, EMPTY, message.mid)))
        waiting = self._by_token.get(message.token)
        if waiting is not None and not waiting.done():
            waiting.set_result(message)
