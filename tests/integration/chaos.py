"""Chaos-test harness: a mosquitto that can be SIGKILLed and restarted on its port, the gateway as
a separate ``python -m gateway run`` process, a de-duplicating MQTT v5 subscriber, and paced
MQTT-SN / CoAP QoS 1 load that records exactly which messages the gateway acknowledged.

Every message carries a unique number (a reading named ``seq``), so the subscriber can map what
arrives back to what was acknowledged. Loopback only; every process is stopped by its own pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import cbor2
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.coap import message as coap
from gateway.mqttsn.codec import decode as decode_mqttsn
from gateway.mqttsn.codec import encode as encode_mqttsn
from gateway.mqttsn.constants import QoS, ReturnCode
from gateway.mqttsn.packets import (
    ConnAck,
    Connect,
    GwInfo,
    PubAck,
    Publish,
    RegAck,
    Register,
    SearchGw,
)
from tests.helpers import LOCALHOST, MosquittoProcess, MqttRecorder, free_tcp_port, free_udp_port

SITE = "site1"
GATEWAY_ID = f"{SITE}-1"  # egw-gateway: {site}-{EGW_MQTTSN__GATEWAY_ID}
TELEMETRY_FILTER = f"edge/{SITE}/devices/+/telemetry"
BROKER_DB = "mosquitto.db"
COAP_CHANGED = 0x44  # 2.04
P = TypeVar("P")


# ----------------------------------------------------------------------------------- broker
class RestartableBroker(MosquittoProcess):
    """A private mosquitto on a fixed loopback port, with persistence, that can be SIGKILLed
    and started again on the same port.

    Persistence (autosaved every second) keeps the subscriber's session and subscription across
    a SIGKILL, so messages the gateway sends after the restart are queued for the subscriber
    even before it has reconnected (QoS 0 ones too: queue_qos0_messages). No queue or in-flight
    limits: nothing is held back or dropped by the broker.
    """

    def __init__(self, directory: Path) -> None:
        super().__init__(
            directory, persistent=True,
            extra_config="autosave_interval 1\nmax_queued_messages 0\n"
            "max_inflight_messages 0\nqueue_qos0_messages true\n",
        )
        self.dir = directory

    def start(self, timeout: float = 10.0) -> None:
        super().start(timeout)

    def saved_since(self, moment: float) -> bool:
        """Whether the persistence file was written after ``moment`` (time.time())."""
        try:
            return (self.dir / BROKER_DB).stat().st_mtime > moment
        except OSError:
            return False


# ---------------------------------------------------------------------------------- gateway
class GatewayProcess:
    """``python -m gateway run`` configured by EGW_ variables, JSON logs into a file."""

    def __init__(self, data_dir: Path, broker_url: str, **env: str) -> None:
        self.data_dir = data_dir
        self.mqttsn_port = free_udp_port()
        self.coap_port = free_udp_port()
        self.log_path = data_dir.parent / f"{data_dir.name}-gateway.log"
        self.env = {
            "EGW_SITE": SITE,
            "EGW_DATA_DIR": str(data_dir),
            "EGW_MQTTSN__HOST": LOCALHOST,
            "EGW_MQTTSN__PORT": str(self.mqttsn_port),
            "EGW_COAP__HOST": LOCALHOST,
            "EGW_COAP__PORT": str(self.coap_port),
            "EGW_HTTP__HOST": LOCALHOST,
            "EGW_HTTP__PORT": str(free_tcp_port()),
            "EGW_BROKER__URL": broker_url,
            "EGW_BROKER__RECONNECT_MIN": "0.1",
            "EGW_BROKER__RECONNECT_MAX": "0.5",
            "EGW_RECOGNIZER__ENABLED": "false",
            "EGW_LOG__FORMAT": "json",
            "EGW_LOG__LEVEL": "info",
            **env,
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self, timeout: float = 20.0) -> None:
        """Start and return once it answers SEARCHGW; RuntimeError with the log tail if not."""
        base = {key: value for key, value in os.environ.items() if not key.startswith("EGW_")}
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run"], env={**base, **self.env},
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )
        if not _answers_searchgw(self.mqttsn_port, timeout, self._proc):
            self.kill()
            raise RuntimeError(f"the gateway did not come up:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit of anything."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        self._close_log()

    def stop(self) -> int | None:
        """SIGTERM (graceful stop), SIGKILL after 10 s; the exit status."""
        status = _terminate(self._proc, timeout=10.0)
        self._proc = None
        self._close_log()
        return status

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log line written so far (all runs against this data directory)."""
        out = []
        for line in _read(self.log_path).splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def count(self, event: str) -> int:
        return sum(1 for e in self.events() if e.get("event") == event)

    async def wait_for(self, event: str, n: int = 1, within: float = 10.0) -> None:
        """Until the log holds ``n`` lines of ``event``."""
        deadline = time.monotonic() + within
        while self.count(event) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {n}x {event} in the gateway log:\n{self.log_tail()}")
            await asyncio.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _answers_searchgw(port: int, timeout: float, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((LOCALHOST, port))
        sock.settimeout(0.2)
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                sock.send(encode_mqttsn(SearchGw(0)))
                if isinstance(decode_mqttsn(sock.recv(64)), GwInfo):
                    return True
            except (TimeoutError, ConnectionRefusedError):
                time.sleep(0.05)
    return False


def _terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> int | None:
    if proc is None:
        return None
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int) -> str:
    return "\n".join(_read(path).splitlines()[-lines:]) or "(no log)"


