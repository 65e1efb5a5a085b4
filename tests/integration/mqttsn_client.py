"""A small asyncio MQTT-SN test client on a real UDP socket, built on the project's codec."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from gateway.mqttsn.codec import decode, encode
from gateway.mqttsn.constants import QoS, ReturnCode, TopicIdType
from gateway.mqttsn.packets import (
    ConnAck,
    Connect,
    Packet,
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

P = TypeVar("P")


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Packet] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait(decode(data))


class UdpMqttSnClient:
    """Sends packets to the gateway and waits for typed replies; answers nothing by itself."""

    def __init__(self, gateway: tuple[str, int]) -> None:
        self.gateway = gateway
        self._transport: asyncio.DatagramTransport | None = None
        self._inbox = _Inbox()
        self._next_msg_id = 1
        self.topics: dict[int, str] = {}

    async def __aenter__(self) -> UdpMqttSnClient:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self._inbox, local_addr=("127.0.0.1", 0)
        )
        self._transport = transport  # type: ignore[assignment]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()

    def send(self, packet: Packet | bytes) -> None:
        assert self._transport is not None
        data = packet if isinstance(packet, bytes) else encode(packet)
        self._transport.sendto(data, self.gateway)

    async def receive(self, timeout: float = 3.0) -> Packet:
        return await asyncio.wait_for(self._inbox.queue.get(), timeout)

    async def expect(self, kind: type[P], timeout: float = 3.0) -> P:
        """The next packet, which must be of `kind` (REGISTERs are answered and remembered)."""
        while True:
            packet = await self.receive(timeout)
            if isinstance(packet, Register) and kind is not Register:
                self.topics[packet.topic_id] = packet.topic_name
                self.send(RegAck(packet.topic_id, packet.msg_id, ReturnCode.ACCEPTED))
                continue
            assert isinstance(packet, kind), f"expected {kind.__name__}, got {packet!r}"
            return packet

    async def nothing(self, seconds: float = 0.3) -> None:
        try:
            packet = await asyncio.wait_for(self._inbox.queue.get(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected packet {packet!r}")

    def msg_id(self) -> int:
        self._next_msg_id += 1
        return self._next_msg_id

    async def connect(self, client_id: str, duration: int = 60, clean: bool = True) -> None:
        self.send(Connect(client_id, duration, clean_session=clean))
        ack = await self.expect(ConnAck)
        assert ack.return_code == ReturnCode.ACCEPTED

    async def register(self, topic: str) -> int:
        self.send(Register(0, self.msg_id(), topic))
        ack = await self.expect(RegAck)
        assert ack.return_code == ReturnCode.ACCEPTED
        self.topics[ack.topic_id] = topic
        return ack.topic_id

    async def subscribe(self, topic: str, qos: int = 0) -> int:
        self.send(Subscribe(self.msg_id(), topic, QoS(qos)))
        ack = await self.expect(SubAck)
        assert ack.return_code == ReturnCode.ACCEPTED
        if ack.topic_id:
            self.topics[ack.topic_id] = topic
        return ack.topic_id

    async def publish(
        self, topic_id: int, data: bytes, qos: int = 0, *, wait: bool = True, retain: bool = False
    ) -> int:
        """Publish; for QoS 1/2 complete the handshake when `wait`. Returns the msg id."""
        msg_id = self.msg_id() if qos > 0 else 0
        self.send(Publish(topic_id, msg_id, data, QoS(qos), TopicIdType.NORMAL, retain=retain))
        if qos == 1 and wait:
            ack = await self.expect(PubAck, timeout=10)
            assert (ack.msg_id, ack.return_code) == (msg_id, ReturnCode.ACCEPTED), ack
        elif qos == 2 and wait:
            rec = await self.expect(PubRec, timeout=10)
            assert rec.msg_id == msg_id
            self.send(PubRel(msg_id))
            comp = await self.expect(PubComp)
            assert comp.msg_id == msg_id
        return msg_id

    async def next_message(self, timeout: float = 3.0) -> tuple[str, bytes]:
        """The next PUBLISH from the gateway (acknowledged as its QoS asks), as (topic, data)."""
        pub = await self.expect(Publish, timeout)
        if pub.qos == QoS.AT_LEAST_ONCE:
            self.send(PubAck(pub.topic_id, pub.msg_id, ReturnCode.ACCEPTED))
        elif pub.qos == QoS.EXACTLY_ONCE:
            self.send(PubRec(pub.msg_id))
            await self.expect(PubRel)
            self.send(PubComp(pub.msg_id))
        return self.topics.get(pub.topic_id, f"#{pub.topic_id}"), pub.data
