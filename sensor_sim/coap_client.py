"""A simulated CoAP device on its own UDP socket, speaking through gateway.coap.message.

CON requests are retransmitted as RFC 7252 §4.2 says: the first timeout is random in
[ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR], doubled after each of MAX_RETRANSMIT re-sends.
An empty ACK means a separate response follows (matched by token; a CON one is ACKed).
An observer (RFC 7641) registers with GET + Observe=0 and then gets every notification with the
same token; a CON notification is ACKed, and one retransmitted (same message id) is not
handed on twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, deque
from collections.abc import Callable

from gateway.coap.message import (
    ACK,
    CON,
    CONTENT_FORMAT,
    EMPTY,
    GET,
    NON,
    OBSERVE,
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
from sensor_sim.endpoint import Address, Endpoint, expire
from sensor_sim.faults import FaultInjector
from sensor_sim.report import Counts

ACK_RANDOM_FACTOR = 1.5
OnNotification = Callable[[bytes, float], None]
RECENT_MEMORY = 16  # message ids remembered for duplicate answers and notifications


class CoapClient:
    def __init__(self, gateway: Address, *, ack_timeout: float, max_retransmit: int,
                 errors: Counter[str], rng: random.Random,
                 injector: FaultInjector | None = None) -> None:
        self.ack_timeout = ack_timeout
        self.max_retransmit = max_retransmit
        self.errors = errors
        self.rng = rng
        self.endpoint = Endpoint(gateway, self.received, errors, injector)
        self._mid = rng.randrange(0x10000)
        self._token = rng.randrange(1 << 32)
        self._by_mid: dict[int, asyncio.Future[Message | None]] = {}
        self._by_token: dict[bytes, asyncio.Future[Message | None]] = {}
        self._observers: dict[bytes, OnNotification] = {}
        self._options: dict[tuple[str, int], tuple[tuple[int, bytes], ...]] = {}
        self._settled: deque[int] = deque(maxlen=RECENT_MEMORY)
        self._recent: deque[int] = deque(maxlen=RECENT_MEMORY)
        self.duplicate_answers = 0
        self.duplicate_notifications = 0

    async def open(self) -> None:
        await self.endpoint.open()

    async def reopen(self) -> None:
        """A reboot: a new socket and fresh message ids and tokens."""
        self._mid = self.rng.randrange(0x10000)
        self._token = self.rng.randrange(1 << 32)
        for future in [*self._by_mid.values(), *self._by_token.values()]:
            future.cancel()
        await self.endpoint.reopen()

    def close(self) -> None:
        self.endpoint.close()

    def _ids(self) -> tuple[int, bytes]:
        self._mid = (self._mid + 1) & 0xFFFF
        self._token = (self._token + 1) & 0xFFFFFFFF
        return self._mid, self._token.to_bytes(4, "big")

    async def post(self, path: str, payload: bytes, content_format: int, confirmable: bool,
                   counts: Counts) -> str:
        """POST once and settle it: the outcome name ("acked", "rejected", ...)."""
        mid, token = self._ids()
        options = self._options.get((path, content_format))
        if options is None:
            options = (*((URI_PATH, part.encode()) for part in path.split("/")),
                       (CONTENT_FORMAT, encode_uint(content_format)))
            self._options[(path, content_format)] = options
        datagram = encode(Message(CON if confirmable else NON, POST, mid, token, options,
                                  payload))
        counts.sent += 1
        if not confirmable:
            self.endpoint.send(datagram)
            counts.unconfirmed += 1
            return "unconfirmed"
        answer = await self._exchange(datagram, mid, token, counts)
        if answer is None:
            counts.lost += 1
            return "lost"
        if answer.mtype == RST or answer.code >> 5 != 2:
            counts.rejected += 1
            kind = "reset" if answer.mtype == RST else code_text(answer.code)
            self.errors[f"coap_{kind}"] += 1
            return "rejected"
        counts.acked += 1
        return "acked"

    async def observe(self, path: str, on_notification: OnNotification) -> None:
        """Register as an observer of `path`; ConnectionError when the gateway declines."""
        mid, token = self._ids()
        options = ((OBSERVE, b""), *((URI_PATH, part.encode()) for part in path.split("/")))
        self._observers[token] = on_notification
        answer = await self._exchange(encode(Message(CON, GET, mid, token, options)), mid, token,
                                      Counts())
        if answer is None or answer.code >> 5 != 2 or answer.option(OBSERVE) is None:
            self._observers.pop(token, None)
            what = "no answer" if answer is None else code_text(answer.code)  # RST: 0.00
            raise ConnectionError(f"observe {path} refused: {what}")

    async def _exchange(self, datagram: bytes, mid: int, token: bytes,
                        counts: Counts) -> Message | None:
        """Send a CON request until ACKed; its response, or None when it never came."""
        loop = asyncio.get_running_loop()
        response: asyncio.Future[Message | None] = loop.create_future()
        self._by_token[token] = response
        timeout = self.rng.uniform(self.ack_timeout, self.ack_timeout * ACK_RANDOM_FACTOR)
        answer: Message | None = None
        try:
            for attempt in range(self.max_retransmit + 1):
                ack: asyncio.Future[Message | None] = loop.create_future()
                self._by_mid[mid] = ack
                if attempt:
                    counts.retransmitted += 1
                self.endpoint.send(datagram)
                timer = loop.call_later(timeout, expire, ack)
                answer = await ack
                timer.cancel()
                if answer is not None:
                    break
                timeout *= 2
            else:
                self.errors["coap_timeout"] += 1
                return None
            if answer.code == EMPTY and answer.mtype == ACK:  # separate response follows
                timer = loop.call_later(2 * self.ack_timeout * 8, expire, response)
                answer = await response
                timer.cancel()
                if answer is None:
                    self.errors["coap_no_separate_response"] += 1
            return answer
        finally:
            self._by_mid.pop(mid, None)
            self._by_token.pop(token, None)
            self._settled.append(mid)

    def received(self, data: bytes) -> None:
        try:
            message = decode(data)
        except MalformedMessage as exc:
            self.errors[f"coap_malformed_{exc.reason}"] += 1
            return
        if message.mtype in (ACK, RST):
            future = self._by_mid.get(message.mid)
            if future is not None and not future.done():
                future.set_result(message)
            elif message.mid in self._settled:
                self.duplicate_answers += 1
            return
        if message.mtype == CON:
            self.endpoint.send(encode(Message(ACK, EMPTY, message.mid)))
            if message.mid in self._recent:
                self.duplicate_notifications += 1
                return
            self._recent.append(message.mid)
        waiting = self._by_token.get(message.token)
        if waiting is not None and not waiting.done():
            waiting.set_result(message)
            return
        observer = self._observers.get(message.token)
        if observer is not None:
            if message.payload:
                observer(message.payload, time.monotonic())
        elif message.mtype == CON:  # a NON one answers a NON request: nobody waits for it
            self.errors["coap_unexpected_message"] += 1