# ------------------------------------------------------------------------------- subscriber
def telemetry_seq(payload: bytes) -> int:
    """The load's unique number from a normalised telemetry message (reading ``seq``)."""
    readings = json.loads(payload)["readings"]
    return int(next(r["value"] for r in readings if r["name"] == "seq"))


class DedupSubscriber(MqttRecorder):
    """paho-mqtt, MQTT v5, persistent session: de-duplicates by (egw-gateway, egw-seq).

    ``delivered`` maps each unique key's load number to how many unique keys carried it (more
    than one would mean the gateway sent one sensor message twice under different keys).

    It subscribes with QoS 0 on purpose, so that it never writes to the broker (no PUBACKs).
    paho drops what the broker had already delivered into its socket when a write fails
    because the broker died, and a broker killed with unread PUBACKs in its socket closes it
    with an RST; either way messages the broker had forwarded would look lost. The persistent
    session still queues messages while the subscriber is away (queue_qos0_messages).
    """

    def __init__(self, port: int, topic_filter: str = TELEMETRY_FILTER) -> None:
        super().__init__(LOCALHOST, port, topic_filter, qos=0, mqtt5=True)
        self._lock = threading.Lock()
        self._keys: set[tuple[str, str]] = set()
        self.delivered: Counter[int] = Counter()
        self.stats: Counter[str] = Counter()
        self.subscribed_at = 0.0
        self._client.on_subscribe = self._on_subscribe

    def start(self, timeout: float = 5.0) -> Self:
        """Connect with clean start off and a session expiry, so the session outlives us."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 600
        self._client.connect(LOCALHOST, self._port, keepalive=30, clean_start=False,
                             properties=props)
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise TimeoutError(f"no SUBACK for {self.topic_filter!r}")
        return self

    def _on_subscribe(self, *_args: Any) -> None:
        self.subscribed_at = time.time()
        self._subscribed.set()

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        props = dict(getattr(msg.properties, "UserProperty", None) or [])
        with self._lock:
            self.stats["received"] += 1
            if props.get("egw-replay") == "1":
                self.stats["replayed"] += 1
            if "egw-seq" not in props or "egw-gateway" not in props:
                self.stats["no_key"] += 1
                return
            key = (props["egw-gateway"], props["egw-seq"])
            if key in self._keys:
                self.stats["duplicates"] += 1
                return
            self._keys.add(key)
            self.stats[f"gateway_{key[0]}"] += 1
            self.delivered[telemetry_seq(msg.payload)] += 1

    def snapshot(self) -> tuple[Counter[int], Counter[str]]:
        with self._lock:
            return Counter(self.delivered), Counter(self.stats)

    async def wait_for(self, wanted: set[int], within: float) -> set[int]:
        """Until every number in ``wanted`` arrived (or ``within`` s passed); what is missing."""
        deadline = time.monotonic() + within
        while True:
            with self._lock:
                missing = {n for n in wanted if n not in self.delivered}
            if not missing or time.monotonic() > deadline:
                return missing
            await asyncio.sleep(0.1)


# ------------------------------------------------------------------------------------- load
@dataclass
class AckLog:
    """What the load sent and how the gateway answered, by unique number."""

    sent: dict[int, float] = field(default_factory=dict)  # number -> time.monotonic() sent
    acked: dict[int, float] = field(default_factory=dict)  # number -> time.monotonic() acked
    rejected: dict[int, str] = field(default_factory=dict)  # number -> return code
    unanswered: set[int] = field(default_factory=set)

    def acked_between(self, start: float, end: float) -> int:
        """Acknowledged messages first sent in [start, end) (time.monotonic())."""
        return sum(1 for n in self.acked if start <= self.sent[n] < end)

    def summary(self) -> str:
        return (f"sent {len(self.sent)}, acked {len(self.acked)}, rejected "
                f"{Counter(self.rejected.values())}, unanswered {len(self.unanswered)}")


@dataclass
class Load:
    """Paced QoS 1 load from ``clients`` clients with one message in flight each."""

    clients: int
    rate: float  # messages per second, all clients together
    reply_timeout: float = 20.0  # longer than any outage: nothing is retransmitted
    log: AckLog = field(default_factory=AckLog)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    numbers: Iterator[int] = field(default_factory=lambda: count(1))

    def next_number(self) -> int | None:
        return None if self.stop.is_set() else next(self.numbers)

    async def pace(self, started: float, sent_by_me: int) -> None:
        due = started + sent_by_me * self.clients / self.rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))


async def mqttsn_load(load: Load, port: int) -> None:
    """MQTT-SN clients publishing JSON ``{"seq": n}`` to ``devices/chaos-sn<i>/telemetry``."""
    async with asyncio.TaskGroup() as tg:
        for i in range(load.clients):
            tg.create_task(_mqttsn_client(load, port, i))


class _Inbox(asyncio.DatagramProtocol):
    """Decoded datagrams for one load client, in arrival order."""

    def __init__(self, decode: Callable[[bytes], Any]) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self._decode = decode

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait(self._decode(data))

    async def next(self, kind: type[P], match: Callable[[P], bool], within: float) -> P:
        """The first packet of ``kind`` that ``match``es, skipping others; TimeoutError.

        ``asyncio.timeout``, not ``wait_for``: on 3.11 ``wait_for`` can swallow a cancellation
        that races with the answer, and a load client would then keep running.
        """
        async with asyncio.timeout(within):
            while True:
                packet = await self.queue.get()
                if isinstance(packet, kind) and match(packet):
                    return packet


async def _endpoint(port: int, decode: Callable[[bytes], Any]) -> tuple[Any, _Inbox]:
    inbox = _Inbox(decode)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: inbox, local_addr=(LOCALHOST, 0), remote_addr=(LOCALHOST, port)
    )
    return transport, inbox


async def _mqttsn_client(load: Load, port: int, index: int) -> None:
    transport, inbox = await _endpoint(port, decode_mqttsn)
    try:
        transport.sendto(encode_mqttsn(Connect(f"chaos-sn{index}", 120, clean_session=True)))
        await inbox.next(ConnAck, lambda _: True, 10.0)
        transport.sendto(encode_mqttsn(Register(0, 1, f"devices/chaos-sn{index}/telemetry")))
        topic_id = (await inbox.next(RegAck, lambda a: a.msg_id == 1, 10.0)).topic_id
        started = time.monotonic()
        mine = 0
        while (n := load.next_number()) is not None:
            await load.pace(started, mine)
            mine += 1
            msg_id = mine % 0xFFFF + 2
            load.log.sent[n] = time.monotonic()
            transport.sendto(encode_mqttsn(Publish(
                topic_id, msg_id, json.dumps({"seq": n}).encode(), QoS.AT_LEAST_ONCE)))
            try:
                ack = await inbox.next(
                    PubAck, lambda a, m=msg_id: a.msg_id == m, load.reply_timeout
                )
            except TimeoutError:
                load.log.unanswered.add(n)
                continue
            if ack.return_code is ReturnCode.ACCEPTED:
                load.log.acked[n] = time.monotonic()
            else:
                load.log.rejected[n] = ack.return_code.name
    finally:
        transport.close()


async def coap_load(load: Load, port: int) -> None:
    """CoAP clients POSTing CON, CBOR ``{"seq": n}`` to ``/devices/chaos-c<i>/telemetry``."""
    async with asyncio.TaskGroup() as tg:
        for i in range(load.clients):
            tg.create_task(_coap_client(load, port, i))


async def _coap_client(load: Load, port: int, index: int) -> None:
    transport, inbox = await _endpoint(port, coap.decode)
    path = ((coap.URI_PATH, b"devices"), (coap.URI_PATH, f"chaos-c{index}".encode()),
            (coap.URI_PATH, b"telemetry"), (coap.CONTENT_FORMAT, bytes([60])))
    try:
        started = time.monotonic()
        mine = 0
        while (n := load.next_number()) is not None:
            await load.pace(started, mine)
            mid, token = (index * 4099 + mine) & 0xFFFF, mine.to_bytes(4, "big")
            mine += 1
            load.log.sent[n] = time.monotonic()
            transport.sendto(coap.encode(coap.Message(
                coap.CON, coap.POST, mid, token, path, cbor2.dumps({"seq": n}))))
            try:
                async with asyncio.timeout(load.reply_timeout):
                    code = await _coap_answer(inbox, transport, mid, token)
            except TimeoutError:
                load.log.unanswered.add(n)
                continue
            if code == COAP_CHANGED:
                load.log.acked[n] = time.monotonic()
            else:
                load.log.rejected[n] = f"{code >> 5}.{code & 0x1F:02d}"
    finally:
        transport.close()


async def _coap_answer(inbox: _Inbox, transport: Any, mid: int, token: bytes) -> int:
    """The response code: piggybacked on the ACK, or (after an empty ACK) a separate response,
    which is ACKed here (RFC 7252 §5.2.2)."""
    while True:
        reply = await inbox.queue.get()
        if reply.mtype == coap.CON:
            transport.sendto(coap.encode(coap.Message(coap.ACK, coap.EMPTY, reply.mid)))
        if reply.mtype == coap.ACK and reply.mid == mid and reply.code != coap.EMPTY:
            return reply.code
        if reply.mtype in (coap.CON, coap.NON) and reply.token == token:
            return reply.code
        # An empty ACK (the answer follows separately) or a stray earlier answer: keep waiting.


# -------------------------------------------------------------------------------- assertion
def assert_exactly_once(
    log: AckLog, delivered: Counter[int], *, allow_unacked: bool = False
) -> None:
    """Every acknowledged number arrived under exactly one (gateway, seq) key; nothing arrived
    that was not sent, and (unless ``allow_unacked``) nothing that was not acknowledged."""
    missing = sorted(set(log.acked) - set(delivered))
    twice = sorted(n for n, c in delivered.items() if c > 1)
    unknown = sorted(set(delivered) - set(log.sent))
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:10]}"
    assert not twice, f"{len(twice)} messages delivered under two keys, e.g. {twice[:10]}"
    assert not unknown, f"delivered but never sent: {unknown[:10]}"
    if not allow_unacked:
        extra = sorted(set(delivered) - set(log.acked))
        assert not extra, f"{len(extra)} delivered but not acknowledged, e.g. {extra[:10]}"
        assert len(delivered) == len(log.acked)

