"""`sensor-sim sink`: a stand-in gateway that acknowledges everything, to measure the simulator.

It answers MQTT-SN (CONNACK, REGACK with a fresh topic id, PUBACK, PUBREC/PUBCOMP, SUBACK,
PINGRESP, DISCONNECT) and CoAP (a piggybacked 2.04 to every CON request, nothing to NON) with the
project's codecs and does nothing else, so a fleet run against it measures the simulator's own
ceiling, not the gateway's. It keeps no sessions: just enough to keep the clients happy.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

from gateway.coap.message import ACK, CHANGED, CON, MalformedMessage, Message
from gateway.coap.message import decode as coap_decode
from gateway.coap.message import encode as coap_encode
from gateway.mqttsn.codec import MalformedPacket, decode, encode
from gateway.mqttsn.constants import ReturnCode
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

_OK = ReturnCode.ACCEPTED


class _Sink(asyncio.DatagramProtocol):
    """Answers each datagram with what `answer` makes of it (None: no answer)."""

    def __init__(self, answer: Callable[[bytes], bytes | None]) -> None:
        self.answer = answer
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = self.answer(data)
        if reply is not None:
            self.transport.sendto(reply, addr)


class _Answers:
    """What the sink says to each MQTT-SN packet or CoAP message, counting what it got."""

    def __init__(self, counters: Counter[str]) -> None:
        self.counters = counters
        self._topic_ids = itertools.count(1)

    def mqttsn(self, data: bytes) -> bytes | None:
        try:
            packet = decode(data)
        except MalformedPacket:
            self.counters["mqttsn_malformed"] += 1
            return None
        self.counters["mqttsn_received"] += 1
        answer = self._mqttsn_answer(packet)
        return None if answer is None else encode(answer)

    def _mqttsn_answer(self, packet: Packet) -> Packet | None:
        match packet:
            case Publish(qos=1):
                return PubAck(packet.topic_id, packet.msg_id, _OK)
            case Publish(qos=2):
                return PubRec(packet.msg_id)
            case PubRel():
                return PubComp(packet.msg_id)
            case Connect():
                return ConnAck(_OK)
            case Register():
                return RegAck(next(self._topic_ids) % 0xFFFF or 1, packet.msg_id, _OK)
            case Subscribe():
                return SubAck(0, packet.msg_id, _OK, packet.qos)
            case PingReq():
                return PingResp()
            case Disconnect():
                return Disconnect()
        return None

    def coap(self, data: bytes) -> bytes | None:
        try:
            message = coap_decode(data)
        except MalformedMessage:
            self.counters["coap_malformed"] += 1
            return None
        self.counters["coap_received"] += 1
        if message.mtype == CON and message.is_request:
            return coap_encode(Message(ACK, CHANGED, message.mid, message.token))
        return None


async def serve(host: str, mqttsn_port: int, coap_port: int,
                counters: Counter[str]) -> tuple[int, int]:
    """Open both sinks; their ports (they stay open until the loop stops)."""
    loop = asyncio.get_running_loop()
    answers = _Answers(counters)
    mqttsn, _ = await loop.create_datagram_endpoint(
        lambda: _Sink(answers.mqttsn), local_addr=(host, mqttsn_port))
    coap, _ = await loop.create_datagram_endpoint(
        lambda: _Sink(answers.coap), local_addr=(host, coap_port))
    return mqttsn.get_extra_info("sockname")[1], coap.get_extra_info("sockname")[1]
