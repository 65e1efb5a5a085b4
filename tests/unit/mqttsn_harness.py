"""Drive a GatewayCore in memory: packets in, packets and events out, time advanced by hand."""

from __future__ import annotations

from typing import Any

from gateway.mqttsn.codec import decode, encode
from gateway.mqttsn.core import GatewayCore
from gateway.mqttsn.events import Address, Event
from gateway.mqttsn.packets import ConnAck, Connect, Packet, RegAck, Register
from schemas.config import MqttSnConfig

CLIENT_A: Address = ("127.0.0.1", 40001)
CLIENT_B: Address = ("127.0.0.1", 40002)


class Harness:
    def __init__(self, *, durable_qos2: bool = False, **config: Any) -> None:
        self.now = 0.0
        self.config = MqttSnConfig(**config)
        self.core = GatewayCore(
            self.config, now=self.now, advertise_to=("255.255.255.255", 1884),
            durable_qos2=durable_qos2,
        )
        self.outbox: list[tuple[Packet, Address]] = []
        self.event_log: list[Event] = []

    def send(self, packet: Packet | bytes, addr: Address = CLIENT_A) -> list[Packet]:
        """Deliver one datagram; return the packets the core sent to `addr` in response."""
        data = packet if isinstance(packet, bytes) else encode(packet)
        self.core.receive_datagram(data, addr, self.now)
        return self.drain(addr)

    def _collect(self) -> None:
        for data, dest in self.core.datagrams_to_send():
            self.outbox.append((decode(data), dest))
        while (event := self.core.next_event()) is not None:
            self.event_log.append(event)

    def drain(self, addr: Address | None = None) -> list[Packet]:
        """Take the packets sent so far (to `addr`, or to anyone)."""
        self._collect()
        if addr is None:
            taken = [packet for packet, _ in self.outbox]
            self.outbox.clear()
            return taken
        taken = [packet for packet, dest in self.outbox if dest == addr]
        self.outbox = [(packet, dest) for packet, dest in self.outbox if dest != addr]
        return taken

    def advance(self, seconds: float, addr: Address | None = None) -> list[Packet]:
        """Move the clock on, firing every timer due on the way; return packets sent meanwhile."""
        target = self.now + seconds
        while (deadline := self.core.get_timer()) is not None and deadline <= target:
            self.now = max(self.now, deadline)
            self.core.handle_timer(self.now)
        self.now = target
        return self.drain(addr)

    def events(self) -> list[Event]:
        self._collect()
        taken, self.event_log = self.event_log, []
        return taken

    def connect(
        self, client_id: str = "c1", addr: Address = CLIENT_A, *, duration: int = 60,
        clean: bool = True,
    ) -> None:
        replies = self.send(Connect(client_id, duration, clean_session=clean), addr)
        assert replies == [ConnAck(0)], replies  # type: ignore[arg-type]
        self.events()

    def register(self, topic: str, addr: Address = CLIENT_A, msg_id: int = 1) -> int:
        (reply,) = self.send(Register(0, msg_id, topic), addr)
        assert isinstance(reply, RegAck) and reply.return_code == 0, reply
        return reply.topic_id
