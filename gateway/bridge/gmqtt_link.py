"""The broker link on gmqtt (asyncio-native, MQTT v5 with a 3.1.1 fallback).

gmqtt is used only as a codec and a socket: each connection gets a fresh ``gmqtt.Client``
with its built-in reconnect disabled and clean start, so its own QoS replay never runs. This
module owns reconnect/backoff, the pending queue, the in-flight window (gmqtt raises
``OverflowError`` beyond the broker's Receive Maximum) and re-sending after a reconnect.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import gmqtt
import structlog
from gmqtt.mqtt.constants import MQTTv50, MQTTv311
from gmqtt.mqtt.package import Package

from gateway.bridge.link import (
    COUNTER_NAMES,
    EchoFilter,
    InboundHandler,
    InboundMessage,
    ResponseHandler,
    backoff_delays,
)
from gateway.bridge.packet_reader import split_packets
from gateway.bridge.publish_codec import encode_properties, encode_publish
from gateway.config import Settings
from gateway.errors import BrokerRefused, BrokerUnavailable, ConfigError
from gateway.topics import (
    add_mountpoint,
    strip_mountpoint,
    topic_matches,
    validate_filter,
    validate_mountpoint,
    validate_topic,
)

log = structlog.get_logger(__name__)

STATUS_TOPIC = "gateway/status"
CONNECT_TIMEOUT = 10.0
MAX_WRITE_BUFFER = 4 << 20  # bytes queued in the socket transport before QoS 0 is shed
MAX_PAYLOAD = (256 << 20) - (128 << 10)  # MQTT's 256 MiB packet limit minus header room
_FIRST_FAILURE_REASON = 0x80  # MQTT 5.0 §2.4: reason codes from 0x80 are failures
_REFUSED_PROTOCOL = frozenset({1, 132})  # CONNACK: unacceptable / unsupported protocol version


def _status(site: str, state: str, reason: str) -> bytes:
    return json.dumps(
        {"state": state, "site": site, "reason": reason}, separators=(",", ":")
    ).encode()


class _ConnectFailed(Exception):
    def __init__(self, reason: str, *, fallback: bool) -> None:
        super().__init__(reason)
        self.fallback = fallback  # worth retrying at once with MQTT 3.1.1


class _Client(gmqtt.Client):  # type: ignore[misc]  # gmqtt is untyped
    async def reconnect(self, delay: bool = False) -> None:
        """Disabled: the link reconnects with a fresh client and its own backoff."""


class _AckStore:
    """Duck-typed gmqtt ``PersistentStorage``: reports PUBACK/PUBCOMP, stores nothing."""

    is_empty = True

    def __init__(self, on_ack: Callable[[int], None]) -> None:
        self._on_ack = on_ack

    def push_message(self, mid: int, raw_package: bytes) -> None:
        """gmqtt stores the PUBREL it sends for a PUBREC; nothing to keep."""

    def remove_message_by_mid(self, mid: int) -> None:
        self._on_ack(mid)

    async def wait_empty(self) -> None:
        return None

    def clear(self) -> None:
        return None

    def get_all(self) -> list[tuple[int, bytes]]:
        return []


class _Session:
    """One gmqtt client and its single network connection; discarded once lost."""

    def __init__(self, link: GmqttLink, will: bytes) -> None:
        self.lost = asyncio.Event()
        self.version = MQTTv50
        self.id_capacity = 65534
        self._link = link
        self._store = _AckStore(lambda mid: link._on_ack(self, mid))
        client = _Client(
            link.client_id,
            clean_session=True,
            will_message=gmqtt.Message(link.status_topic, will, qos=1, retain=True),
            persistent_storage=self._store,
        )
        if link.username:
            client.set_auth_credentials(link.username, link.password or None)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_sub_done
        client.on_unsubscribe = self._on_sub_done
        self._client: Any = client
        self._transport: Any = None
        self._ids: Any = None
        self._outbox: list[bytes] = []
        self._outbox_bytes = 0
        self._loop = asyncio.get_running_loop()  # once: get_running_loop() costs a getpid()

    async def open(
        self, host: str, port: int, tls: ssl.SSLContext | None, keepalive: int, version: int
    ) -> None:
        """Connect and wait for a successful CONNACK, or raise ``_ConnectFailed``."""
        self.version = version
        connect = asyncio.ensure_future(
            self._client.connect(
                host, port, ssl=tls or False, keepalive=keepalive, version=version, raise_exc=True
            )
        )
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait(
                {connect, lost}, timeout=CONNECT_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            connect.cancel()
            lost.cancel()
            await asyncio.gather(connect, lost, return_exceptions=True)
        error = connect.exception() if connect.done() and not connect.cancelled() else None
        if connect.cancelled():
            # v5 refused with code 1 never completes connect(): gmqtt waits for its own
            # (disabled) downgrade. A close before CONNACK is treated the same way.
            if self.lost.is_set():
                raise _ConnectFailed("closed before CONNACK", fallback=True)
            raise _ConnectFailed("timed out waiting for CONNACK", fallback=False)
        if isinstance(error, gmqtt.MQTTConnectError):
            code = getattr(error, "_code", None)
            raise _ConnectFailed(str(error), fallback=code in _REFUSED_PROTOCOL)
        if error is not None:
            raise _ConnectFailed(repr(error), fallback=False)
        if self.lost.is_set():
            raise _ConnectFailed("closed right after CONNACK", fallback=False)
        connection = self._client._connection
        self._transport = connection._transport
        protocol = connection._protocol
        self._ids = protocol.id_generator
        # From now on gmqtt's read loop frames packets with `split_packets`: PUBACKs come here
        # directly, everything else goes to gmqtt's handler as before.
        protocol._read_packet = partial(
            self._read_packets, connection, protocol.id_generator.free_id
        )

    def _read_packets(self, connection: Any, free_id: Callable[[int], None], data: bytes) -> int:
        connection._last_data_in = time.monotonic()  # gmqtt's keep-alive reads it
        return split_packets(
            data,
            partial(self._on_puback, free_id),
            lambda command, body: connection.put_package(Package(command, body)),
        )

    def _on_puback(self, free_id: Callable[[int], None], mid: int, reason: int) -> None:
        free_id(mid)
        self._link._on_ack(self, mid, reason)

    @property
    def write_buffer_size(self) -> int:
        size: int = self._transport.get_write_buffer_size()
        return size + self._outbox_bytes

    def publish(
        self, topic: str, payload: bytes, qos: int, retain: bool,
        properties: Mapping[str, str] | None = None,
        *,
        reply: tuple[str, bytes] | None = None,
    ) -> int:
        """Queue a PUBLISH for this loop iteration's write; the packet id for QoS 1/2 (0 for
        QoS 0). ``reply``: MQTT v5 (response topic, correlation data). gmqtt's id pool still
        hands out the ids, so its PUBACK/PUBREC handling frees them as before."""
        mid = self._ids.next_id() if qos else 0
        block = encode_properties(properties, reply) if self.version == MQTTv50 else None
        packet = encode_publish(topic, payload, qos, retain, packet_id=mid, properties=block)
        self._queue_write(packet)
        return mid

    def _queue_write(self, packet: bytes) -> None:
        """Coalesce: one socket write per event-loop iteration, not one per packet."""
        if not self._outbox:
            self._loop.call_soon(self._flush)
        self._outbox.append(packet)
        self._outbox_bytes += len(packet)

    def _flush(self) -> None:
        if not self._outbox:
            return
        data = b"".join(self._outbox)
        self._outbox.clear()
        self._outbox_bytes = 0
        connection = self._client._connection
        if connection is None or self._transport.is_closing():
            return  # lost: the link re-sends whatever was unacknowledged after the reconnect
        connection._last_data_out = time.monotonic()  # gmqtt's keep-alive reads it
        self._transport.write(data)

    def subscribe(self, topic_filter: str, qos: int) -> int:
        # No-local is a reserved (must be 0) bit in 3.1.1; the link emulates it there.
        no_local = self.version == MQTTv50
        mid: int = self._client.subscribe(gmqtt.Subscription(topic_filter, qos, no_local))
        return mid

    def unsubscribe(self, topic_filter: str) -> int:
        mid: int = self._client.unsubscribe(topic_filter)
        return mid

    async def close(self, graceful: bool) -> None:
        """Close the socket; graceful sends DISCONNECT first, so the broker drops the will."""
        connection = self._client._connection
        if connection is not None:
            try:
                if graceful and not self.lost.is_set():
                    self._flush()
                    connection.send_disconnect()
                await connection.close()
            except Exception as exc:  # a closing socket may fail in many ways; it is gone
                log.debug("broker_close_error", error=repr(exc))
        await _settle_gmqtt_tasks()

    # gmqtt callbacks (event loop thread) -------------------------------------------------
    def _on_connect(self, _client: Any, _flags: Any, _rc: Any, properties: Any) -> None:
        receive_maximum = (properties.get("receive_maximum") or [65535])[0]
        # gmqtt's packet-id pool refuses the (receive_maximum - 1)-th concurrent id.
        self.id_capacity = max(1, (receive_maximum if receive_maximum >= 2 else 65535) - 1)

    def _on_message(
        self, _client: Any, topic: Any, payload: Any, qos: Any, properties: Any
    ) -> None:
        retain = bool(properties.get("retain", 0))
        correlation = (properties.get("correlation_data") or [None])[0]
        self._link._on_inbound(
            self, topic, bytes(payload), int(qos), retain, correlation=correlation
        )

    def _on_disconnect(self, _client: Any, _packet: Any, _exc: Any = None) -> None:
        self.lost.set()
        self._link._detach(self)

    def _on_sub_done(self, _client: Any, mid: int, codes: Any, *_props: Any) -> None:
        self._link._on_sub_done(self, mid, tuple(codes))


async def _settle_gmqtt_tasks() -> None:
    """Let gmqtt's short-lived tasks (read loop, no-op reconnect) finish after a close."""
    for _ in range(10):
        if not any(_is_gmqtt_task(task) for task in asyncio.all_tasks() if not task.done()):
            return
        await asyncio.sleep(0)


