"""The general path: an aiocoap server Context that shares our one UDP socket.

aiocoap's UDP transports want to own a socket (and bind it with SO_REUSEPORT). Here aiocoap
gets a message interface of our own instead: the datagrams the fast path declines are injected
into aiocoap's message manager (`receive`), and whatever aiocoap sends (piggybacked and
separate responses, CON notifications with their retransmissions, RSTs, empty ACKs) goes out
through our socket to the same client address (`_Remote.send`). The Context is assembled the
way aiocoap assembles its own UDP server contexts: TokenManager -> MessageManager -> interface.

Everything aiocoap-specific and version-sensitive lives in this module.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import aiocoap
from aiocoap import error as aiocoap_error
from aiocoap import interfaces as aiocoap_interfaces
from aiocoap.messagemanager import MessageManager
from aiocoap.numbers.constants import MAX_REGULAR_BLOCK_SIZE_EXP, TransportTuning
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.tokenmanager import TokenManager
from aiocoap.util import hostportjoin

from gateway.mqttsn.events import Address

__all__ = ["AIOCOAP_LOGGER", "GeneralPath"]

AIOCOAP_LOGGER: Final = "gateway.coap.aiocoap"
COAP_PORT: Final = 5683

SendTo = Callable[[bytes, Address], None]


class _Remote(aiocoap_interfaces.EndpointAddress):  # type: ignore[misc]
    """A client address as aiocoap sees it: hashable by socket address, sends via our socket."""

    __slots__ = ("_path", "sockaddr")

    is_multicast = False
    is_multicast_locally = False
    scheme = "coap"
    maximum_block_size_exp = MAX_REGULAR_BLOCK_SIZE_EXP

    def __init__(self, path: GeneralPath, sockaddr: Address) -> None:
        self._path = path
        self.sockaddr = sockaddr

    def __hash__(self) -> int:
        return hash(self.sockaddr)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Remote)
            and other.sockaddr == self.sockaddr
            and other._path is self._path
        )

    def __repr__(self) -> str:
        return f"<coap remote {self.hostinfo}>"

    def send(self, data: bytes) -> None:
        self._path.send(data, self.sockaddr)

    @property
    def hostinfo(self) -> str:
        host, port = self.sockaddr[0], self.sockaddr[1]
        return str(hostportjoin(host, None if port == COAP_PORT else port))

    @property
    def hostinfo_local(self) -> str:
        return self._path.hostinfo_local

    @property
    def uri_base(self) -> str:
        return "coap://" + self.hostinfo

    @property
    def uri_base_local(self) -> str:
        return "coap://" + self.hostinfo_local

    @property
    def blockwise_key(self) -> Address:
        return self.sockaddr


class _Sent:
    """What aiocoap keeps of a sent response to answer duplicates with: just the datagram.

    aiocoap's MessageManager holds every response (with its request, options and payload) for
    EXCHANGE_LIFETIME in case the request is retransmitted; that is ~1.1 kB per request. This
    stand-in has what its duplicate handling reads (remote, mid, mtype, encode()): ~0.4 kB.
    """

    __slots__ = ("_data", "mid", "mtype", "remote")

    def __init__(self, remote: Any, mid: int, mtype: Any, data: bytes) -> None:
        self.remote = remote
        self.mid = mid
        self.mtype = mtype
        self._data = data

    def encode(self) -> bytes:
        return self._data

    def __repr__(self) -> str:
        return f"<stored response {self.mtype} MID {self.mid} to {self.remote!r}>"


class _Interface(aiocoap_interfaces.MessageInterface):  # type: ignore[misc]
    """aiocoap's view of our socket: send encodes onto it; there is no socket to shut down."""

    def __init__(self, path: GeneralPath, mman: Any) -> None:
        self._path = path
        self._mman: Any = mman

    def send(self, message: Any) -> None:
        mman = self._mman
        if mman is None:
            return  # shutting down
        data = message.encode()
        message.remote.send(data)
        recent = getattr(mman, "_recent_messages", None)
        if recent is not None and not isinstance(message, _Sent):
            key = (message.remote, message.mid)
            if recent.get(key) is message:  # kept for duplicates: keep the bytes only
                recent[key] = _Sent(message.remote, message.mid, message.mtype, data)

    async def shutdown(self) -> None:
        self._mman = None

    async def determine_remote(self, message: Any) -> None:
        return None  # the gateway never originates CoAP requests

    async def recognize_remote(self, remote: Any) -> bool:
        return isinstance(remote, _Remote) and remote._path is self._path


