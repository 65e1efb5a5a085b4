"""GatewayCore: the sans-IO MQTT-SN v1.2 gateway (the aioquic shape).

Datagrams, app calls and an explicit `now` go in; datagrams (`datagrams_to_send`), events
(`next_event`) and one timer deadline (`get_timer`) come out. No sockets, no clock, no logging.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from itertools import count
from typing import Any

from gateway.mqttsn.codec import MalformedPacket, decode, encode
from gateway.mqttsn.constants import (
    KEEP_ALIVE_GRACE,
    PROTOCOL_ID,
    MsgType,
    QoS,
    ReturnCode,
    TopicIdType,
)
from gateway.mqttsn.events import (
    Address,
    ClientConnected,
    ClientDisconnected,
    Event,
    MessagePublished,
    SubscriptionAdded,
    SubscriptionRemoved,
)
from gateway.mqttsn.packets import (
    Advertise,
    ConnAck,
    Connect,
    Disconnect,
    Encapsulated,
    GwInfo,
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
    SearchGw,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    WillMsg,
    WillMsgReq,
    WillMsgResp,
    WillMsgUpd,
    WillTopic,
    WillTopicReq,
    WillTopicResp,
    WillTopicUpd,
)
from gateway.mqttsn.ratelimit import AddressRateLimiter
from gateway.mqttsn.session import (
    CONNECTED_STATES,
    SESSION_STATES,
    ClientSession,
    ClientState,
    InFlight,
    OutboundMessage,
    Will,
)
from gateway.mqttsn.subscriptions import RetainedStore, SubscriptionIndex
from gateway.mqttsn.topics import PredefinedTopics, short_id_to_name, short_name_to_id
from gateway.topics import is_valid_filter, is_valid_topic_name, is_wildcard
from schemas.config import MqttSnConfig

_A = ClientState.ACTIVE
_W = ClientState.AWAKE
_S = ClientState.ASLEEP
_C = ClientState.CONNECTING
_CONNECTED = frozenset({_A, _W})

# Which client states accept which message (§6); anything else is a protocol error.
_ALLOWED_STATES: dict[MsgType, frozenset[ClientState]] = {
    MsgType.WILLTOPIC: frozenset({_C}),
    MsgType.WILLMSG: frozenset({_C}),
    MsgType.REGISTER: _CONNECTED,
    MsgType.REGACK: _CONNECTED,
    MsgType.PUBLISH: _CONNECTED,
    MsgType.PUBACK: _CONNECTED,
    MsgType.PUBREC: _CONNECTED,
    MsgType.PUBREL: _CONNECTED,
    MsgType.PUBCOMP: _CONNECTED,
    MsgType.SUBSCRIBE: _CONNECTED,
    MsgType.UNSUBSCRIBE: _CONNECTED,
    MsgType.PINGREQ: frozenset({_A, _W, _S}),
    MsgType.DISCONNECT: frozenset({_A, _W, _S, _C}),
    MsgType.WILLTOPICUPD: _CONNECTED,
    MsgType.WILLMSGUPD: _CONNECTED,
}
# Messages only a gateway sends; a gateway receiving one counts and drops it.
_GATEWAY_ONLY = frozenset({
    MsgType.CONNACK, MsgType.WILLTOPICREQ, MsgType.WILLMSGREQ, MsgType.SUBACK, MsgType.UNSUBACK,
    MsgType.PINGRESP, MsgType.WILLTOPICRESP, MsgType.WILLMSGRESP, MsgType.ADVERTISE, MsgType.GWINFO,
})
_RX_COUNTER = {msg_type: f"rx_{msg_type.name}" for msg_type in MsgType}
_TX_COUNTER = {msg_type: f"tx_{msg_type.name}" for msg_type in MsgType}
_HANDSHAKE_TIMEOUT = 60.0
_HOUSEKEEPING_INTERVAL = 30.0


class GatewayCore:
    """The MQTT-SN gateway for all clients of one UDP endpoint."""

    def __init__(
        self,
        config: MqttSnConfig,
        *,
        now: float,
        advertise_to: Address | None = None,
        durable_qos2: bool = False,
    ) -> None:
        """``durable_qos2``: the driver stores `take_dirty` records and then calls
        `sessions_stored`; a QoS 2 PUBREC is held until the record that remembers the message
        id is stored, so that a gateway restart cannot forward a retransmitted PUBLISH twice."""
        self._config = config
        self._predefined = PredefinedTopics(config.predefined_topics)
        self._advertise_to = advertise_to
        self.counters: Counter[str] = Counter()
        self._sessions: dict[str, ClientSession] = {}
        self._by_key: dict[Address, ClientSession] = {}
        self._events: deque[Event] = deque()
        self._out: list[tuple[bytes, Address]] = []
        self._timers: list[tuple[float, int, str, str, int]] = []
        self._timer_seq = count()
        self._armed: dict[str, float] = {}
        self._subscriptions = SubscriptionIndex()
        self._retained = RetainedStore()
        self._rate_limiter = AddressRateLimiter(config.rate_limit, config.rate_burst)
        self._dirty: set[str] = set()
        self._durable_qos2 = durable_qos2
        # (client id, msg id) of accepted QoS 2 PUBLISHes whose PUBREC waits for storage:
        # not yet taken by take_dirty, and taken but not yet reported stored.
        self._pubrec_unsaved: set[tuple[str, int]] = set()
        self._pubrec_saving: set[tuple[str, int]] = set()
        # Bound methods in an instance table, not a class-body table of functions: mypyc
        # (setup.py) cannot compile a class body that names its own methods.
        self._handlers: dict[MsgType, Callable[[ClientSession, Any, float], None]] = {
            MsgType.WILLTOPIC: self._on_willtopic,
            MsgType.WILLMSG: self._on_willmsg,
            MsgType.REGISTER: self._on_register,
            MsgType.PUBLISH: self._on_publish,
            MsgType.PUBACK: self._on_puback,
            MsgType.PUBREC: self._on_pubrec,
            MsgType.PUBREL: self._on_pubrel,
            MsgType.PUBCOMP: self._on_pubcomp,
            MsgType.REGACK: self._on_regack,
            MsgType.SUBSCRIBE: self._on_subscribe,
            MsgType.UNSUBSCRIBE: self._on_unsubscribe,
            MsgType.PINGREQ: self._on_pingreq,
            MsgType.DISCONNECT: self._on_disconnect,
            MsgType.WILLTOPICUPD: self._on_willtopicupd,
            MsgType.WILLMSGUPD: self._on_willmsgupd,
        }
        self._push_timer(now + _HOUSEKEEPING_INTERVAL, "housekeeping")
        if config.advertise_interval and advertise_to is not None:
            self._push_timer(now, "advertise")

    # --- the driver's interface ------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Handle one datagram from `addr`; bad input is counted and dropped, never raised."""
        self.counters["rx_datagrams"] += 1
        if len(data) > self._config.max_packet_size:
            self.counters["drop_oversize"] += 1
            return
        if not self._rate_limiter.allow(addr, now):
            self.counters["drop_rate_limited"] += 1
            return
        try:
            packet = decode(data)
            node_id: bytes | None = None
            if isinstance(packet, Encapsulated):
                node_id = packet.wireless_node_id
                if len(packet.message) > self._config.max_packet_size:
                    self.counters["drop_oversize"] += 1
                    return
                packet = decode(packet.message)
                if isinstance(packet, Encapsulated):
                    raise MalformedPacket("nested_encapsulation")
        except MalformedPacket as exc:
            self.counters[f"drop_malformed_{exc.reason}"] += 1
            return
        self.counters[_RX_COUNTER[packet.msg_type]] += 1
        self._dispatch(packet, addr, node_id, now)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Datagrams produced since the last call, in order, with their destination."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When `handle_timer` should next be called (monotonic seconds), or None."""
        return self._timers[0][0] if self._timers else None

    def handle_timer(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            deadline, _, kind, client_id, arg = heapq.heappop(self._timers)
            if kind == "liveness":
                self._on_liveness_timer(client_id, deadline, now)
            elif kind == "retry":
                self._on_retry_timer(client_id, arg, deadline, now)
            elif kind == "advertise":
                self._send_advertise(now)
            elif kind == "housekeeping":
                self._housekeeping(now)

    def ack_publish(self, client_id: str, msg_id: int, return_code: ReturnCode, now: float) -> None:
        """Answer a client's QoS 1/2 PUBLISH once it is safe (or refused with `return_code`)."""
        session = self._sessions.get(client_id)
        if session is None:
            return
        pending = session.acks_pending.pop(msg_id, None)
        if pending is None:
            return
        topic_id, qos = pending
        if return_code is not ReturnCode.ACCEPTED:
            self.counters[f"publish_refused_{return_code.name.lower()}"] += 1
            self._send_if_connected(session, PubAck(topic_id, msg_id, return_code))
        elif qos == 1:
            self._send_if_connected(session, PubAck(topic_id, msg_id, ReturnCode.ACCEPTED))
        else:
            session.qos2_received.add(msg_id)
            self._dirty.add(client_id)
            if self._durable_qos2:
                self._pubrec_unsaved.add((client_id, msg_id))
            else:
                self._send_if_connected(session, PubRec(msg_id))

    @property
    def store_wanted(self) -> bool:
        """Whether a PUBREC waits for the sessions to be stored (store soon, not on the tick)."""
        return bool(self._pubrec_unsaved)

    def sessions_stored(self) -> int:
        """The records of the last `take_dirty` are stored: send the PUBRECs that waited for
        them (to clients still connected that still hold that QoS 2 exchange). Returns how many
        were sent."""
        saving, self._pubrec_saving = self._pubrec_saving, set()
        sent = 0
        for client_id, msg_id in saving:
            session = self._sessions.get(client_id)
            if (
                session is not None
                and msg_id in session.qos2_received
                and session.state in CONNECTED_STATES
            ):
                self._send(session, PubRec(msg_id))
                sent += 1
        return sent

    def deliver(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        now: float,
        *,
        replay: bool = False,
    ) -> int:
        """Route a message to every subscribed client; returns how many clients it was queued for.

        `replay` marks a broker's retained message sent because the gateway subscribed: it goes
        into the local retained store, and on to clients only if the store did not already hold it
        (clients get stored retained messages when they SUBSCRIBE).
        """
        if retain:
            if replay and self._retained.holds(topic, payload):
                return 0
            if not self._retained.put(topic, payload, qos):
                self.counters["drop_retained_store_full"] += 1
        queued = 0
        for client_id, sub_qos in self._subscriptions.targets(topic).items():
            session = self._sessions.get(client_id)
            if session is not None and self._enqueue(
                session, OutboundMessage(topic, payload, min(qos, sub_qos), False), now
            ):
                queued += 1
        return queued

    def restore(self, records: Iterable[Mapping[str, Any]], now: float) -> int:
        """Load sessions saved by `take_dirty` before a restart; returns how many were loaded."""
        loaded = 0
        for record in records:
            session = ClientSession.from_record(dict(record))
            if session.state in (_C, _W, _A):
                session.state = _A if session.state is _A else (
                    _S if session.state is _W else ClientState.DISCONNECTED
                )
            session.last_seen = now
            self._sessions[session.client_id] = session
            if session.state in SESSION_STATES:
                self._by_key[session.key] = session
            for topic_filter, qos in session.subscriptions.items():
                self._subscriptions.add(session.client_id, topic_filter, qos)
                self._events.append(SubscriptionAdded(session.client_id, topic_filter, qos))
            self._arm_liveness(session)
            loaded += 1
        for session in self._sessions.values():
            if session.state in CONNECTED_STATES:
                self._resend_inflight(session, now)
                self._pump(session, now)
        return loaded

    def take_dirty(self) -> dict[str, dict[str, Any] | None]:
        """Sessions changed since the last call: client id -> record, or None when deleted."""
        dirty, self._dirty = self._dirty, set()
        self._pubrec_saving |= self._pubrec_unsaved
        self._pubrec_unsaved = set()
        return {
            client_id: (session.to_record() if (session := self._sessions.get(client_id)) else None)
            for client_id in dirty
        }

    def client_states(self) -> Counter[str]:
        return Counter(session.state.value for session in self._sessions.values())

    def session(self, client_id: str) -> ClientSession | None:
        return self._sessions.get(client_id)

    # --- inbound dispatch ------------------------------------------------------------------

    def _dispatch(self, packet: Packet, addr: Address, node_id: bytes | None, now: float) -> None:
        key = addr if node_id is None else (addr, node_id)
        msg_type = packet.msg_type
        if isinstance(packet, Connect):
            self._on_connect(packet, addr, node_id, now)
            return
        if isinstance(packet, SearchGw):
            self._send_to(GwInfo(self._config.gateway_id), addr, node_id)
            return
        if isinstance(packet, Publish) and packet.qos is QoS.MINUS_ONE:
            session = self._by_key.get(key)
            if session is None or session.state not in CONNECTED_STATES:
                self._on_publish_minus_one(packet)
                return
        if msg_type in _GATEWAY_ONLY:
            self.counters[f"drop_unexpected_{msg_type.name}"] += 1
            return
        session = self._by_key.get(key)
        if isinstance(packet, PingReq) and packet.client_id:
            named = self._sessions.get(packet.client_id)
            if named is not None and named.state in (_S, _W):
                self._rebind(named, addr, node_id)
                session = named
        if session is None:
            self.counters["drop_unknown_client"] += 1
            self._send_to(Disconnect(), addr, node_id)
            return
        if session.state not in _ALLOWED_STATES[msg_type]:
            self.counters[f"drop_wrong_state_{msg_type.name}"] += 1
            if session.state not in SESSION_STATES:
                self._send(session, Disconnect())
            return
        session.last_seen = now
        self._handlers[msg_type](session, packet, now)

    def _on_connect(
        self, packet: Connect, addr: Address, node_id: bytes | None, now: float
    ) -> None:
        if packet.protocol_id != PROTOCOL_ID or not packet.client_id:
            self.counters["connect_refused_not_supported"] += 1
            self._send_to(ConnAck(ReturnCode.NOT_SUPPORTED), addr, node_id)
            return
        session = self._sessions.get(packet.client_id)
        if session is None:
            if len(self._sessions) >= self._config.max_clients:
                self.counters["connect_refused_congestion"] += 1
                self._send_to(ConnAck(ReturnCode.CONGESTION), addr, node_id)
                return
            session = ClientSession(packet.client_id, addr, node_id)
            self._sessions[packet.client_id] = session
        elif session.state in CONNECTED_STATES and session.key != (
            addr if node_id is None else (addr, node_id)
        ):
            self._events.append(ClientDisconnected(session.client_id, session.address, "replaced"))
        self._rebind(session, addr, node_id)
        session.clean_session = packet.clean_session
        session.keepalive = packet.duration
        session.last_seen = now
        if packet.clean_session:
            self._drop_subscriptions(session)
            session.reset()
        session.will = session.pending_will = None
        session.ping_after_flush = False
        self._dirty.add(session.client_id)
        if packet.will:
            session.state = _C
            self._send(session, WillTopicReq())
            self._arm_liveness(session)
        else:
            self._activate(session, now)

    def _on_willtopic(self, session: ClientSession, packet: WillTopic, now: float) -> None:
        if not packet.will_topic:
            self._activate(session, now)
            return
        session.pending_will = Will(packet.will_topic, b"", int(packet.qos), packet.retain)
        self._send(session, WillMsgReq())

    def _on_willmsg(self, session: ClientSession, packet: WillMsg, now: float) -> None:
        will = session.pending_will
        if will is None:
            self.counters["drop_wrong_state_WILLMSG"] += 1
            return
        will.message = packet.will_msg
        session.will, session.pending_will = will, None
        self._activate(session, now)

    def _on_register(self, session: ClientSession, packet: Register, now: float) -> None:
        if not is_valid_topic_name(packet.topic_name):
            self._send(session, RegAck(0, packet.msg_id, ReturnCode.NOT_SUPPORTED))
            return
        topic_id = session.registry.register(packet.topic_name)
        if topic_id is None:
            self._send(session, RegAck(0, packet.msg_id, ReturnCode.CONGESTION))
            return
        self._dirty.add(session.client_id)
        self._send(session, RegAck(topic_id, packet.msg_id, ReturnCode.ACCEPTED))

    def _on_publish(self, session: ClientSession, packet: Publish, now: float) -> None:
        topic = self._inbound_topic(session, packet.topic_id_type, packet.topic_id)
        if topic is None:
            self.counters["publish_invalid_topic_id"] += 1
            self._send(session, PubAck(packet.topic_id, packet.msg_id, ReturnCode.INVALID_TOPIC_ID))
            return
        qos = max(int(packet.qos), 0)
        if qos == 2 and packet.msg_id in session.qos2_received:
            self.counters["publish_duplicate"] += 1
            exchange = (session.client_id, packet.msg_id)
            if exchange not in self._pubrec_unsaved and exchange not in self._pubrec_saving:
                self._send(session, PubRec(packet.msg_id))  # else it follows the storage
            return
        if qos > 0:
            if packet.msg_id in session.acks_pending:
                self.counters["publish_duplicate"] += 1
                return
            session.acks_pending[packet.msg_id] = (packet.topic_id, qos)
        self._events.append(
            MessagePublished(
                session.client_id, topic, packet.data, qos, packet.retain, packet.msg_id
            )
        )

    def _on_publish_minus_one(self, packet: Publish) -> None:
        if packet.topic_id_type is TopicIdType.NORMAL:
            self.counters["drop_qos_minus_one_normal_topic"] += 1
            return
        topic = self._inbound_topic(None, packet.topic_id_type, packet.topic_id)
        if topic is None:
            self.counters["drop_qos_minus_one_unknown_topic"] += 1
            return
        self._events.append(MessagePublished(None, topic, packet.data, 0, packet.retain))

    def _on_puback(self, session: ClientSession, packet: PubAck, now: float) -> None:
        entry = session.inflight.get(packet.msg_id)
        if entry is None or entry.awaiting != "puback":
            self.counters["drop_unexpected_ack"] += 1
            return
        del session.inflight[packet.msg_id]
        if packet.return_code is not ReturnCode.ACCEPTED:
            self.counters[f"client_refused_{packet.return_code.name.lower()}"] += 1
            if packet.return_code is ReturnCode.INVALID_TOPIC_ID and entry.message is not None:
                session.registry.remove(entry.message.topic)
        self._dirty.add(session.client_id)
        self._pump(session, now)

    def _on_pubrec(self, session: ClientSession, packet: PubRec, now: float) -> None:
        entry = session.inflight.get(packet.msg_id)
        if entry is None or entry.awaiting not in ("pubrec", "pubcomp"):
            self.counters["drop_unexpected_ack"] += 1
            return
        entry.awaiting = "pubcomp"
        entry.retries = 0
        self._dirty.add(session.client_id)
        self._arm_retry(session, entry, now)
        self._send(session, PubRel(packet.msg_id))

    def _on_pubrel(self, session: ClientSession, packet: PubRel, now: float) -> None:
        if packet.msg_id in session.qos2_received:
            session.qos2_received.discard(packet.msg_id)
            self._dirty.add(session.client_id)
        self._send(session, PubComp(packet.msg_id))

    def _on_pubcomp(self, session: ClientSession, packet: PubComp, now: float) -> None:
        entry = session.inflight.get(packet.msg_id)
        if entry is None or entry.awaiting != "pubcomp":
            self.counters["drop_unexpected_ack"] += 1
            return
        del session.inflight[packet.msg_id]
        self._dirty.add(session.client_id)
        self._pump(session, now)

    def _on_regack(self, session: ClientSession, packet: RegAck, now: float) -> None:
        entry = session.inflight.get(packet.msg_id)
        if entry is None or entry.awaiting != "regack":
            self.counters["drop_unexpected_ack"] += 1
            return
        if packet.topic_id not in (entry.topic_id, 0):
            # A late REGACK of an earlier REGISTER that reused this msg id (e.g. from before a
            # session was discarded): it does not accept this topic id. Keep waiting (and
            # retrying) for the answer to ours. (0: a client that does not echo the id.)
            self.counters["drop_regack_topic_id_mismatch"] += 1
            return
        del session.inflight[packet.msg_id]
        topic = session.registry.name(entry.topic_id)
        if topic is not None:
            session.pending_registration.pop(topic, None)
            if packet.return_code is not ReturnCode.ACCEPTED:
                self.counters["client_refused_register"] += 1
                session.registry.remove(topic)
                session.rejected_topics.add(topic)
        self._dirty.add(session.client_id)
        self._pump(session, now)

    def _on_subscribe(self, session: ClientSession, packet: Subscribe, now: float) -> None:
        if packet.qos is QoS.MINUS_ONE:
            self._send(session, SubAck(0, packet.msg_id, ReturnCode.NOT_SUPPORTED))
            return
        resolved = self._subscription_topic(
            session, packet.topic_id_type, packet.topic, register=True
        )
        if isinstance(resolved, ReturnCode):
            self._send(session, SubAck(0, packet.msg_id, resolved))
            return
        topic_filter, topic_id = resolved
        granted = int(packet.qos)
        is_new = topic_filter not in session.subscriptions
        session.subscriptions[topic_filter] = granted
        self._subscriptions.add(session.client_id, topic_filter, granted)
        self._dirty.add(session.client_id)
        self._send(session, SubAck(topic_id, packet.msg_id, ReturnCode.ACCEPTED, QoS(granted)))
        if is_new:
            self._events.append(SubscriptionAdded(session.client_id, topic_filter, granted))
        for topic, payload, qos in self._retained.matching(topic_filter):
            retained = OutboundMessage(topic, payload, min(qos, granted), True)
            self._enqueue(session, retained, now)

    def _on_unsubscribe(self, session: ClientSession, packet: Unsubscribe, now: float) -> None:
        resolved = self._subscription_topic(
            session, packet.topic_id_type, packet.topic, register=False
        )
        if not isinstance(resolved, ReturnCode):
            topic_filter = resolved[0]
            if session.subscriptions.pop(topic_filter, None) is not None:
                self._subscriptions.remove(session.client_id, topic_filter)
                self._events.append(SubscriptionRemoved(session.client_id, topic_filter))
                self._dirty.add(session.client_id)
        self._send(session, UnsubAck(packet.msg_id))

    def _on_pingreq(self, session: ClientSession, packet: PingReq, now: float) -> None:
        if session.state is _S:
            session.state = _W
            self._resend_inflight(session, now)
            if session.queue or session.inflight:
                session.ping_after_flush = True
                self._pump(session, now)
                return
            session.state = _S
        elif session.state is _W and (session.queue or session.inflight):
            return
        self._send(session, PingResp())
        self._arm_liveness(session)

    def _on_disconnect(self, session: ClientSession, packet: Disconnect, now: float) -> None:
        self._send(session, Disconnect())
        if packet.duration and session.state is not _C:
            session.state = _S
            session.sleep_duration = packet.duration
            session.ping_after_flush = False
            self._events.append(ClientDisconnected(session.client_id, session.address, "asleep"))
            self._arm_liveness(session)
            self._dirty.add(session.client_id)
            return
        session.state = ClientState.DISCONNECTED
        self._events.append(ClientDisconnected(session.client_id, session.address, "disconnect"))
        if session.clean_session:
            self._forget(session)
        else:
            self._dirty.add(session.client_id)

    def _on_willtopicupd(self, session: ClientSession, packet: WillTopicUpd, now: float) -> None:
        if not packet.will_topic:
            session.will = None
        elif session.will is None:
            session.will = Will(packet.will_topic, b"", int(packet.qos), packet.retain)
        else:
            session.will.topic = packet.will_topic
            session.will.qos = int(packet.qos)
            session.will.retain = packet.retain
        self._dirty.add(session.client_id)
        self._send(session, WillTopicResp(ReturnCode.ACCEPTED))

    def _on_willmsgupd(self, session: ClientSession, packet: WillMsgUpd, now: float) -> None:
        if session.will is None:
            self._send(session, WillMsgResp(ReturnCode.NOT_SUPPORTED))
            return
        session.will.message = packet.will_msg
        self._dirty.add(session.client_id)
        self._send(session, WillMsgResp(ReturnCode.ACCEPTED))

    # --- topics ----------------------------------------------------------------------------

    def _inbound_topic(
        self, session: ClientSession | None, topic_id_type: TopicIdType, topic_id: int
    ) -> str | None:
        if topic_id_type is TopicIdType.NORMAL:
            return None if session is None else session.registry.name(topic_id)
        if topic_id_type is TopicIdType.PREDEFINED:
            return self._predefined.name(topic_id)
        return short_id_to_name(topic_id)

    def _subscription_topic(
        self,
        session: ClientSession,
        topic_id_type: TopicIdType,
        topic: str | int,
        *,
        register: bool,
    ) -> tuple[str, int] | ReturnCode:
        """(filter, topic id for SUBACK), or the return code that refuses it.

        With `register`, a plain topic name gets (or keeps) a normal topic id for SUBACK.
        """
        if topic_id_type is TopicIdType.PREDEFINED:
            name = self._predefined.name(int(topic))
            return ReturnCode.INVALID_TOPIC_ID if name is None else (name, int(topic))
        name = str(topic)
        if topic_id_type is TopicIdType.SHORT_NAME:
            return name, 0
        if not is_valid_filter(name):
            return ReturnCode.INVALID_TOPIC_ID
        if is_wildcard(name) or not register:
            return name, 0
        topic_id = session.registry.register(name)
        return ReturnCode.CONGESTION if topic_id is None else (name, topic_id)

    def _outbound_topic(self, session: ClientSession, topic: str) -> tuple[TopicIdType, int] | None:
        predefined = self._predefined.topic_id(topic)
        if predefined is not None:
            return TopicIdType.PREDEFINED, predefined
        if len(topic) == 2 and len(topic.encode()) == 2:
            return TopicIdType.SHORT_NAME, short_name_to_id(topic)
        if topic in session.pending_registration:
            return None
        topic_id = session.registry.topic_id(topic)
        return None if topic_id is None else (TopicIdType.NORMAL, topic_id)

    def _drop_subscriptions(self, session: ClientSession) -> None:
        for topic_filter in session.subscriptions:
            self._subscriptions.remove(session.client_id, topic_filter)
            self._events.append(SubscriptionRemoved(session.client_id, topic_filter))
        session.subscriptions.clear()

    # --- outbound delivery -----------------------------------------------------------------

    def _enqueue(self, session: ClientSession, message: OutboundMessage, now: float) -> bool:
        if session.state not in SESSION_STATES and (session.clean_session or message.qos == 0):
            return False
        if len(session.queue) >= self._config.max_buffered:
            self.counters["drop_client_buffer_full"] += 1
            return False
        session.queue.append(message)
        self._dirty.add(session.client_id)
        self._pump(session, now)
        return True

    def _pump(self, session: ClientSession, now: float) -> None:
        """Send queued messages while the in-flight window allows, REGISTERing topics first."""
        if session.state not in CONNECTED_STATES:
            return
        queue = session.queue
        if queue:
            self._dirty.add(session.client_id)
        while queue:
            message = queue[0]
            if message.qos > 0 and len(session.inflight) >= self._config.max_inflight:
                break
            resolved = self._outbound_topic(session, message.topic)
            if resolved is None:
                if message.topic in session.rejected_topics:
                    queue.popleft()
                    self.counters["drop_topic_refused_by_client"] += 1
                    continue
                if message.topic not in session.pending_registration:
                    self._send_register(session, message.topic, now)
                break
            queue.popleft()
            self._send_publish(session, message, resolved, now)
        if session.ping_after_flush and not queue and not session.inflight:
            session.ping_after_flush = False
            session.state = _S
            self._send(session, PingResp())
            self._arm_liveness(session)

    def _send_register(self, session: ClientSession, topic: str, now: float) -> None:
        if len(session.inflight) >= self._config.max_inflight:
            return
        topic_id = session.registry.register(topic)
        if topic_id is None:
            self.counters["drop_client_topic_ids_exhausted"] += 1
            session.queue.popleft()
            return
        msg_id = session.allocate_msg_id()
        session.pending_registration[topic] = msg_id
        entry = InFlight(msg_id, "regack", None, topic_id, TopicIdType.NORMAL, 0.0)
        session.inflight[msg_id] = entry
        self._arm_retry(session, entry, now)
        self._send(session, Register(topic_id, msg_id, topic))

    def _send_publish(
        self,
        session: ClientSession,
        message: OutboundMessage,
        resolved: tuple[TopicIdType, int],
        now: float,
    ) -> None:
        topic_id_type, topic_id = resolved
        if message.qos == 0:
            self._send(session, Publish(
                topic_id, 0, message.payload, QoS.AT_MOST_ONCE, topic_id_type, False, message.retain
            ))
            return
        msg_id = session.allocate_msg_id()
        awaiting = "puback" if message.qos == 1 else "pubrec"
        entry = InFlight(msg_id, awaiting, message, topic_id, topic_id_type, 0.0)
        session.inflight[msg_id] = entry
        self._arm_retry(session, entry, now)
        self._send(session, self._publish_packet(entry, dup=False))

    @staticmethod
    def _publish_packet(entry: InFlight, *, dup: bool) -> Publish:
        assert entry.message is not None
        return Publish(
            entry.topic_id, entry.msg_id, entry.message.payload, QoS(entry.message.qos),
            TopicIdType(entry.topic_id_type), dup, entry.message.retain,
        )

    def _resend(self, session: ClientSession, entry: InFlight) -> None:
        if entry.awaiting == "regack":
            topic = session.registry.name(entry.topic_id) or ""
            self._send(session, Register(entry.topic_id, entry.msg_id, topic))
        elif entry.awaiting == "pubcomp":
            self._send(session, PubRel(entry.msg_id))
        else:
            self._send(session, self._publish_packet(entry, dup=True))

    def _resend_inflight(self, session: ClientSession, now: float) -> None:
        for entry in list(session.inflight.values()):
            entry.retries = 0
            self._arm_retry(session, entry, now)
            self._resend(session, entry)

    # --- lifecycle -------------------------------------------------------------------------

    def _activate(self, session: ClientSession, now: float) -> None:
        session.state = _A
        self._send(session, ConnAck(ReturnCode.ACCEPTED))
        self._events.append(
            ClientConnected(session.client_id, session.address, session.clean_session)
        )
        self._arm_liveness(session)
        self._dirty.add(session.client_id)
        self._resend_inflight(session, now)
        self._pump(session, now)

    def _rebind(self, session: ClientSession, addr: Address, node_id: bytes | None) -> None:
        old_key = session.key
        if self._by_key.get(old_key) is session:
            del self._by_key[old_key]
        session.address = addr
        session.node_id = node_id
        previous = self._by_key.get(session.key)
        if previous is not None and previous is not session and previous.state in SESSION_STATES:
            self._lose(previous, "replaced", publish_will=False)
        self._by_key[session.key] = session

    def _lose(self, session: ClientSession, reason: str, *, publish_will: bool = True) -> None:
        was_connected = session.state in CONNECTED_STATES or session.state is _S
        session.state = ClientState.LOST
        self.counters[f"client_{reason}"] += 1
        if was_connected:
            self._events.append(ClientDisconnected(session.client_id, session.address, reason))
        if publish_will and session.will is not None and session.will.topic:
            will = session.will
            self._events.append(MessagePublished(
                session.client_id, will.topic, will.message, will.qos, will.retain, will=True
            ))
        if self._by_key.get(session.key) is session:
            del self._by_key[session.key]
        if session.clean_session:
            self._forget(session)
        else:
            self._dirty.add(session.client_id)

    def _forget(self, session: ClientSession) -> None:
        self._drop_subscriptions(session)
        self._sessions.pop(session.client_id, None)
        self._armed.pop(session.client_id, None)
        if self._by_key.get(session.key) is session:
            del self._by_key[session.key]
        self._dirty.add(session.client_id)

    # --- timers ----------------------------------------------------------------------------

    def _push_timer(self, deadline: float, kind: str, client_id: str = "", arg: int = 0) -> None:
        heapq.heappush(self._timers, (deadline, next(self._timer_seq), kind, client_id, arg))

    def _liveness_deadline(self, session: ClientSession) -> float | None:
        if session.state is _C:
            return session.last_seen + _HANDSHAKE_TIMEOUT
        if session.state in CONNECTED_STATES and session.keepalive:
            return session.last_seen + KEEP_ALIVE_GRACE * session.keepalive
        if session.state is _S and session.sleep_duration:
            return session.last_seen + KEEP_ALIVE_GRACE * session.sleep_duration
        return None

    def _arm_liveness(self, session: ClientSession) -> None:
        deadline = self._liveness_deadline(session)
        armed = self._armed.get(session.client_id)
        if deadline is None or (armed is not None and armed <= deadline):
            return  # an earlier timer will fire and re-arm lazily
        self._armed[session.client_id] = deadline
        self._push_timer(deadline, "liveness", session.client_id)

    def _on_liveness_timer(self, client_id: str, deadline: float, now: float) -> None:
        if self._armed.get(client_id) != deadline:
            return
        del self._armed[client_id]
        session = self._sessions.get(client_id)
        if session is None:
            return
        current = self._liveness_deadline(session)
        if current is None:
            return
        if current > now:
            self._armed[client_id] = current
            self._push_timer(current, "liveness", client_id)
            return
        reason = {_C: "lost_handshake", _S: "lost_sleep"}.get(session.state, "lost_keepalive")
        self._lose(session, reason)

    def _arm_retry(self, session: ClientSession, entry: InFlight, now: float) -> None:
        entry.deadline = now + self._config.retry_interval
        self._push_timer(entry.deadline, "retry", session.client_id, entry.msg_id)

    def _on_retry_timer(self, client_id: str, msg_id: int, deadline: float, now: float) -> None:
        session = self._sessions.get(client_id)
        entry = None if session is None else session.inflight.get(msg_id)
        if session is None or entry is None or entry.deadline != deadline:
            return
        if session.state not in CONNECTED_STATES:
            return  # re-sent when the client wakes or reconnects
        if entry.retries >= self._config.retry_count:
            self._lose(session, "lost_retries")
            return
        entry.retries += 1
        self.counters["tx_retries"] += 1
        self._arm_retry(session, entry, now)
        self._resend(session, entry)

    def _send_advertise(self, now: float) -> None:
        interval = self._config.advertise_interval
        if self._advertise_to is not None:
            datagram = encode(Advertise(self._config.gateway_id, interval))
            self._out.append((datagram, self._advertise_to))
            self.counters["tx_ADVERTISE"] += 1
        self._push_timer(now + interval, "advertise")

    def _housekeeping(self, now: float) -> None:
        self._rate_limiter.forget_idle(now - _HOUSEKEEPING_INTERVAL)
        self._push_timer(now + _HOUSEKEEPING_INTERVAL, "housekeeping")

    # --- sending ---------------------------------------------------------------------------

    def _send(self, session: ClientSession, packet: Packet) -> None:
        self._send_to(packet, session.address, session.node_id)

    def _send_if_connected(self, session: ClientSession, packet: Packet) -> None:
        if session.state in CONNECTED_STATES:
            self._send(session, packet)

    def _send_to(self, packet: Packet, addr: Address, node_id: bytes | None) -> None:
        try:
            data = encode(packet)
        except ValueError:
            self.counters["drop_unencodable"] += 1
            return
        if node_id is not None:
            data = encode(Encapsulated(1, node_id, data))
        if len(data) > self._config.max_packet_size:
            self.counters["drop_too_large_for_client"] += 1
            return
        self.counters[_TX_COUNTER[packet.msg_type]] += 1
        self._out.append((data, addr))
