"""A simulated MQTT-SN client on its own UDP socket, speaking through gateway.mqttsn.codec.

One outstanding request per kind at a time is what a small device does; publishes are issued
one after another by the device loop, so msg ids never collide.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

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
from sensor_sim.report import Counts

Address = tuple[str, int]
OnMessage = Callable[[str, bytes, float], None]


class MqttSnTimeout(Exception):
    """No answer after every retry."""


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, client: MqttSnClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.client.received(data)

    def error_received(self, exc: Exception) -> None:
        self.client.errors[f"socket_{type(exc).__name__}"] += 1


class MqttSnClient:
    def __init__(self, client_id: str, gateway: Address, *, retry: float, retries: int,
                 keep_alive: int, errors: Any, on_message: OnMessage | None = None) -> None:
        self.client_id = client_id
        self.gateway = gateway
        self.retry = retry
        self.retries = retries
        self.keep_alive = keep_alive
        self.errors = errors
        self.on_message = on_message
        self.transport: asyncio.DatagramTransport | None = None
        self._waiting: dict[tuple[str, int], asyncio.Future[Packet]] = {}
        self._topics: dict[int, str] = {}
        self._settled_ids: set[tuple[str, int]] = set()
        self._received_qos2: set[int] = set()
        self._next_id = 0
        self.duplicate_answers = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self), remote_addr=self.gateway
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        for future in self._waiting.values():
            future.cancel()

    def msg_id(self) -> int:
        self._next_id = self._next_id % 0xFFFF + 1
        return self._next_id

    def send(self, packet: Packet) -> None:
        assert self.transport is not None
        self.transport.sendto(encode(packet))

    # --- requests ---------------------------------------------------------------------------

    async def request(self, packet: Packet, key: tuple[str, int], resend: Packet | None = None,
                      counts: Counts | None = None) -> Packet:
        """Send `packet` and await the answer `key`, re-sending (`resend`) on each timeout."""
        future: asyncio.Future[Packet] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            for attempt in range(self.retries + 1):
                if attempt:
                    if counts is not None:
                        counts.retransmitted += 1
                    self.send(resend or packet)
                else:
                    self.send(packet)
                try:
                    return await asyncio.wait_for(asyncio.shield(future), self.retry)
                except TimeoutError:
                    continue
            raise MqttSnTimeout(key[0])
        finally:
            self._waiting.pop(key, None)
            self._settled_ids.add(key)
            if len(self._settled_ids) > 4096:
                self._settled_ids.clear()

    async def connect(self) -> None:
        answer = await self.request(Connect(self.client_id, self.keep_alive), ("connack", 0))
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

    def disconnect(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send(Disconnect())

    async def publish(self, topic_id: int, data: bytes, qos: int, counts: Counts,
                      topic_id_type: TopicIdType = TopicIdType.NORMAL) -> str:
        """Publish once and settle it: the outcome name ("acked", "unconfirmed", ...)."""
        counts.sent += 1
        if qos <= 0:
            self.send(Publish(topic_id, 0, data, QoS(qos), topic_id_type))
            counts.unconfirmed += 1
            return "unconfirmed"
        mid = self.msg_id()
        packet = Publish(topic_id, mid, data, QoS(qos), topic_id_type)
        dup = Publish(topic_id, mid, data, QoS(qos), topic_id_type, dup=True)
        started = time.monotonic()
        try:
            if qos == 1:
                answer = await self.request(packet, ("puback", mid), dup, counts)
                assert isinstance(answer, PubAck)
                if answer.return_code != ReturnCode.ACCEPTED:
                    counts.rejected += 1
                    self.errors[f"puback_{answer.return_code.name.lower()}"] += 1
                    return "rejected"
            else:
                answer = await self.request(packet, ("pubrec", mid), dup, counts)
                await self.request(PubRel(mid), ("pubcomp", mid), None, counts)
        except MqttSnTimeout:
            counts.lost += 1
            self.errors["mqttsn_timeout"] += 1
            return "lost"
        counts.acked += 1
        self.last_rtt = time.monotonic() - started
        return "acked"

    # --- incoming ---------------------------------------------------------------------------

    def _answer(self, key: tuple[str, int], packet: Packet) -> None:
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
            case ConnAck():
                self._answer(("connack", 0), packet)
            case RegAck():
                self._answer(("regack", packet.msg_id), packet)
            case SubAck():
                self._answer(("suback", packet.msg_id), packet)
            case PubAck():
                self._answer(("puback", packet.msg_id), packet)
            case PubRec():
                self._answer(("pubrec", packet.msg_id), packet)
            case PubComp():
                self._answer(("pubcomp", packet.msg_id), packet)
            case PingResp():
                self._answer(("pingresp", 0), packet)
            case Register():
                self._topics[packet.topic_id] = packet.topic_name
                self.send(RegAck(packet.topic_id, packet.msg_id, ReturnCode.ACCEPTED))
            case Publish():
                self._incoming(packet)
            case PubRel():
                self._received_qos2.discard(packet.msg_id)
                self.send(PubComp(packet.msg_id))
            case PingReq():
                self.send(PingResp())
            case Disconnect():
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