def _option(number: int, value: bytes) -> Any:
    """An aiocoap option object from its wire value (as aiocoap's own decoder builds them)."""
    return OptionNumber(number).create_option(decode=value)


def _ignore() -> None:
    """The message-error monitor of a separate response: nothing to clean up on RST."""


class GeneralPath:
    """Owns the aiocoap Context; `receive` feeds it, `send` is our socket's sendto."""

    def __init__(
        self,
        send: SendTo,
        hostinfo_local: str,
        counters: Counter[str],
        *,
        exchange_lifetime: float = 247.0,
        empty_ack_delay: float = 0.1,
    ) -> None:
        self._send = send
        self.hostinfo_local = hostinfo_local
        self._counters = counters
        self._context: Any = None
        self._mman: Any = None
        # Read by aiocoap from each incoming request: how long its MID (and response) is kept
        # for duplicates, and how long a slow response may wait before an empty ACK.
        self._request_tuning = type(
            "RequestTuning",
            (TransportTuning,),
            {"EXCHANGE_LIFETIME": exchange_lifetime, "EMPTY_ACK_DELAY": empty_ack_delay},
        )()

    async def start(self, site: Any) -> None:
        """Build the server Context around `site` with our interface as its only transport."""
        logger = logging.getLogger(AIOCOAP_LOGGER)
        if logger.level == logging.NOTSET:
            # aiocoap logs every ping, duplicate and retransmission at INFO: one line per peer
            # action, which a misbehaving peer could turn into a log flood.
            logger.setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        context = aiocoap.Context(loop=loop, serversite=site, loggername=AIOCOAP_LOGGER)
        tman = TokenManager(context)
        mman = MessageManager(tman)
        mman.message_interface = _Interface(self, mman)
        tman.token_interface = mman
        context.request_interfaces.append(tman)
        self._context = context
        self._mman = mman

    async def close(self) -> None:
        context, self._context = self._context, None
        if context is not None:
            await context.shutdown()
        self._mman = None

    def send(self, data: bytes, addr: Address) -> None:
        self._counters["general_sent"] += 1
        self._send(data, addr)

    def receive(self, data: bytes, addr: Address) -> None:
        """One datagram from `addr` for aiocoap (the fast path already checked its format)."""
        mman = self._mman
        if mman is None:
            self._counters["drop_general_closed"] += 1
            return
        try:
            message = aiocoap.Message.decode(data, remote=_Remote(self, addr))
        except aiocoap_error.UnparsableMessage:
            self._counters["drop_general_unparsable"] += 1
            return
        message.transport_tuning = self._request_tuning
        mman.dispatch_message(message)

    def send_separate(
        self, addr: Address, token: bytes, code: int, payload: bytes,
        options: list[tuple[int, bytes]],
    ) -> None:
        """A separate response (RFC 7252 §5.2.2) as a CON that aiocoap retransmits until the
        client ACKs it (the ACK arrives through `receive`)."""
        mman = self._mman
        if mman is None:
            self._counters["drop_general_closed"] += 1
            return
        message = aiocoap.Message(code=aiocoap.Code(code), payload=payload)
        for number, value in options:
            message.opt.add_option(_option(number, value))
        message.mtype = aiocoap.CON
        message.token = token
        message.remote = _Remote(self, addr)
        mman.send_message(message, _ignore)

    def next_message_id(self) -> int:
        """A message id from the same sequence aiocoap uses, so that ids never collide."""
        mman = self._mman
        if mman is None:
            return 0
        mid: int = mman._next_message_id()
        return mid

    def pending_to(self, addr: Address) -> int:
        """CON messages (notifications) queued behind the one in flight to `addr` (NSTART 1)."""
        mman = self._mman
        if mman is None:
            return 0
        backlogs = getattr(mman, "_backlogs", None) or {}
        return len(backlogs.get(_Remote(self, addr), ()))