def _is_gmqtt_task(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is _Client.reconnect.__code__ or "/gmqtt/" in getattr(code, "co_filename", "")


@dataclass(slots=True)
class _Outgoing:
    topic: str  # broker topic
    payload: bytes
    qos: int
    retain: bool
    future: asyncio.Future[None] | None  # None: the link's own status message
    properties: Mapping[str, str] | None = None
    reply: tuple[str, bytes] | None = None  # MQTT v5 (response topic, correlation data)


@dataclass(slots=True)
class _Filter:
    refs: int
    qos: int
    broker_filter: str


class GmqttLink:
    """``BrokerLink`` over gmqtt; see ``gateway.bridge.link.BrokerLink`` for the contract."""

    def __init__(self, settings: Settings, on_message: InboundHandler) -> None:
        broker = settings.broker
        url = urlsplit(broker.url)
        try:
            validate_mountpoint(settings.mountpoint)
            port = url.port
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        if not url.hostname:
            raise ConfigError(f"broker url {broker.url!r} has no host")
        self._host = url.hostname
        self._tls = ssl.create_default_context() if url.scheme == "mqtts" else None
        self._port = port or (8883 if self._tls else 1883)
        self._keepalive = broker.keepalive
        self._delays = (broker.reconnect_min, broker.reconnect_max)
        self._max_pending = broker.max_pending
        self.client_id = broker.client_id or f"edge-gateway-{settings.site}"
        self.username = broker.username
        self.password = broker.password.get_secret_value()
        self._mountpoint = settings.mountpoint
        self.status_topic = add_mountpoint(self._mountpoint, STATUS_TOPIC)
        self._online = _status(settings.site, "online", "connected")
        self._offline = _status(settings.site, "offline", "stopped")
        self._will = _status(settings.site, "offline", "connection_lost")
        self._on_message = on_message
        self._responders: dict[str, ResponseHandler] = {}  # local topic -> handler
        self._counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._filters: dict[str, _Filter] = {}
        self._pending: deque[_Outgoing] = deque()
        self._inflight: dict[int, _Outgoing] = {}
        self._ops: deque[tuple[str, int | None]] = deque()  # (broker filter, qos | None=unsub)
        self._ops_inflight: set[int] = set()
        self._echo: EchoFilter | None = None  # only while on MQTT 3.1.1
        self._session: _Session | None = None  # attached: only while connected
        self._current: _Session | None = None  # the one owning a socket, connected or not
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None  # cached by publish

    # ------------------------------------------------------------------------- public API
    @property
    def connected(self) -> bool:
        return self._session is not None

    @property
    def counters(self) -> Mapping[str, int]:
        return MappingProxyType(self._counters)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        *,
        properties: Mapping[str, str] | None = None,
    ) -> asyncio.Future[None] | None:
        if qos not in (0, 1, 2):
            raise ValueError(f"invalid QoS {qos}")
        broker_topic = add_mountpoint(self._mountpoint, topic)
        validate_topic(broker_topic)
        payload = bytes(payload)
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(payload)} bytes is too large for MQTT")
        session = self._session
        if qos == 0:
            if session is None:
                self._counters["dropped_disconnected_qos0"] += 1
            elif session.write_buffer_size > MAX_WRITE_BUFFER:
                self._counters["dropped_backpressure_qos0"] += 1
            else:
                self._send(session, _Outgoing(broker_topic, payload, 0, retain, None, properties))
            return None
        if self._stopped:
            raise BrokerUnavailable("bridge link stopped")
        if len(self._pending) + len(self._inflight) >= self._max_pending:
            self._counters["refused_pending_full"] += 1
            raise BrokerUnavailable(f"{self._max_pending} publishes already pending")
        loop = self._loop
        if loop is None:  # get_running_loop() costs a getpid() on Python 3.11: once
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append(_Outgoing(broker_topic, payload, qos, retain, future, properties))
        self._pump()
        return future

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        if qos not in (0, 1, 2):
            raise ValueError(f"invalid QoS {qos}")
        broker_filter = add_mountpoint(self._mountpoint, topic_filter)
        validate_filter(broker_filter)
        if broker_filter.startswith("$share/"):
            raise ValueError("shared subscriptions cannot use no-local")
        entry = self._filters.get(topic_filter)
        if entry is None:
            self._filters[topic_filter] = _Filter(1, qos, broker_filter)
        else:
            entry.refs += 1
            if qos <= entry.qos:
                return
            entry.qos = qos  # re-SUBSCRIBE replaces the subscription with the higher QoS
        if self._session is not None:  # otherwise the next connection subscribes
            self._ops.append((broker_filter, qos))
            self._pump()

    def unsubscribe(self, topic_filter: str) -> None:
        entry = self._filters.get(topic_filter)
        if entry is None:
            log.warning("bridge_unsubscribe_unknown", topic_filter=topic_filter)
            return
        entry.refs -= 1
        if entry.refs == 0:
            del self._filters[topic_filter]
            if self._session is not None:
                self._ops.append((entry.broker_filter, None))
                self._pump()

    def request(
        self, topic: str, payload: bytes, *, response_topic: str, correlation_data: bytes
    ) -> bool:
        """QoS 0 request with MQTT v5 response topic (local, mountpoint added) and correlation
        data; ``topic`` is a broker topic (no mountpoint). False: not connected, not MQTT v5,
        or the socket is backed up."""
        session = self._session
        if (session is None or session.version != MQTTv50
                or session.write_buffer_size > MAX_WRITE_BUFFER):
            self._counters["requests_unsent"] += 1
            return False
        validate_topic(topic)
        reply = (add_mountpoint(self._mountpoint, response_topic), correlation_data)
        self._send(session, _Outgoing(topic, bytes(payload), 0, False, None, reply=reply))
        self._counters["requests"] += 1
        return True

    def add_responder(self, topic: str, handler: ResponseHandler) -> None:
        """Subscribe to the local ``topic``; what arrives there goes to ``handler`` with its
        correlation data instead of to the bus."""
        validate_topic(add_mountpoint(self._mountpoint, topic))
        self._responders[topic] = handler
        self.subscribe(topic, qos=0)

    def set_status(self, payload: bytes) -> None:
        """The retained status published on every connect; sent now when connected (QoS 0:
        should this copy be lost with the connection, the next connect publishes it again)."""
        self._online = payload
        if self._session is not None:
            self._send(self._session, _Outgoing(self.status_topic, payload, 0, True, None))

    async def run(self, ready: asyncio.Event | None = None) -> None:
        self._stopped = False
        delays = backoff_delays(*self._delays)
        try:
            while True:
                was_connected = False
                try:
                    was_connected = await self._serve_once(ready)
                except Exception:
                    log.exception("broker_link_error")
                if ready is not None:
                    ready.set()
                if was_connected:
                    delays = backoff_delays(*self._delays)
                await asyncio.sleep(next(delays))
        except asyncio.CancelledError:
            await self._stop()
            raise

    # ------------------------------------------------------------------- connection cycle
    async def _serve_once(self, ready: asyncio.Event | None) -> bool:
        """One connection: connect, attach, wait until lost. True if it got connected."""
        session = await self._connect()
        if ready is not None:
            ready.set()
        if session is None:
            return False
        try:
            self._attach(session)
            await session.lost.wait()
        except asyncio.CancelledError:
            raise  # _stop() says goodbye on this session
        except Exception:
            await self._drop(session)
            raise
        log.warning(
            "broker_connection_lost",
            host=self._host,
            port=self._port,
            inflight=len(self._inflight),
            pending=len(self._pending),
        )
        await self._drop(session)
        return True

    async def _connect(self) -> _Session | None:
        for version in (MQTTv50, MQTTv311):
            session = self._current = _Session(self, self._will)
            try:
                await session.open(self._host, self._port, self._tls, self._keepalive, version)
                return session
            except _ConnectFailed as exc:
                await self._drop(session)
                self._counters["connect_failures"] += 1
                if not (exc.fallback and version == MQTTv50):
                    log.warning(
                        "broker_connect_failed", host=self._host, port=self._port, error=str(exc)
                    )
                    return None
                self._counters["protocol_fallbacks"] += 1
                log.info(
                    "broker_protocol_fallback",
                    host=self._host,
                    port=self._port,
                    reason=str(exc),
                    protocol="3.1.1",
                )
        return None

    async def _drop(self, session: _Session) -> None:
        self._detach(session)
        if self._current is session:
            self._current = None
        await session.close(graceful=False)

    def _attach(self, session: _Session) -> None:
        if session.lost.is_set():
            return
        self._session = session
        self._echo = EchoFilter() if session.version == MQTTv311 else None
        if self._counters["connects"]:
            self._counters["reconnects"] += 1
        self._counters["connects"] += 1
        log.info(
            "broker_connected",
            host=self._host,
            port=self._port,
            protocol="5" if session.version == MQTTv50 else "3.1.1",
            pending=len(self._pending),
            subscriptions=len(self._filters),
        )
        self._send(session, _Outgoing(self.status_topic, self._online, 1, True, None))
        self._ops = deque((f.broker_filter, f.qos) for f in self._filters.values())
        self._pump()

    def _detach(self, session: _Session) -> None:
        """Forget a lost session; its unacknowledged publishes go back to the queue front."""
        if self._session is not session:
            return
        self._session = None
        resend = [m for m in self._inflight.values() if m.future is not None]
        self._counters["resent"] += len(resend)
        self._pending.extendleft(reversed(resend))
        self._inflight.clear()
        self._ops.clear()
        self._ops_inflight.clear()

    async def _stop(self) -> None:
        self._stopped = True
        session, self._current = self._current, None
        if session is not None:
            graceful = session is self._session and not session.lost.is_set()
            if graceful:
                # QoS 0 suffices: the broker handles it before the DISCONNECT that follows.
                self._send(session, _Outgoing(self.status_topic, self._offline, 0, True, None))
            self._detach(session)
            await session.close(graceful=graceful)
        failed = [m.future for m in (*self._inflight.values(), *self._pending) if m.future]
        self._inflight.clear()
        self._pending.clear()
        for future in failed:
            if not future.done():
                future.set_exception(BrokerUnavailable("bridge link stopped"))
                future.exception()  # retrieved: fire-and-forget callers must not log noise
        self._counters["failed_on_stop"] += len(failed)
        log.info("broker_link_stopped", failed=len(failed))

    # ------------------------------------------------------------------------- data path
    def _send(self, session: _Session, message: _Outgoing) -> None:
        mid = session.publish(
            message.topic, message.payload, message.qos, message.retain, message.properties,
            reply=message.reply,
        )
        self._counters["published"] += 1
        if message.qos:
            self._inflight[mid] = message
        if self._echo is not None and any(
            topic_matches(f.broker_filter, message.topic) for f in self._filters.values()
        ):
            self._echo.remember(message.topic, message.payload)

    def _pump(self) -> None:
        """Send queued (un)subscribes, then queued publishes, within the packet-id window."""
        session = self._session
        if session is None:
            return
        try:
            while self._ops and self._ids_in_use() < session.id_capacity:
                broker_filter, qos = self._ops[0]
                if qos is None:
                    mid = session.unsubscribe(broker_filter)
                    self._counters["unsubscribes"] += 1
                else:
                    mid = session.subscribe(broker_filter, qos)
                    self._counters["subscribes"] += 1
                self._ops.popleft()
                self._ops_inflight.add(mid)
            while self._pending and self._ids_in_use() < session.id_capacity:
                message = self._pending[0]
                try:
                    self._send(session, message)
                except OverflowError:
                    raise
                except Exception as exc:  # never let one message block the queue
                    log.exception("broker_publish_failed", topic=message.topic)
                    if message.future is not None and not message.future.done():
                        message.future.set_exception(exc)
                self._pending.popleft()
        except OverflowError:
            # gmqtt frees SUBACK ids after its callback; the next acknowledgement pumps again.
            log.debug("broker_packet_ids_exhausted", inflight=self._ids_in_use())

    def _ids_in_use(self) -> int:
        return len(self._inflight) + len(self._ops_inflight)

    # ------------------------------------------------------------------ gmqtt callbacks
    def _on_ack(self, session: _Session, mid: int, reason: int = 0) -> None:
        """PUBACK (with its MQTT v5 reason code) or PUBCOMP for a publish in flight."""
        if session is not self._session:
            return
        message = self._inflight.pop(mid, None)
        if message is None:
            return
        future = message.future
        if reason >= _FIRST_FAILURE_REASON:
            self._counters["refused_by_broker"] += 1
            refused = self._counters["refused_by_broker"]
            if refused & (refused - 1) == 0:  # the 1st, 2nd, 4th, 8th...: a refusal can be steady
                log.warning("broker_refused_publish", topic=message.topic,
                            reason_code=f"0x{reason:02x}", refused=refused)
            if future is not None and not future.done():
                future.set_exception(BrokerRefused(message.topic, reason))
                future.exception()  # retrieved: publishers that do not wait must not log it
        else:
            self._counters["acked"] += 1
            if future is not None and not future.done():
                future.set_result(None)
        self._pump()

    def _on_sub_done(self, session: _Session, mid: int, codes: tuple[int, ...]) -> None:
        if session is not self._session:
            return
        self._ops_inflight.discard(mid)
        self._counters["subscribe_acks"] += 1
        refused = [code for code in codes if code >= 0x80]
        if refused:
            self._counters["subscribe_refused"] += 1
            log.warning("broker_subscribe_refused", mid=mid, codes=refused)
        # gmqtt frees the packet id only after this callback returns.
        asyncio.get_running_loop().call_soon(self._pump)

    def _on_inbound(
        self, session: _Session, topic: Any, payload: bytes, qos: int, retain: bool,
        *,
        correlation: bytes | None = None,
    ) -> None:
        if session is not self._session:
            return
        if not isinstance(topic, str):  # gmqtt hands over bytes when not valid UTF-8
            self._counters["inbound_outside_mountpoint"] += 1
            return
        if self._echo is not None and self._echo.consume(topic, payload):
            self._counters["inbound_echo_dropped"] += 1
            return
        local = strip_mountpoint(self._mountpoint, topic)
        if local is None:
            self._counters["inbound_outside_mountpoint"] += 1
            return
        responder = self._responders.get(local)
        if responder is not None:
            self._counters["responses"] += 1
            try:
                responder(correlation or b"", payload)
            except Exception:
                self._counters["handler_errors"] += 1
                log.exception("bridge_responder_failed", topic=local)
            return
        self._counters["inbound"] += 1
        try:
            self._on_message(InboundMessage(local, payload, qos, retain))
        except Exception:
            self._counters["handler_errors"] += 1
            log.exception("bridge_inbound_handler_failed", topic=local)
