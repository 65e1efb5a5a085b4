"""A simulated MQTT-SN client on its own UDP socket, speaking through gateway.mqttsn.codec.

One outstanding request per kind at a time is what a small device does; publishes are issued
one after another by the device loop, so msg ids never collide. Each attempt of a request waits
on its own future with one `call_later` timer (cheaper than `wait_for`, which matters at 10,000
devices); an answer to an earlier attempt of the same request settles the current one.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable

from gateway.mqttsn.codec import MalformedPacket, decode, encode
from gateway.mqttsn.constants import QoS, ReturnCode, TopicIdType
from gateway.mqttsn.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    RegAck,
    Register,
    SubAck,
    Subscribe,
)
from sensor_sim.endpoint import Address, Endpoint, expire
from sensor_sim.faults import FaultInjector
from sensor_sim.report import Counts

OnMessage = Callable[[str, bytes, float], None]
Key = tuple[str, int]
SETTLED_MEMORY = 16  # recent exchanges whose late answers count as duplicates, not errors


class MqttSnTimeout(Exception):
    """No answer after every retry."""


class MqttSnClient:
    def __init__(self, client_id: str, gateway: Address, *, retry: float, retries: int,
                 keep_alive: int, errors: Counter[str], on_message: OnMessage | None = None,
                 injector: FaultInjector | None = None) -> None:
        self.client_id = client_id
        self.retry = retry
        self.retries = retries
        self.keep_alive = keep_alive
        self.errors = errors
        self.on_message = on_message
        self.endpoint = Endpoint(gateway, self.received, errors, injector)
        self._waiting: dict[Key, asyncio.Future[Packet | None]] = {}
        self._topics: dict[int, str] = {}  # topic id -> name, for what the gateway sends
        self._registered: dict[str, int] = {}  # name -> topic id, for what the client sends
        self._settled_ids: deque[Key] = deque(maxlen=SETTLED_MEMORY)
        self._received_qos2: set[int] = set()
        self._next_id = 0
        self.duplicate_answers = 0
        self.disconnected_by_gateway = False
        self.asleep = False

    async def open(self) -> None:
        await self.endpoint.open()

    async def reopen(self) -> None:
        """A reboot: a new socket; nothing of the old session is remembered."""
        self._abandon()
        self._topics.clear()
        self._registered.clear()
        self.asleep = self.disconnected_by_gateway = False
        self._received_qos2.clear()
        await self.endpoint.reopen()

    def close(self) -> None:
        self.endpoint.close()
        self._abandon()

    def _abandon(self) -> None:
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()

    def msg_id(self) -> int:
        self._next_id = self._next_id % 0xFFFF + 1
        return self._next_id

    def send(self, packet: Packet) -> None:
        self.endpoint.send(encode(packet))

    # --- requests ---------------------------------------------------------------------------

    async def request(self, packet: Packet, key: Key, resend: Packet | None = None,
                      counts: Counts | None = None) -> Packet:
        """Send `packet` and await the answer `key`, re-sending (`resend`) on each timeout."""
        loop = asyncio.get_running_loop()
        datagram = encode(packet)
        try:
            for attempt in range(self.retries + 1):
                future: asyncio.Future[Packet | None] = loop.create_future()
                self._waiting[key] = future
                if attempt == 1 and resend is not None:
                    datagram = encode(resend)
                if attempt and counts is not None:
                    counts.retransmitted += 1
                self.endpoint.send(datagram)
                timer = loop.call_later(self.retry, expire, future)
                answer = await future
                timer.cancel()
                if answer is not None:
                    return answer
            host, port = self.endpoint.remote
            raise MqttSnTimeout(f"no {key[0].upper()} from {host}:{port} after "
                                f"{self.retries + 1} attempts")
        finally:
            self._waiting.pop(key, None)
            self._settled_ids.append(key)

    async def connect(self, clean: bool = True) -> None:
        self.disconnected_by_gateway = self.asleep = False
        answer = await self.request(Connect(self.client_id, self.keep_alive, clean_session=clean),
                                    ("connack", 0))
        assert isinstance(answer, ConnAck)
        if answer.return_code != ReturnCode.ACCEPTED:
            raise ConnectionError(f"CONNACK {answer.return_code.name}")

    async def register(self, topic: str) -> int:
        mid = self.msg_id()
        answer = await self.request(Register(0, mid, topic), ("regack", mid))
        assert isinstance(answer, RegAck)
        if answer.return_code != ReturnCode.ACCEPTED:
            raise ConnectionError(f"REGACK {answer.return_code.name}")
        self._topics[answer.topic_id] = topic
        self._registered[topic] = answer.topic_id
        return answer.topic_id

    async def subscribe(self, topic: str, qos: int) -> None:
        mid = self.msg_id()
        answer = await self.request(Subscribe(mid, topic, QoS(qos)), ("suback", mid))
        assert isinstance(answer, SubAck)
        if answer.return_code != ReturnCode.ACCEPTED:
            raise ConnectionError(f"SUBACK {answer.return_code.name}")
        if answer.topic_id:
            self._topics[answer.topic_id] = topic

    async def ping(self) -> None:
        await self.request(PingReq(), ("pingresp", 0))

    async def sleep(self, duration: int) -> None:
        """DISCONNECT with a duration: asleep once the gateway answers DISCONNECT."""
        await self.request(Disconnect(duration), ("disconnect", 0))
        self.asleep = True

    def disconnect(self) -> None:
        if self.endpoint.is_open:
            self.send(Disconnect())

    async def publish(self, topic: str | int, data: bytes, qos: int, counts: Counts) -> str:
        """Publish once and settle it: the outcome name ("acked", "unconfirmed", ...).

        `topic` is a registered topic name, or a predefined topic id. When the gateway answers
        "invalid topic id" (it lost the registration: a duplicated CONNECT with a clean session
        resets it), the client registers the topic again and re-sends, as a device would.
        """
        counts.sent += 1
        try:
            answer = await self._publish(topic, data, qos, counts)
            if (isinstance(answer, PubAck) and isinstance(topic, str)
                    and answer.return_code == ReturnCode.INVALID_TOPIC_ID):
                self.errors["mqttsn_registered_again"] += 1
                counts.retransmitted += 1
                await self.register(topic)
                answer = await self._publish(topic, data, qos, counts)
        except MqttSnTimeout:
            counts.lost += 1
            self.errors["mqttsn_timeout"] += 1
            return "lost"
        except ConnectionError as exc:  # REGACK refused
            counts.rejected += 1
            self.errors[f"mqttsn_{exc}"] += 1
            return "rejected"
        if answer is None:
            counts.unconfirmed += 1
            return "unconfirmed"
        if isinstance(answer, PubAck) and answer.return_code != ReturnCode.ACCEPTED:
            counts.rejected += 1
            self.errors[f"puback_{answer.return_code.name.lower()}"] += 1
            return "rejected"
        counts.acked += 1
        return "acked"

    async def _publish(self, topic: str | int, data: bytes, qos: int,
                       counts: Counts) -> Packet | None:
        """One PUBLISH exchange: the PUBACK (QoS 1, or a refusal), PUBCOMP (QoS 2), None (<1)."""
        if isinstance(topic, str):
            topic_id, id_type = self._registered[topic], TopicIdType.NORMAL
        else:
            topic_id, id_type = topic, TopicIdType.PREDEFINED
        if qos <= 0:
            self.send(Publish(topic_id, 0, data, QoS(qos), id_type))
            return None
        mid = self.msg_id()
        packet = Publish(topic_id, mid, data, QoS(qos), id_type)
        dup = Publish(topic_id, mid, data, QoS(qos), id_type, dup=True)  # encoded if re-sent
        if qos == 1:
            return await self.request(packet, ("puback", mid), dup, counts)
        answer = await self.request(packet, ("pubrec", mid), dup, counts)
        if isinstance(answer, PubAck):  # refused: QoS 2 is refused with a PUBACK too
            return answer
        return await self.request(PubRel(mid), ("pubcomp", mid), None, counts)

    # --- incoming ---------------------------------------------------------------------------

    def _answer(self, key: Key, packet: Packet) -> None:
        future = self._waiting.get(key)
        if future is not None and not future.done():
            future.set_result(packet)
        elif key in self._settled_ids:
            self.duplicate_answers += 1

    def received(self, data: bytes) -> None:
        try:
            packet = decode(data)
        except MalformedPacket as exc:
            self.errors[f"mqttsn_malformed_{exc.reason}"] += 1
            return
        match packet:
            case PubAck():
                key = ("puback", packet.msg_id)
                if key not in self._waiting and ("pubrec", packet.msg_id) in self._waiting:
                    key = ("pubrec", packet.msg_id)  # a QoS 2 PUBLISH refused
                self._answer(key, packet)
            case Publish():
                self._incoming(packet)
            case ConnAck():
                self._answer(("connack", 0), packet)
            case RegAck():
                self._answer(("regack", packet.msg_id), packet)
            case SubAck():
                self._answer(("suback", packet.msg_id), packet)
            case PubRec():
                self._answer(("pubrec", packet.msg_id), packet)
            case PubComp():
                self._answer(("pubcomp", packet.msg_id), packet)
            case PingResp():
                self._answer(("pingresp", 0), packet)
            case Register():
                self._topics[packet.topic_id] = packet.topic_name
                self.send(RegAck(packet.topic_id, packet.msg_id, ReturnCode.ACCEPTED))
            case PubRel():
                self._received_qos2.discard(packet.msg_id)
                self.send(PubComp(packet.msg_id))
            case PingReq():
                self.send(PingResp())
            case Disconnect():
                if ("disconnect", 0) in self._waiting or self.asleep:
                    self._answer(("disconnect", 0), packet)  # asleep: a duplicate answer
                else:
                    self.disconnected_by_gateway = True
                    self.errors["mqttsn_disconnected_by_gateway"] += 1
            case _:
                self.errors[f"mqttsn_unexpected_{type(packet).__name__}"] += 1

    def _incoming(self, packet: Publish) -> None:
        topic = self._topics.get(packet.topic_id)
        if topic is None:
            self.errors["mqttsn_unknown_topic_id"] += 1
            if packet.qos == QoS.AT_LEAST_ONCE:
                self.send(PubAck(packet.topic_id, packet.msg_id, ReturnCode.INVALID_TOPIC_ID))
            return
        now = time.monotonic()
        if packet.qos == QoS.AT_LEAST_ONCE:
            self.send(PubAck(packet.topic_id, packet.msg_id, ReturnCode.ACCEPTED))
        elif packet.qos == QoS.EXACTLY_ONCE:
            self.send(PubRec(packet.msg_id))
            if packet.msg_id in self._received_qos2:
                return
            self._received_qos2.add(packet.msg_id)
        if self.on_message is not None:
            self.on_message(topic, packet.data, now)
