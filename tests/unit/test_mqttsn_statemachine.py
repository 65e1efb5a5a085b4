"""Stateful property tests of GatewayCore: simulated MQTT-SN clients over an in-memory network.

`GatewayMachine` drives one core with 1-3 client models (built on the project codec) over a
network that drops, duplicates and reorders datagrams, a driver that acks client publishes and
delivers broker messages, a clock, and restarts from take_dirty() records; it checks protocol
invariants after every step. `LosslessOrderMachine` checks per-topic order and completeness of
deliveries to connected subscribers on a perfect network.

The checks keep a "gateway view" per client: what the gateway has told the client or learnt from
it since the gateway's session for that client began (a clean CONNECT or a forgotten session
starts a new one). Client message ids are never reused, so (client id, msg id) names one message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gateway.mqttsn.codec import MalformedPacket, decode, encode
from gateway.mqttsn.constants import KEEP_ALIVE_GRACE, QoS, ReturnCode, TopicIdType
from gateway.mqttsn.core import GatewayCore
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
    ConnAck,
    Connect,
    Disconnect,
    Encapsulated,
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
    UnsubAck,
    Unsubscribe,
    WillMsg,
    WillMsgReq,
    WillTopic,
    WillTopicReq,
)
from gateway.mqttsn.session import ClientSession, ClientState
from schemas.config import MqttSnConfig
from tests.unit.strategies import packets as valid_packets

ACCEPTED = ReturnCode.ACCEPTED
GATEWAY: Address = ("192.0.2.1", 1884)
STRANGER: Address = ("198.51.100.9", 9999)
BROADCAST: Address = ("255.255.255.255", 1884)
PREDEFINED = {1: "pre/one", 2: "s/p"}
REGISTER_NAMES = ("s/a", "s/b", "t/x/y", "u/v")
SHORT_NAMES = ("ab", "zz")
DELIVER_TOPICS = ("s/a", "s/b", "s/p", "t/x/y", "t/q/y", "pre/one", "ab")
FILTERS: tuple[tuple[TopicIdType, str | int], ...] = (
    (TopicIdType.NORMAL, "s/a"),
    (TopicIdType.NORMAL, "t/x/y"),
    (TopicIdType.NORMAL, "s/p"),
    (TopicIdType.NORMAL, "s/+"),
    (TopicIdType.NORMAL, "s/#"),
    (TopicIdType.NORMAL, "#"),
    (TopicIdType.NORMAL, "t/+/y"),
    (TopicIdType.NORMAL, "+/x/+"),
    (TopicIdType.SHORT_NAME, "ab"),
    (TopicIdType.PREDEFINED, 1),
)
UNKNOWN_TOPIC_ID = 777
LIFECYCLE_ACTIONS = ("ping", "ping", "sleep", "wake", "wake", "disconnect")
NETWORK_ACTIONS = (
    ("deliver_next",) * 4 + ("deliver_later_one_first",) * 2 + ("drop", "duplicate")
)
HANDSHAKE_TIMEOUT = 60.0  # how long the core waits for WILLTOPIC/WILLMSG
LOST_REASONS = frozenset({"lost_keepalive", "lost_sleep", "lost_retries"})
CONNECTED = frozenset({ClientState.ACTIVE, ClientState.AWAKE})
# How restore() maps a recorded state: what a record in that state means after a restart.
RESTORED_STATE = {"connecting": "disconnected", "awake": "asleep"}


def filter_name(topic_id_type: TopicIdType, topic: str | int) -> str:
    """The topic filter a SUBSCRIBE/UNSUBSCRIBE names."""
    if topic_id_type is TopicIdType.PREDEFINED:
        return PREDEFINED[int(topic)]
    return str(topic)


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching, written here independently of the gateway's own."""
    wanted = topic_filter.split("/")
    levels = topic.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or level not in ("+", levels[index]):
            return False
    return len(wanted) == len(levels)


def short_id(name: str) -> int:
    return int.from_bytes(name.encode(), "big")


def names_a_client(packet: Packet, client_ids: set[str]) -> bool:
    """Whether a stranger's packet would act on one of our clients' sessions by client id."""
    if isinstance(packet, Encapsulated):
        try:
            packet = decode(packet.message)
        except MalformedPacket:
            return False
    return isinstance(packet, Connect | PingReq) and packet.client_id in client_ids


def comparable_record(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A session record as restore() would interpret it (a will only matters while connected)."""
    if record is None:
        return None
    record = dict(record)
    record["state"] = RESTORED_STATE.get(record["state"], record["state"])
    if record["state"] not in ("active", "asleep"):
        record["will"] = None
    return record


# --- the simulated clients -------------------------------------------------------------------


@dataclass
class OutPub:
    """A client's own QoS 1/2 PUBLISH awaiting PUBACK/PUBREC ("ack") or PUBCOMP ("rel")."""

    packet: Publish
    stage: str = "ack"


@dataclass
class SimClient:
    cid: str
    addr: Address
    state: str = "off"  # off, connecting, active, asleep, waking
    clean: bool = True
    will: tuple[str, bytes, int, bool] | None = None
    will_messages: set[bytes] = field(default_factory=set)
    next_id: int = 1
    topics: dict[str, int] = field(default_factory=dict)  # registered name -> topic id
    inflight: dict[int, OutPub] = field(default_factory=dict)
    pending: dict[int, Packet] = field(default_factory=dict)  # REGISTER/SUBSCRIBE/UNSUBSCRIBE
    log: dict[int, Packet] = field(default_factory=dict)  # every request ever sent, by msg id
    to_answer: list[Packet] = field(default_factory=list)
    qos2_in: set[int] = field(default_factory=set)

    def allocate(self) -> int:
        msg_id = self.next_id
        self.next_id += 1
        return msg_id

    def knows(self, packet: Publish) -> bool:
        return packet.topic_id_type is not TopicIdType.NORMAL or (
            packet.topic_id in self.topics.values()
        )

    def forget_topic_id(self, topic_id: int) -> None:
        for name in [n for n, i in self.topics.items() if i == topic_id]:
            del self.topics[name]


@dataclass
class GatewayView:
    """What the gateway told one client, or learnt from it, in the gateway's current session."""

    agreed: dict[int, str] = field(default_factory=dict)  # NORMAL ids the client accepted
    told: dict[int, str] = field(default_factory=dict)  # NORMAL ids the gateway announced
    register_sent: dict[int, tuple[int, str]] = field(default_factory=dict)  # msg id -> id, name
    subs: dict[str, int] = field(default_factory=dict)  # filter -> granted QoS (per SUBACK)
    event_subs: set[str] = field(default_factory=set)  # per SubscriptionAdded/Removed
    ids: dict[int, tuple[Any, ...]] = field(default_factory=dict)  # gateway msg id -> exchange
    outstanding: dict[int, str] = field(default_factory=dict)  # gateway msg id -> awaited ack
    qos2_out: dict[bytes, int] = field(default_factory=dict)  # QoS 2 payload -> its msg id
    qos2_open: set[int] = field(default_factory=set)  # client QoS 2 ids emitted, not completed


@dataclass(frozen=True)
class Delivery:
    topic: str
    qos: int
    retain: bool
    targets: dict[str, int]  # client id -> highest granted QoS of its matching filters


@dataclass(frozen=True)
class Datagram:
    data: bytes
    src: Address
    dst: Address


@dataclass(frozen=True)
class Snapshot:
    state: ClientState
    last_seen: float
    keepalive: int
    sleep_duration: int


def _snapshot(session: ClientSession | None) -> Snapshot | None:
    if session is None:
        return None
    return Snapshot(session.state, session.last_seen, session.keepalive, session.sleep_duration)


# --- the lossy machine -----------------------------------------------------------------------


class GatewayMachine(RuleBasedStateMachine):
    """One GatewayCore, its clients, a lossy network, a driver, a clock and restarts."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.config = MqttSnConfig()
        self.core = GatewayCore(self.config, now=self.now)
        self.clients: list[SimClient] = []
        self.by_addr: dict[Address, SimClient] = {}
        self.views: dict[str, GatewayView] = {}
        self.net: list[Datagram] = []
        self.store: dict[str, dict[str, Any]] = {}
        self.client_pubs: dict[bytes, tuple[str, Publish]] = {}
        self.emitted: set[tuple[str, int]] = set()
        self.acks_effective: dict[tuple[str, int], set[ReturnCode]] = {}
        self.pending_acks: list[tuple[str, int]] = []
        self.deliveries: dict[bytes, Delivery] = {}
        self.sleep_requested: dict[str, bool] = {}
        self.will_published: dict[str, bool] = {}
        self.snap: dict[str, Snapshot | None] = {}
        self.serial = 0
        self.durable = False  # the core holds QoS 2 PUBRECs until gateway_persists stored them

    @initialize(
        n_clients=st.integers(1, 3),
        max_inflight=st.integers(1, 3),
        retry_interval=st.sampled_from([2.0, 5.0, 10.0]),
        retry_count=st.integers(0, 3),
        max_buffered=st.integers(2, 8),
        advertise=st.booleans(),
        durable=st.booleans(),
        data=st.data(),
    )
    def setup(
        self,
        n_clients: int,
        max_inflight: int,
        retry_interval: float,
        retry_count: int,
        max_buffered: int,
        advertise: bool,
        durable: bool,
        data: st.DataObject,
    ) -> None:
        self.durable = durable
        self.config = MqttSnConfig(
            predefined_topics=PREDEFINED,
            max_inflight=max_inflight,
            retry_interval=retry_interval,
            retry_count=retry_count,
            max_buffered=max_buffered,
            advertise_interval=60 if advertise else 0,
        )
        self.core = GatewayCore(
            self.config, now=self.now, advertise_to=BROADCAST, durable_qos2=self.durable
        )
        for index in range(n_clients):
            client = SimClient(f"c{index}", ("10.0.0.1", 40000 + index))
            self.clients.append(client)
            self.by_addr[client.addr] = client
            self.views[client.cid] = GatewayView()
            self.sleep_requested[client.cid] = False
            self.will_published[client.cid] = False
        self._run_due_timers()
        # Some clients start connected and subscribed (over a network that loses nothing yet).
        for client in self.clients:
            if not data.draw(st.booleans()):
                continue
            clean = data.draw(st.booleans())
            client.clean, client.state = clean, "connecting"
            self._client_send(client, Connect(client.cid, data.draw(st.sampled_from([0, 60])),
                                              clean_session=clean))
            topic_id_type, topic = data.draw(st.sampled_from(FILTERS))
            request = Subscribe(client.allocate(), topic, QoS(data.draw(st.integers(0, 2))),
                                topic_id_type)
            client.pending[request.msg_id] = client.log[request.msg_id] = request
            self._client_send(client, request)
        self.network_flushes()

    # --- plumbing ----------------------------------------------------------------------------

    def _next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def _reset_view(self, cid: str) -> None:
        self.views[cid] = GatewayView()

    def _call(self, fn: Callable[..., object], *args: object) -> None:
        """Call the core, then check and route everything it produced."""
        self.snap = {c.cid: _snapshot(self.core.session(c.cid)) for c in self.clients}
        fn(*args)
        self._collect()
        for client in self.clients:
            if self.core.session(client.cid) is None:
                self._reset_view(client.cid)

    def _collect(self) -> None:
        for data, dst in self.core.datagrams_to_send():
            packet = decode(data)  # every datagram the core sends decodes with the codec
            client = self.by_addr.get(dst)
            if client is None:
                continue  # ADVERTISE, or answers to the stranger
            assert not isinstance(packet, Encapsulated), packet
            self._check_outbound(client, packet)
            self.net.append(Datagram(data, GATEWAY, dst))
        previous: Event | None = None
        while (event := self.core.next_event()) is not None:
            self._check_event(event, previous)
            previous = event

    def _run_due_timers(self) -> None:
        self._advance_to(self.now)

    def _advance_to(self, target: float) -> None:
        rounds = 0
        while (deadline := self.core.get_timer()) is not None and deadline <= target:
            rounds += 1
            assert rounds < 10_000, "timer busy loop"
            self.now = max(self.now, deadline)
            self._call(self.core.handle_timer, self.now)
            after = self.core.get_timer()
            assert after is None or after > self.now, (after, self.now)
        self.now = target

    def _client_send(self, client: SimClient, packet: Packet) -> None:
        self.net.append(Datagram(encode(packet), client.addr, GATEWAY))

    def _deliver(self, datagram: Datagram) -> None:
        if datagram.dst == GATEWAY:
            self._to_gateway(datagram.data, datagram.src)
        else:
            self._to_client(self.by_addr[datagram.dst], decode(datagram.data))

    def _draw_client(self, data: st.DataObject, *states: str) -> SimClient:
        eligible = [c for c in self.clients if not states or c.state in states]
        return data.draw(st.sampled_from(eligible))

    def _any_in(self, *states: str) -> bool:
        return any(c.state in states for c in self.clients)

    # --- into the gateway --------------------------------------------------------------------

    def _to_gateway(self, data: bytes, src: Address) -> None:
        client = self.by_addr.get(src)
        packet: Packet | None = None
        if client is not None:
            try:
                packet = decode(data)
            except MalformedPacket:
                packet = None
        if client is not None and packet is not None:
            self._before_gateway_reads(client, packet)
        self._call(self.core.receive_datagram, data, src, self.now)

    def _before_gateway_reads(self, client: SimClient, packet: Packet) -> None:
        session = self.core.session(client.cid)
        if session is None or (isinstance(packet, Connect) and packet.clean_session):
            self._reset_view(client.cid)  # the gateway starts a new session for this client
        view = self.views[client.cid]
        if isinstance(packet, RegAck) and packet.return_code is ACCEPTED:
            sent = view.register_sent.get(packet.msg_id)
            if sent is not None and sent[0] == packet.topic_id:
                view.agreed[sent[0]] = sent[1]
        if session is None or session.state not in CONNECTED:
            return  # acks are only read from connected clients
        awaited = view.outstanding.get(packet.msg_id) if hasattr(packet, "msg_id") else None
        if isinstance(packet, PubAck) and awaited == "puback":
            del view.outstanding[packet.msg_id]
            if packet.return_code is ReturnCode.INVALID_TOPIC_ID:
                topic = self.deliveries[view.ids[packet.msg_id][1]].topic
                for topic_id in [i for i, n in view.agreed.items() if n == topic]:
                    del view.agreed[topic_id]
        elif isinstance(packet, PubRec) and awaited in ("pubrec", "pubcomp"):
            view.outstanding[packet.msg_id] = "pubcomp"
        elif (isinstance(packet, PubComp) and awaited == "pubcomp") or (
            isinstance(packet, RegAck) and awaited == "regack"
        ):
            del view.outstanding[packet.msg_id]

    # --- out of the gateway ------------------------------------------------------------------

    def _check_outbound(self, client: SimClient, packet: Packet) -> None:
        view = self.views[client.cid]
        key = (client.cid, getattr(packet, "msg_id", -1))
        if isinstance(packet, Publish):
            self._check_outbound_publish(client, view, packet)
        elif isinstance(packet, Register):
            self._check_new_exchange(
                view, packet.msg_id, ("register", packet.topic_id, packet.topic_name), "regack",
                retransmission=packet.msg_id in view.ids,
            )
            view.register_sent[packet.msg_id] = (packet.topic_id, packet.topic_name)
            view.told[packet.topic_id] = packet.topic_name
        elif isinstance(packet, RegAck):
            request = client.log[packet.msg_id]
            assert isinstance(request, Register), (packet, request)
            if packet.return_code is ACCEPTED:
                view.agreed[packet.topic_id] = request.topic_name
                view.told[packet.topic_id] = request.topic_name
        elif isinstance(packet, SubAck):
            request = client.log[packet.msg_id]
            assert isinstance(request, Subscribe), (packet, request)
            if packet.return_code is ACCEPTED:
                assert packet.qos == request.qos, (packet, request)
                name = filter_name(request.topic_id_type, request.topic)
                view.subs[name] = int(packet.qos)
                if request.topic_id_type is TopicIdType.NORMAL and "+" not in name and (
                    "#" not in name
                ):
                    assert packet.topic_id != 0, packet
                    view.agreed[packet.topic_id] = name
                    view.told[packet.topic_id] = name
        elif isinstance(packet, UnsubAck):
            request = client.log[packet.msg_id]
            assert isinstance(request, Unsubscribe), (packet, request)
            view.subs.pop(filter_name(request.topic_id_type, request.topic), None)
        elif isinstance(packet, PubAck):
            # Only the driver's ack_publish makes a client publish safe (or refuses it).
            if packet.return_code is not ReturnCode.INVALID_TOPIC_ID:
                assert packet.return_code in self.acks_effective.get(key, ()), (
                    "PUBACK before ack_publish", client.cid, packet
                )
            if packet.return_code is ACCEPTED:
                assert self._publish_sent_by(client, packet.msg_id).qos == QoS.AT_LEAST_ONCE
        elif isinstance(packet, PubRec):
            assert ACCEPTED in self.acks_effective.get(key, ()), (
                "PUBREC before ack_publish", client.cid, packet
            )
            if self.durable:
                stored = self.store.get(client.cid)
                assert stored is not None and packet.msg_id in stored["qos2_received"], (
                    "PUBREC before the session remembering it was stored", client.cid, packet
                )
            assert self._publish_sent_by(client, packet.msg_id).qos == QoS.EXACTLY_ONCE
        elif isinstance(packet, PubComp):
            if ACCEPTED in self.acks_effective.get(key, ()):
                view.qos2_open.discard(packet.msg_id)
        elif isinstance(packet, PubRel):
            exchange = view.ids.get(packet.msg_id)
            assert exchange is not None and exchange[0] == "publish", (packet, exchange)
            assert self.deliveries[exchange[1]].qos == 2, packet

    def _publish_sent_by(self, client: SimClient, msg_id: int) -> Publish:
        request = client.log.get(msg_id)
        assert isinstance(request, Publish), (client.cid, msg_id, request)
        return request

    def _check_new_exchange(
        self, view: GatewayView, msg_id: int, exchange: tuple[Any, ...], awaiting: str,
        *, retransmission: bool,
    ) -> None:
        if retransmission:
            assert view.ids[msg_id] == exchange, (
                "gateway reused a message id for another message", msg_id, view.ids[msg_id],
                exchange,
            )
            assert msg_id in view.outstanding, ("re-sent a completed exchange", msg_id, exchange)
            return
        view.ids[msg_id] = exchange
        view.outstanding[msg_id] = awaiting
        assert len(view.outstanding) <= self.config.max_inflight, (
            "more gateway-to-client messages in flight than max_inflight", view.outstanding
        )

    def _check_outbound_publish(
        self, client: SimClient, view: GatewayView, packet: Publish
    ) -> None:
        delivery = self.deliveries.get(packet.data)
        assert delivery is not None, ("published a payload the broker never delivered", packet)
        topic = delivery.topic
        if packet.topic_id_type is TopicIdType.PREDEFINED:
            assert PREDEFINED.get(packet.topic_id) == topic, (packet, topic)
        elif packet.topic_id_type is TopicIdType.SHORT_NAME:
            assert len(topic.encode()) == 2 and short_id(topic) == packet.topic_id, packet
        else:
            assert view.agreed.get(packet.topic_id) == topic, (
                "PUBLISH with a NORMAL topic id the client has not accepted for that topic",
                client.cid, packet.topic_id, topic, view.agreed,
            )
        if packet.retain:
            assert delivery.retain and packet.qos <= delivery.qos, (packet, delivery)
        else:
            granted = delivery.targets.get(client.cid)
            assert granted is not None, ("published to a client not subscribed", client.cid)
            assert packet.qos == min(delivery.qos, granted), (packet, delivery)
        if packet.qos == QoS.AT_MOST_ONCE:
            assert packet.msg_id == 0 and not packet.dup, packet
            return
        retransmission = packet.msg_id in view.ids
        awaiting = "puback" if packet.qos == QoS.AT_LEAST_ONCE else "pubrec"
        self._check_new_exchange(
            view, packet.msg_id, ("publish", packet.data), awaiting, retransmission=retransmission
        )
        assert packet.dup == retransmission, ("DUP flag wrong", client.cid, packet)
        if packet.qos == QoS.EXACTLY_ONCE and not packet.retain:
            first = view.qos2_out.setdefault(packet.data, packet.msg_id)
            assert first == packet.msg_id, (
                "QoS 2 message re-sent under a new message id: the client cannot de-duplicate",
                client.cid, packet, first,
            )

    def _check_event(self, event: Event, previous: Event | None) -> None:
        cid = event.client_id
        if cid is None or cid not in self.views:
            return  # QoS -1 and the stranger's sessions
        view = self.views[cid]
        if isinstance(event, MessagePublished) and event.will:
            assert (
                isinstance(previous, ClientDisconnected)
                and previous.client_id == cid
                and previous.reason in LOST_REASONS
            ), ("will published for a client that was not lost", event, previous)
            client = next(c for c in self.clients if c.cid == cid)
            assert event.topic == f"will/{cid}" and event.payload in client.will_messages, (
                "published a will the client never completed", event
            )
            assert not self.will_published[cid], ("will published twice", event)
            self.will_published[cid] = True
        elif isinstance(event, MessagePublished):
            self._check_emission(event, cid, view)
        elif isinstance(event, ClientDisconnected):
            self._check_loss_timing(event)
            if event.reason == "asleep":
                self.sleep_requested[cid] = True
        elif isinstance(event, ClientConnected):
            self.sleep_requested[cid] = False
            self.will_published[cid] = False
        elif isinstance(event, SubscriptionAdded):
            view.event_subs.add(event.topic_filter)
        elif isinstance(event, SubscriptionRemoved):
            view.event_subs.discard(event.topic_filter)

    def _check_emission(self, event: MessagePublished, cid: str, view: GatewayView) -> None:
        record = self.client_pubs.get(event.payload)
        assert record is not None, ("emitted a message no client published", event)
        sender, packet = record
        assert (event.client_id, event.msg_id) == (sender, packet.msg_id), (event, packet)
        assert (event.qos, event.retain) == (max(int(packet.qos), 0), packet.retain), event
        if packet.topic_id_type is TopicIdType.PREDEFINED:
            assert event.topic == PREDEFINED[packet.topic_id], event
        elif packet.topic_id_type is TopicIdType.SHORT_NAME:
            assert short_id(event.topic) == packet.topic_id, event
        elif packet.topic_id in view.told:
            assert event.topic == view.told[packet.topic_id], (event, view.told)
        if event.qos > 0:
            self.emitted.add((cid, event.msg_id))
            self.pending_acks.append((cid, event.msg_id))
        if event.qos == 2:
            assert event.msg_id not in view.qos2_open, (
                "QoS 2 message emitted twice before the gateway sent PUBCOMP", event
            )
            view.qos2_open.add(event.msg_id)

    def _check_loss_timing(self, event: ClientDisconnected) -> None:
        before = self.snap.get(event.client_id)
        if event.reason == "lost_keepalive":
            assert before is not None and before.state in CONNECTED and before.keepalive, before
            deadline = before.last_seen + KEEP_ALIVE_GRACE * before.keepalive
            assert self.now >= deadline, ("lost before its keep-alive ran out", before, self.now)
        elif event.reason == "lost_sleep":
            assert before is not None and before.state is ClientState.ASLEEP, before
            assert before.sleep_duration, before
            deadline = before.last_seen + KEEP_ALIVE_GRACE * before.sleep_duration
            assert self.now >= deadline, ("lost before its sleep ran out", before, self.now)

    # --- into a client -----------------------------------------------------------------------

    def _to_client(self, client: SimClient, packet: Packet) -> None:
        if isinstance(packet, ConnAck):
            if client.state == "connecting":
                client.state = "active" if packet.return_code is ACCEPTED else "off"
                if client.state == "active" and not client.clean:
                    self._resend_all(client)
        elif isinstance(packet, WillTopicReq):
            if client.state == "connecting" and client.will is not None:
                topic, _, qos, retain = client.will
                self._client_send(client, WillTopic(topic, QoS(qos), retain))
        elif isinstance(packet, WillMsgReq):
            if client.state == "connecting" and client.will is not None:
                self._client_send(client, WillMsg(client.will[1]))
        elif isinstance(packet, RegAck | SubAck | UnsubAck):
            request = client.pending.pop(packet.msg_id, None)
            if isinstance(request, Register) and packet.return_code is ACCEPTED:
                client.topics[request.topic_name] = packet.topic_id
            if (
                isinstance(request, Subscribe)
                and isinstance(packet, SubAck)
                and packet.return_code is ACCEPTED
                and request.topic_id_type is TopicIdType.NORMAL
                and packet.topic_id
            ):
                client.topics[str(request.topic)] = packet.topic_id
        elif isinstance(packet, PubAck):
            self._client_reads_puback(client, packet)
        elif isinstance(packet, PubRec):
            out = client.inflight.get(packet.msg_id)
            if out is not None and out.packet.qos == QoS.EXACTLY_ONCE:
                assert (client.cid, packet.msg_id) in self.emitted, ("PUBREC, never emitted", out)
                out.stage = "rel"
                self._client_send(client, PubRel(packet.msg_id))
        elif isinstance(packet, PubComp):
            out = client.inflight.get(packet.msg_id)
            if out is not None and out.stage == "rel":
                del client.inflight[packet.msg_id]
                assert (client.cid, packet.msg_id) in self.emitted, ("PUBCOMP, never emitted", out)
        elif isinstance(packet, Publish | PubRel | Register):
            client.to_answer.append(packet)
        elif isinstance(packet, PingResp):
            if client.state == "waking":
                client.state = "asleep"
        elif isinstance(packet, Disconnect) and client.state in ("active", "connecting", "waking"):
            client.state = "off"

    def _client_reads_puback(self, client: SimClient, packet: PubAck) -> None:
        out = client.inflight.get(packet.msg_id)
        if out is None or out.stage != "ack":
            if packet.return_code is ReturnCode.INVALID_TOPIC_ID:
                client.forget_topic_id(packet.topic_id)
            return
        del client.inflight[packet.msg_id]
        if packet.return_code is ACCEPTED:
            # QoS 1 at-least-once: an accepted PUBACK means the driver was given the message.
            assert (client.cid, packet.msg_id) in self.emitted, ("PUBACK, never emitted", out)
        elif packet.return_code is ReturnCode.INVALID_TOPIC_ID:
            client.forget_topic_id(out.packet.topic_id)

    def _resend_all(self, client: SimClient) -> None:
        for msg_id, out in sorted(client.inflight.items()):
            if out.stage == "ack":
                self._client_send(client, dataclasses.replace(out.packet, dup=True))
            else:
                self._client_send(client, PubRel(msg_id))
        for request in client.pending.values():
            again = dataclasses.replace(request, dup=True) if isinstance(request, Subscribe) else (
                request
            )
            self._client_send(client, again)

    # --- client rules ------------------------------------------------------------------------

    @rule(
        data=st.data(),
        clean=st.booleans(),
        with_will=st.booleans(),
        keepalive=st.sampled_from([0, 5, 20, 60]),
        will_qos=st.integers(0, 2),
        will_retain=st.booleans(),
    )
    def client_connects(
        self, data: st.DataObject, clean: bool, with_will: bool, keepalive: int, will_qos: int,
        will_retain: bool,
    ) -> None:
        reboot = data.draw(st.sampled_from([False, False, False, True]))
        offline = ("off", "connecting", "asleep", "waking")
        client = self._draw_client(data) if reboot or not self._any_in(*offline) else (
            self._draw_client(data, *offline)
        )
        if clean or client.clean:
            client.topics.clear()  # a clean session (ours or the previous one) forgets topic ids
        if clean:
            client.inflight.clear()
            client.pending.clear()
            client.to_answer.clear()
            client.qos2_in.clear()
        client.clean = clean
        client.will = None
        if with_will:
            message = f"{client.cid} gone {self._next_serial()}".encode()
            client.will = (f"will/{client.cid}", message, will_qos, will_retain)
            client.will_messages.add(message)
        client.state = "connecting"
        self._client_send(client, Connect(client.cid, keepalive, with_will, clean))

    @precondition(lambda self: self._any_in("active"))
    @rule(data=st.data(), name=st.sampled_from(REGISTER_NAMES))
    def client_registers(self, data: st.DataObject, name: str) -> None:
        client = self._draw_client(data, "active")
        request = Register(0, client.allocate(), name)
        client.pending[request.msg_id] = client.log[request.msg_id] = request
        self._client_send(client, request)

    @precondition(lambda self: self._any_in("active"))
    @rule(
        data=st.data(),
        qos=st.sampled_from([QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE]),
        retain=st.booleans(),
        kind=st.sampled_from(["normal", "normal", "short", "predefined", "unknown"]),
    )
    def client_publishes(self, data: st.DataObject, qos: QoS, retain: bool, kind: str) -> None:
        client = self._draw_client(data, "active")
        topic_id_type, topic_id = TopicIdType.NORMAL, UNKNOWN_TOPIC_ID
        if kind == "normal" and client.topics:
            topic_id = client.topics[data.draw(st.sampled_from(sorted(client.topics)))]
        elif kind == "short":
            topic_id_type = TopicIdType.SHORT_NAME
            topic_id = short_id(data.draw(st.sampled_from(SHORT_NAMES)))
        elif kind == "predefined":
            topic_id_type = TopicIdType.PREDEFINED
            topic_id = data.draw(st.sampled_from(sorted(PREDEFINED)))
        msg_id = client.allocate() if qos else 0
        payload = f"{client.cid}:{self._next_serial()}".encode()
        packet = Publish(topic_id, msg_id, payload, qos, topic_id_type, False, retain)
        self.client_pubs[payload] = (client.cid, packet)
        if qos:
            client.inflight[msg_id] = OutPub(packet)
            client.log[msg_id] = packet
        self._client_send(client, packet)

    @precondition(lambda self: any(c.state == "active" and (c.inflight or c.pending)
                                   for c in self.clients))
    @rule(data=st.data())
    def client_retransmits(self, data: st.DataObject) -> None:
        eligible = [c for c in self.clients if c.state == "active" and (c.inflight or c.pending)]
        self._resend_all(data.draw(st.sampled_from(eligible)))

    @precondition(lambda self: self._any_in("active"))
    @rule(data=st.data(), choice=st.sampled_from(FILTERS), qos=st.integers(0, 2))
    def client_subscribes(
        self, data: st.DataObject, choice: tuple[TopicIdType, str | int], qos: int
    ) -> None:
        client = self._draw_client(data, "active")
        topic_id_type, topic = choice
        request = Subscribe(client.allocate(), topic, QoS(qos), topic_id_type)
        client.pending[request.msg_id] = client.log[request.msg_id] = request
        self._client_send(client, request)

    @precondition(lambda self: self._any_in("active"))
    @rule(data=st.data(), choice=st.sampled_from(FILTERS))
    def client_unsubscribes(
        self, data: st.DataObject, choice: tuple[TopicIdType, str | int]
    ) -> None:
        client = self._draw_client(data, "active")
        topic_id_type, topic = choice
        request = Unsubscribe(client.allocate(), topic, topic_id_type)
        client.pending[request.msg_id] = client.log[request.msg_id] = request
        self._client_send(client, request)

    @precondition(lambda self: self._any_in("active", "asleep", "waking"))
    @rule(data=st.data(), action=st.sampled_from(LIFECYCLE_ACTIONS))
    def client_lifecycle(self, data: st.DataObject, action: str) -> None:
        """PINGREQ, sleep (DISCONNECT with duration), wake (PINGREQ with id) or DISCONNECT."""
        if action == "wake" and self._any_in("asleep", "waking"):
            client = self._draw_client(data, "asleep", "waking")
            client.state = "waking"
            self._client_send(client, PingReq(client.cid))
        elif action == "disconnect":
            client = self._draw_client(data, "active", "asleep", "waking")
            client.state = "off"
            self._client_send(client, Disconnect())
        elif self._any_in("active"):
            client = self._draw_client(data, "active")
            if action == "sleep":
                client.state = "asleep"
                duration = data.draw(st.sampled_from([5, 30, 100]))
                self._client_send(client, Disconnect(duration))
            else:
                self._client_send(client, PingReq())

    @precondition(lambda self: any(c.to_answer for c in self.clients))
    @rule(
        data=st.data(),
        everything=st.booleans(),
        accept=st.sampled_from([True, True, True, False]),
    )
    def client_answers(self, data: st.DataObject, everything: bool, accept: bool) -> None:
        """Answer one gateway REGISTER/PUBLISH/PUBREL (maybe refusing it), or all of them."""
        client = data.draw(st.sampled_from([c for c in self.clients if c.to_answer]))
        if everything:
            while client.to_answer:
                self._answer(client, client.to_answer.pop(0), accept=True)
        else:
            index = data.draw(st.integers(0, len(client.to_answer) - 1))
            self._answer(client, client.to_answer.pop(index), accept)

    def _answer(self, client: SimClient, packet: Packet, accept: bool) -> None:
        if isinstance(packet, Register):
            code = ACCEPTED if accept else ReturnCode.NOT_SUPPORTED
            if accept:
                client.topics[packet.topic_name] = packet.topic_id
            self._client_send(client, RegAck(packet.topic_id, packet.msg_id, code))
        elif isinstance(packet, PubRel):
            client.qos2_in.discard(packet.msg_id)
            self._client_send(client, PubComp(packet.msg_id))
        elif isinstance(packet, Publish) and packet.qos in (QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE):
            if not (accept and client.knows(packet)):
                reply: Packet = PubAck(packet.topic_id, packet.msg_id, ReturnCode.INVALID_TOPIC_ID)
            elif packet.qos == QoS.AT_LEAST_ONCE:
                reply = PubAck(packet.topic_id, packet.msg_id, ACCEPTED)
            else:
                client.qos2_in.add(packet.msg_id)
                reply = PubRec(packet.msg_id)
            self._client_send(client, reply)

    # --- driver rules ------------------------------------------------------------------------

    @precondition(lambda self: self.pending_acks)
    @rule(
        data=st.data(),
        everything=st.booleans(),
        code=st.sampled_from([ACCEPTED, ACCEPTED, ACCEPTED, ReturnCode.CONGESTION]),
    )
    def driver_acks(self, data: st.DataObject, everything: bool, code: ReturnCode) -> None:
        """ack_publish one pending client publish (maybe refusing it), or accept all of them."""
        if everything:
            while self.pending_acks:
                self._ack(*self.pending_acks.pop(0), ACCEPTED)
        else:
            index = data.draw(st.integers(0, len(self.pending_acks) - 1))
            self._ack(*self.pending_acks.pop(index), code)

    def _ack(self, cid: str, msg_id: int, code: ReturnCode) -> None:
        session = self.core.session(cid)
        if session is not None and msg_id in session.acks_pending:
            # The core still holds this publish (not lost in a restart): the ack takes effect.
            self.acks_effective.setdefault((cid, msg_id), set()).add(code)
            if code is not ACCEPTED:
                self.views[cid].qos2_open.discard(msg_id)  # a refusal ends the exchange
        self._call(self.core.ack_publish, cid, msg_id, code, self.now)

    @rule(
        topic=st.sampled_from(DELIVER_TOPICS),
        qos=st.integers(0, 2),
        retain=st.sampled_from([False, False, True]),
    )
    def broker_delivers(self, topic: str, qos: int, retain: bool) -> None:
        payload = f"broker:{self._next_serial()}".encode()
        targets: dict[str, int] = {}
        for client in self.clients:
            granted = [q for f, q in self.views[client.cid].subs.items() if matches(f, topic)]
            if granted:
                targets[client.cid] = max(granted)
        self.deliveries[payload] = Delivery(topic, qos, retain, targets)
        self._call(self.core.deliver, topic, payload, qos, retain, self.now)

    # --- network rules -----------------------------------------------------------------------

    @precondition(lambda self: self.net)
    @rule(data=st.data(), action=st.sampled_from(NETWORK_ACTIONS))
    def network_acts(self, data: st.DataObject, action: str) -> None:
        """Deliver the oldest datagram, a later one first, or drop or duplicate one."""
        index = data.draw(st.integers(0, len(self.net) - 1))
        if action == "deliver_next":
            self._deliver(self.net.pop(0))
        elif action == "deliver_later_one_first":
            self._deliver(self.net.pop(index))
        elif action == "drop":
            self.net.pop(index)
        else:
            self.net.insert(data.draw(st.integers(0, len(self.net))), self.net[index])

    @precondition(lambda self: self.net)
    @rule()
    def network_flushes(self) -> None:
        for _ in range(200):
            if not self.net:
                break
            self._deliver(self.net.pop(0))

    @rule(
        data=st.data(),
        noise=st.one_of(st.binary(max_size=64), valid_packets().map(encode)),
    )
    def noise_arrives(self, data: st.DataObject, noise: bytes) -> None:
        """Garbage bytes, or a valid packet from a stranger, reach the gateway."""
        source = data.draw(st.sampled_from([STRANGER, *self.by_addr]))
        try:
            packet = decode(noise)
            if isinstance(packet, Encapsulated):
                decode(packet.message)
        except MalformedPacket:
            pass
        else:
            source = STRANGER  # only undecodable bytes come from a client's own address
            if names_a_client(packet, set(self.views)):
                return
        self._call(self.core.receive_datagram, noise, source, self.now)

    # --- time and restarts -------------------------------------------------------------------

    @rule(
        seconds=st.one_of(
            st.floats(0.0, 4.0, allow_nan=False),
            st.sampled_from([0.5, 1.0, 2.0, 3.0, 7.5, 11.0, 31.0, 61.0, 95.0, 160.0]),
        )
    )
    def clock_advances(self, seconds: float) -> None:
        self._advance_to(self.now + seconds)

    @rule(restart=st.booleans())
    def gateway_persists(self, restart: bool) -> None:
        """take_dirty() into the store; on restart, a new core restored from the store."""
        self._persist()
        if not restart:
            self._call(self.core.sessions_stored)  # the held PUBRECs go out after the commit
            return
        self.core = GatewayCore(
            self.config, now=self.now, advertise_to=BROADCAST, durable_qos2=self.durable
        )
        for cid, view in self.views.items():
            view.event_subs.clear()
            # Unacknowledged client publishes were not safe yet: they may be emitted again.
            view.qos2_open = {
                m for m in view.qos2_open if ACCEPTED in self.acks_effective.get((cid, m), ())
            }
        records = list(self.store.values())
        restored = GatewayCore(self.config, now=self.now)
        restored.restore(records, self.now)
        for cid, view in self.views.items():
            # Exchanges continue only if the restored session still has them in flight.
            session = restored.session(cid)
            kept = set() if session is None else set(session.inflight)
            view.outstanding = {m: a for m, a in view.outstanding.items() if m in kept}
        self._call(self.core.restore, records, self.now)
        self._run_due_timers()

    def _persist(self) -> None:
        for cid, record in self.core.take_dirty().items():
            if record is None:
                self.store.pop(cid, None)
            else:
                self.store[cid] = record
        for client in self.clients:
            session = self.core.session(client.cid)
            live = None if session is None else session.to_record()
            assert comparable_record(self.store.get(client.cid)) == comparable_record(live), (
                "take_dirty() missed a change to a session", client.cid,
                self.store.get(client.cid), live,
            )

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def timer_is_never_in_the_past(self) -> None:
        deadline = self.core.get_timer()
        assert deadline is None or deadline > self.now, (deadline, self.now)

    @invariant()
    def sessions_respect_their_limits(self) -> None:
        for client in self.clients:
            session = self.core.session(client.cid)
            if session is None:
                continue
            assert len(session.inflight) <= self.config.max_inflight, session.inflight
            assert len(session.queue) <= self.config.max_buffered, session.queue

    @invariant()
    def liveness_deadlines_are_enforced(self) -> None:
        for client in self.clients:
            session = self.core.session(client.cid)
            if session is None:
                continue
            if session.state in CONNECTED and session.keepalive:
                limit = session.last_seen + KEEP_ALIVE_GRACE * session.keepalive
            elif session.state is ClientState.ASLEEP and session.sleep_duration:
                limit = session.last_seen + KEEP_ALIVE_GRACE * session.sleep_duration
            elif session.state is ClientState.CONNECTING:
                limit = session.last_seen + HANDSHAKE_TIMEOUT
            else:
                continue
            assert self.now < limit, ("missed a liveness deadline", client.cid, session.state)

    @invariant()
    def only_clients_that_asked_are_asleep(self) -> None:
        for client in self.clients:
            session = self.core.session(client.cid)
            if session is not None and session.state in (ClientState.ASLEEP, ClientState.AWAKE):
                assert self.sleep_requested[client.cid], (
                    "session asleep without a DISCONNECT with duration since it connected",
                    client.cid, session.state,
                )

    @invariant()
    def queued_messages_are_not_left_behind(self) -> None:
        for client in self.clients:
            session = self.core.session(client.cid)
            if (
                session is not None
                and session.state in CONNECTED
                and session.queue
                and len(session.inflight) < self.config.max_inflight
            ):
                assert session.queue[0].topic in session.pending_registration, (
                    "deliverable messages sit queued for a connected client", client.cid,
                    list(session.queue), session.inflight,
                )

    @invariant()
    def subscription_events_match_subacks(self) -> None:
        for client in self.clients:
            view = self.views[client.cid]
            assert view.event_subs == set(view.subs), (client.cid, view.event_subs, view.subs)


# --- the lossless machine --------------------------------------------------------------------


class LosslessOrderMachine(RuleBasedStateMachine):
    """Connected subscribers on a lossless FIFO network that answer everything at once."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.config = MqttSnConfig()
        self.core = GatewayCore(self.config, now=self.now)
        self.clients: dict[Address, str] = {}
        self.logs: dict[str, dict[int, Packet]] = {}
        self.subs: dict[str, dict[str, int]] = {}
        self.seen_ids: dict[str, set[int]] = {}
        self.received: dict[str, dict[str, list[int]]] = {}
        self.expected: dict[str, dict[str, list[int]]] = {}
        self.seq: dict[str, int] = {}
        self.net: list[Datagram] = []
        self.next_id = 1

    @initialize(n_clients=st.integers(1, 3), max_inflight=st.integers(1, 3), clean=st.booleans())
    def setup(self, n_clients: int, max_inflight: int, clean: bool) -> None:
        self.config = MqttSnConfig(
            predefined_topics=PREDEFINED,
            max_inflight=max_inflight,
            retry_interval=5.0,
            retry_count=1000,
            max_buffered=10_000,
        )
        self.core = GatewayCore(self.config, now=self.now)
        for index in range(n_clients):
            cid, addr = f"c{index}", ("10.0.0.2", 41000 + index)
            self.clients[addr] = cid
            self.logs[cid], self.subs[cid], self.seen_ids[cid] = {}, {}, set()
            self.received[cid], self.expected[cid] = {}, {}
            self.net.append(Datagram(encode(Connect(cid, 0, clean_session=clean)), addr, GATEWAY))
        self._flush()
        for cid in self.clients.values():
            session = self.core.session(cid)
            assert session is not None and session.state is ClientState.ACTIVE

    def _send(self, addr: Address, packet: Packet) -> None:
        if isinstance(packet, Subscribe | Unsubscribe):
            self.logs[self.clients[addr]][packet.msg_id] = packet
        self.net.append(Datagram(encode(packet), addr, GATEWAY))

    def _collect(self) -> None:
        for data, dst in self.core.datagrams_to_send():
            packet = decode(data)
            cid = self.clients[dst]
            request = self.logs[cid].get(getattr(packet, "msg_id", 0))
            if isinstance(packet, SubAck) and packet.return_code is ACCEPTED:
                assert isinstance(request, Subscribe)
                self.subs[cid][filter_name(request.topic_id_type, request.topic)] = packet.qos
            elif isinstance(packet, UnsubAck):
                assert isinstance(request, Unsubscribe)
                self.subs[cid].pop(filter_name(request.topic_id_type, request.topic), None)
            self.net.append(Datagram(data, GATEWAY, dst))
        while self.core.next_event() is not None:
            pass

    def _step(self) -> None:
        datagram = self.net.pop(0)
        if datagram.dst == GATEWAY:
            self.core.receive_datagram(datagram.data, datagram.src, self.now)
            self._collect()
            return
        cid = self.clients[datagram.dst]
        packet = decode(datagram.data)
        if isinstance(packet, Register):
            self._send(datagram.dst, RegAck(packet.topic_id, packet.msg_id, ACCEPTED))
        elif isinstance(packet, PubRel):
            self._send(datagram.dst, PubComp(packet.msg_id))
        elif isinstance(packet, Publish):
            if packet.qos == QoS.AT_LEAST_ONCE:
                self._send(datagram.dst, PubAck(packet.topic_id, packet.msg_id, ACCEPTED))
            elif packet.qos == QoS.EXACTLY_ONCE:
                self._send(datagram.dst, PubRec(packet.msg_id))
            if packet.qos != QoS.AT_MOST_ONCE and packet.msg_id in self.seen_ids[cid]:
                return  # a retransmission of a message already received
            self.seen_ids[cid].add(packet.msg_id)
            topic, _, seq = packet.data.decode().rpartition("|")
            got = self.received[cid].setdefault(topic, [])
            assert not got or got[-1] < int(seq), ("out of order", cid, topic, got, seq)
            assert int(seq) in self.expected[cid].get(topic, []), ("unexpected", cid, packet)
            got.append(int(seq))

    def _flush(self) -> None:
        for _ in range(5000):
            if not self.net:
                return
            self._step()
        raise AssertionError("the network never went quiet")

    @rule(data=st.data(), choice=st.sampled_from(FILTERS), qos=st.integers(0, 2))
    def client_subscribes(
        self, data: st.DataObject, choice: tuple[TopicIdType, str | int], qos: int
    ) -> None:
        addr = data.draw(st.sampled_from(sorted(self.clients)))
        self.next_id += 1
        self._send(addr, Subscribe(self.next_id, choice[1], QoS(qos), choice[0]))

    @rule(data=st.data(), choice=st.sampled_from(FILTERS))
    def client_unsubscribes(
        self, data: st.DataObject, choice: tuple[TopicIdType, str | int]
    ) -> None:
        addr = data.draw(st.sampled_from(sorted(self.clients)))
        self.next_id += 1
        self._send(addr, Unsubscribe(self.next_id, choice[1], choice[0]))

    @rule(topic=st.sampled_from(DELIVER_TOPICS), qos=st.integers(0, 2))
    def broker_delivers(self, topic: str, qos: int) -> None:
        self.seq[topic] = seq = self.seq.get(topic, 0) + 1
        for cid, subs in self.subs.items():
            if any(matches(f, topic) for f in subs):
                self.expected[cid].setdefault(topic, []).append(seq)
        self.core.deliver(topic, f"{topic}|{seq}".encode(), qos, False, self.now)
        self._collect()

    @precondition(lambda self: self.net)
    @rule(count=st.integers(1, 6))
    def network_delivers(self, count: int) -> None:
        for _ in range(min(count, len(self.net))):
            self._step()

    @rule(seconds=st.floats(0.0, 7.5, allow_nan=False))
    def clock_advances(self, seconds: float) -> None:
        target = self.now + seconds
        while (deadline := self.core.get_timer()) is not None and deadline <= target:
            self.now = max(self.now, deadline)
            self.core.handle_timer(self.now)
            self._collect()
        self.now = target

    @rule()
    def network_flushes(self) -> None:
        self._flush()
        for cid in self.clients.values():
            expected = {t: s for t, s in self.expected[cid].items() if s}
            assert self.received[cid] == expected, (cid, self.received[cid], expected)
            session = self.core.session(cid)
            assert session is not None and session.state is ClientState.ACTIVE, session
            assert not session.queue and not session.inflight, session


# --- the tests -------------------------------------------------------------------------------


def _settings(max_examples: int, steps: int) -> settings:
    return settings(
        max_examples=max_examples,
        stateful_step_count=steps,
        deadline=None,
        # One shrunk counterexample, quickly: without these a run with several bugs spends
        # minutes shrinking each of them and explaining the result.
        report_multiple_bugs=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def test_gateway_invariants_hold_with_loss_duplication_reordering_and_restarts() -> None:
    """Protocol invariants hold for any client, network, driver, clock and restart behaviour."""
    run_state_machine_as_test(GatewayMachine, settings=_settings(300, 80))


def test_lossless_network_delivers_every_message_in_order_per_topic() -> None:
    """On a lossless network, subscribers get every routed message once, in order per topic."""
    run_state_machine_as_test(LosslessOrderMachine, settings=_settings(150, 50))
