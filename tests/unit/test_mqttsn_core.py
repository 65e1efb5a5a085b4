"""GatewayCore behaviour, message by message (MQTT-SN v1.2 §6), driven in memory."""

from __future__ import annotations

import pytest

from gateway.mqttsn.codec import encode
from gateway.mqttsn.constants import QoS, ReturnCode, TopicIdType
from gateway.mqttsn.core import GatewayCore
from gateway.mqttsn.events import (
    ClientConnected,
    ClientDisconnected,
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
from gateway.mqttsn.topics import short_name_to_id
from schemas.config import MqttSnConfig
from tests.unit.mqttsn_harness import CLIENT_A, CLIENT_B, Harness

ACCEPTED = ReturnCode.ACCEPTED


def published(events: list[object]) -> list[MessagePublished]:
    return [e for e in events if isinstance(e, MessagePublished)]


# --- connection and will (§6.2, §6.3) --------------------------------------------------------


def test_connect_is_accepted_and_reported() -> None:
    """A CONNECT without will gets CONNACK accepted and a ClientConnected event."""
    h = Harness()
    assert h.send(Connect("c1", 30)) == [ConnAck(ACCEPTED)]
    assert h.events() == [ClientConnected("c1", CLIENT_A, True)]


def test_connect_with_wrong_protocol_id_is_not_supported() -> None:
    """ProtocolId other than 0x01 gets 'not supported'; a CONNECT without ClientId is malformed."""
    h = Harness()
    assert h.send(Connect("c1", 30, protocol_id=2)) == [ConnAck(ReturnCode.NOT_SUPPORTED)]
    assert h.send(Connect("", 30)) == []
    assert h.core.counters["drop_malformed_bad_size"] == 1
    assert h.events() == []


def test_full_client_table_answers_congestion() -> None:
    """Beyond max_clients a new client gets CONNACK congestion; a known client still connects."""
    h = Harness(max_clients=1)
    h.connect("c1", CLIENT_A)
    assert h.send(Connect("c2", 30), CLIENT_B) == [ConnAck(ReturnCode.CONGESTION)]
    assert h.send(Connect("c1", 30), CLIENT_A) == [ConnAck(ACCEPTED)]


def test_will_handshake_then_will_published_when_keepalive_expires() -> None:
    """WILLTOPICREQ/WILLMSGREQ precede CONNACK; silence for 1.5 x keep-alive publishes the will."""
    h = Harness()
    assert h.send(Connect("c1", 10, will=True)) == [WillTopicReq()]
    assert h.send(WillTopic("wills/c1", QoS.AT_LEAST_ONCE, retain=True)) == [WillMsgReq()]
    assert h.send(WillMsg(b"gone")) == [ConnAck(ACCEPTED)]
    h.events()
    h.advance(14.9)
    assert h.events() == []
    h.advance(0.2)
    events = h.events()
    assert ClientDisconnected("c1", CLIENT_A, "lost_keepalive") in events
    assert published(events) == [
        MessagePublished("c1", "wills/c1", b"gone", 1, True, 0, will=True)
    ]


def test_traffic_keeps_a_client_alive() -> None:
    """Any message within the keep-alive window postpones the loss."""
    h = Harness()
    h.connect(duration=10)
    for _ in range(5):
        h.advance(10)
        assert h.send(PingReq()) == [PingResp()]
    assert h.core.session("c1").state.value == "active"  # type: ignore[union-attr]


def test_no_will_after_clean_disconnect() -> None:
    """A clean DISCONNECT ends the session without publishing the will."""
    h = Harness()
    h.send(Connect("c1", 10, will=True))
    h.send(WillTopic("wills/c1"))
    h.send(WillMsg(b"gone"))
    h.events()
    assert h.send(Disconnect()) == [Disconnect()]
    h.advance(100)
    events = h.events()
    assert published(events) == []
    assert ClientDisconnected("c1", CLIENT_A, "disconnect") in events


def test_empty_willtopic_means_no_will() -> None:
    """An empty WILLTOPIC (§5.4.7) completes the handshake with no will."""
    h = Harness()
    assert h.send(Connect("c1", 10, will=True)) == [WillTopicReq()]
    assert h.send(WillTopic("")) == [ConnAck(ACCEPTED)]
    h.advance(100)
    assert published(h.events()) == []


def test_will_updates_change_what_is_published() -> None:
    """WILLTOPICUPD and WILLMSGUPD get accepted responses and change the will; empty deletes it."""
    h = Harness()
    h.connect(duration=10)
    assert h.send(WillMsgUpd(b"x")) == [WillMsgResp(ReturnCode.NOT_SUPPORTED)]
    assert h.send(WillTopicUpd("wills/new", QoS.AT_MOST_ONCE)) == [WillTopicResp(ACCEPTED)]
    assert h.send(WillMsgUpd(b"bye")) == [WillMsgResp(ACCEPTED)]
    h.advance(20)
    will = MessagePublished("c1", "wills/new", b"bye", 0, False, will=True)
    assert published(h.events()) == [will]
    h.connect(duration=10)
    h.send(WillTopicUpd("wills/new"))
    assert h.send(WillTopicUpd("")) == [WillTopicResp(ACCEPTED)]
    h.advance(20)
    assert published(h.events()) == []


# --- register and publish (§6.5-6.8) ---------------------------------------------------------


def test_register_assigns_stable_topic_ids() -> None:
    """REGISTER gets a topic id; the same name gets the same id, another name another id."""
    h = Harness()
    h.connect()
    first = h.register("a/b", msg_id=1)
    assert h.register("a/b", msg_id=2) == first
    assert h.register("a/c", msg_id=3) != first


def test_register_with_wildcards_is_refused() -> None:
    """A topic name with wildcards cannot be registered for publishing."""
    h = Harness()
    h.connect()
    assert h.send(Register(0, 5, "a/+")) == [RegAck(0, 5, ReturnCode.NOT_SUPPORTED)]


def test_qos0_publish_becomes_an_event_without_ack() -> None:
    """A QoS 0 PUBLISH on a registered id yields MessagePublished and no reply."""
    h = Harness()
    h.connect()
    topic_id = h.register("sensors/t")
    assert h.send(Publish(topic_id, 0, b"21.5", retain=True)) == []
    assert h.events() == [MessagePublished("c1", "sensors/t", b"21.5", 0, True, 0)]


def test_publish_to_unknown_topic_id_is_rejected() -> None:
    """An unregistered topic id gets PUBACK 'invalid topic id' (§6.7), even at QoS 0."""
    h = Harness()
    h.connect()
    assert h.send(Publish(99, 0, b"x")) == [PubAck(99, 0, ReturnCode.INVALID_TOPIC_ID)]
    assert h.events() == []


def test_qos1_puback_only_after_the_driver_says_it_is_safe() -> None:
    """QoS 1: no PUBACK until ack_publish; a DUP re-send meanwhile is not forwarded twice."""
    h = Harness()
    h.connect()
    topic_id = h.register("sensors/t")
    assert h.send(Publish(topic_id, 7, b"v", QoS.AT_LEAST_ONCE)) == []
    assert h.send(Publish(topic_id, 7, b"v", QoS.AT_LEAST_ONCE, dup=True)) == []
    assert len(published(h.events())) == 1
    h.core.ack_publish("c1", 7, ACCEPTED, h.now)
    assert h.drain(CLIENT_A) == [PubAck(topic_id, 7, ACCEPTED)]


def test_qos1_refused_by_driver_answers_congestion() -> None:
    """When the driver cannot make a message safe, the client gets PUBACK congestion."""
    h = Harness()
    h.connect()
    topic_id = h.register("sensors/t")
    h.send(Publish(topic_id, 8, b"v", QoS.AT_LEAST_ONCE))
    h.core.ack_publish("c1", 8, ReturnCode.CONGESTION, h.now)
    assert h.drain(CLIENT_A) == [PubAck(topic_id, 8, ReturnCode.CONGESTION)]


def test_qos2_is_forwarded_exactly_once() -> None:
    """QoS 2: PUBREC after ack; re-sent PUBLISH before PUBREL is not forwarded again; PUBCOMP."""
    h = Harness()
    h.connect()
    topic_id = h.register("sensors/t")
    h.send(Publish(topic_id, 9, b"v", QoS.EXACTLY_ONCE))
    assert len(published(h.events())) == 1
    h.core.ack_publish("c1", 9, ACCEPTED, h.now)
    assert h.drain(CLIENT_A) == [PubRec(9)]
    assert h.send(Publish(topic_id, 9, b"v", QoS.EXACTLY_ONCE, dup=True)) == [PubRec(9)]
    assert published(h.events()) == []
    assert h.send(PubRel(9)) == [PubComp(9)]
    assert h.send(PubRel(9)) == [PubComp(9)]


def test_durable_qos2_pubrec_waits_until_the_session_is_stored() -> None:
    """With durable_qos2 the PUBREC is held until the driver reports the take_dirty records
    that hold the message id stored; a retransmission meanwhile is neither forwarded nor
    answered, and a core restored from those records answers it without forwarding it."""
    h = Harness(durable_qos2=True)
    h.connect(clean=False)
    topic_id = h.register("sensors/t")
    h.send(Publish(topic_id, 9, b"v", QoS.EXACTLY_ONCE))
    assert len(published(h.events())) == 1
    assert not h.core.store_wanted
    h.core.ack_publish("c1", 9, ACCEPTED, h.now)
    assert h.drain(CLIENT_A) == []
    assert h.core.store_wanted
    assert h.send(Publish(topic_id, 9, b"v", QoS.EXACTLY_ONCE, dup=True)) == []
    records = h.core.take_dirty()
    record = records["c1"]
    assert record is not None and 9 in record["qos2_received"]
    assert not h.core.store_wanted
    assert h.send(Publish(topic_id, 9, b"v", QoS.EXACTLY_ONCE, dup=True)) == []  # storing
    assert published(h.events()) == []
    assert h.core.sessions_stored() == 1
    assert h.drain(CLIENT_A) == [PubRec(9)]
    assert h.core.sessions_stored() == 0
    assert h.send(Publish(topic_id, 9, b"v", QoS.EXACTLY_ONCE, dup=True)) == [PubRec(9)]
    assert h.core.counters["publish_duplicate"] == 3

    restarted = Harness(durable_qos2=True)
    assert restarted.core.restore([record], restarted.now) == 1
    assert restarted.send(Publish(topic_id, 9, b"v", QoS.EXACTLY_ONCE, dup=True)) == [PubRec(9)]
    assert published(restarted.events()) == []
    assert restarted.send(PubRel(9)) == [PubComp(9)]


def test_durable_qos2_pubrec_is_not_sent_to_a_client_that_left() -> None:
    """A client that disconnected (or started a clean session) before the store gets nothing."""
    h = Harness(durable_qos2=True)
    h.connect()
    topic_id = h.register("sensors/t")
    h.send(Publish(topic_id, 5, b"v", QoS.EXACTLY_ONCE))
    h.core.ack_publish("c1", 5, ACCEPTED, h.now)
    h.send(Disconnect())
    h.drain()
    h.core.take_dirty()
    assert h.core.sessions_stored() == 0
    assert h.drain() == []


def test_qos_minus_one_needs_no_connection() -> None:
    """QoS -1 PUBLISH to a predefined or short topic is accepted from an unknown address."""
    h = Harness(predefined_topics={1: "sensors/predef"})
    h.send(Publish(1, 0, b"p", QoS.MINUS_ONE, TopicIdType.PREDEFINED))
    h.send(Publish(short_name_to_id("ab"), 0, b"s", QoS.MINUS_ONE, TopicIdType.SHORT_NAME))
    h.send(Publish(5, 0, b"n", QoS.MINUS_ONE, TopicIdType.NORMAL))
    h.send(Publish(2, 0, b"u", QoS.MINUS_ONE, TopicIdType.PREDEFINED))
    assert published(h.events()) == [
        MessagePublished(None, "sensors/predef", b"p", 0, False),
        MessagePublished(None, "ab", b"s", 0, False),
    ]
    assert h.core.counters["drop_qos_minus_one_normal_topic"] == 1
    assert h.core.counters["drop_qos_minus_one_unknown_topic"] == 1


# --- subscribe and delivery (§6.9, §6.10) ----------------------------------------------------


def test_subscribe_to_name_returns_its_topic_id_and_delivers() -> None:
    """SUBSCRIBE to a plain name returns its id; a delivered message uses it with min QoS."""
    h = Harness()
    h.connect()
    (ack,) = h.send(Subscribe(1, "actuators/l1/set", QoS.AT_LEAST_ONCE))
    assert isinstance(ack, SubAck) and ack.return_code == ACCEPTED and ack.topic_id > 0
    assert h.events() == [SubscriptionAdded("c1", "actuators/l1/set", 1)]
    assert h.core.deliver("actuators/l1/set", b"on", 2, False, h.now) == 1
    (pub,) = h.drain(CLIENT_A)
    assert isinstance(pub, Publish)
    assert (pub.topic_id, pub.qos, pub.data) == (ack.topic_id, QoS.AT_LEAST_ONCE, b"on")
    assert h.send(PubAck(pub.topic_id, pub.msg_id, ACCEPTED)) == []


def test_wildcard_subscription_registers_topic_before_publishing() -> None:
    """SUBACK id 0 for a wildcard; the gateway REGISTERs the topic and publishes after REGACK."""
    h = Harness()
    h.connect()
    assert h.send(Subscribe(1, "actuators/+/set", QoS.AT_MOST_ONCE)) == [
        SubAck(0, 1, ACCEPTED, QoS.AT_MOST_ONCE)
    ]
    h.core.deliver("actuators/l1/set", b"one", 0, False, h.now)
    h.core.deliver("actuators/l1/set", b"two", 0, False, h.now)
    (reg,) = h.drain(CLIENT_A)
    assert isinstance(reg, Register) and reg.topic_name == "actuators/l1/set"
    sent = h.send(RegAck(reg.topic_id, reg.msg_id, ACCEPTED))
    assert [p.data for p in sent if isinstance(p, Publish)] == [b"one", b"two"]
    assert all(p.topic_id == reg.topic_id for p in sent if isinstance(p, Publish))


def test_refused_registration_drops_that_topic() -> None:
    """A client that refuses a REGISTER does not get messages of that topic."""
    h = Harness()
    h.connect()
    h.send(Subscribe(1, "a/#", QoS.AT_MOST_ONCE))
    h.core.deliver("a/x", b"1", 0, False, h.now)
    (reg,) = h.drain(CLIENT_A)
    assert isinstance(reg, Register)
    assert h.send(RegAck(0, reg.msg_id, ReturnCode.NOT_SUPPORTED)) == []
    h.core.deliver("a/x", b"2", 0, False, h.now)
    assert h.drain(CLIENT_A) == []
    assert h.core.counters["drop_topic_refused_by_client"] == 2


def test_predefined_and_short_subscriptions() -> None:
    """Predefined ids must exist; predefined and short topics are delivered without REGISTER."""
    h = Harness(predefined_topics={3: "cfg/site"})
    h.connect()
    assert h.send(Subscribe(1, 4, QoS.AT_MOST_ONCE, TopicIdType.PREDEFINED)) == [
        SubAck(0, 1, ReturnCode.INVALID_TOPIC_ID)
    ]
    assert h.send(Subscribe(2, 3, QoS.AT_MOST_ONCE, TopicIdType.PREDEFINED)) == [
        SubAck(3, 2, ACCEPTED)
    ]
    h.send(Subscribe(3, "zz", QoS.AT_MOST_ONCE, TopicIdType.SHORT_NAME))
    h.core.deliver("cfg/site", b"p", 0, False, h.now)
    h.core.deliver("zz", b"s", 0, False, h.now)
    assert h.drain(CLIENT_A) == [
        Publish(3, 0, b"p", QoS.AT_MOST_ONCE, TopicIdType.PREDEFINED),
        Publish(short_name_to_id("zz"), 0, b"s", QoS.AT_MOST_ONCE, TopicIdType.SHORT_NAME),
    ]


def test_invalid_filter_is_refused_and_unsubscribe_stops_delivery() -> None:
    """A malformed filter gets 'invalid topic id'; after UNSUBSCRIBE nothing more arrives."""
    h = Harness()
    h.connect()
    assert h.send(Subscribe(1, "a/#/b", QoS.AT_MOST_ONCE)) == [
        SubAck(0, 1, ReturnCode.INVALID_TOPIC_ID)
    ]
    h.send(Subscribe(2, "x/y", QoS.AT_MOST_ONCE))
    h.events()
    assert h.send(Unsubscribe(3, "x/y")) == [UnsubAck(3)]
    assert h.events() == [SubscriptionRemoved("c1", "x/y")]
    assert h.core.deliver("x/y", b"1", 0, False, h.now) == 0


def test_retained_message_reaches_later_subscribers() -> None:
    """A retained message is kept and sent, flagged retained, to a client that subscribes later."""
    h = Harness()
    h.core.deliver("status/door", b"open", 1, True, h.now)
    h.connect()
    ack, pub = h.send(Subscribe(1, "status/door", QoS.AT_LEAST_ONCE))
    assert isinstance(ack, SubAck) and isinstance(pub, Publish)
    assert pub.retain and pub.data == b"open" and pub.topic_id == ack.topic_id


def test_broker_replay_of_known_retained_message_is_not_delivered_twice() -> None:
    """A broker's subscription-time replay of a retained message the store has is skipped."""
    h = Harness()
    h.connect()
    h.send(Subscribe(1, "status/door", QoS.AT_MOST_ONCE))
    assert h.core.deliver("status/door", b"open", 0, True, h.now, replay=True) == 1
    assert h.core.deliver("status/door", b"open", 0, True, h.now, replay=True) == 0


def test_overlapping_subscriptions_deliver_once_at_highest_qos() -> None:
    """A client whose filters overlap gets one copy, at the highest granted QoS."""
    h = Harness(predefined_topics={1: "a/b"})
    h.connect()
    h.send(Subscribe(1, "a/+", QoS.AT_MOST_ONCE))
    h.send(Subscribe(2, "a/#", QoS.AT_LEAST_ONCE))
    assert h.core.deliver("a/b", b"x", 1, False, h.now) == 1
    (pub,) = h.drain(CLIENT_A)
    assert isinstance(pub, Publish) and pub.qos == QoS.AT_LEAST_ONCE


def test_unacknowledged_publish_is_retried_then_client_lost() -> None:
    """A QoS 1 PUBLISH is re-sent with DUP every Tretry; after Nretry the client is lost."""
    h = Harness(retry_interval=10, retry_count=2, predefined_topics={1: "a/b"})
    h.connect(duration=0)
    h.send(Subscribe(1, 1, QoS.AT_LEAST_ONCE, TopicIdType.PREDEFINED))
    h.core.deliver("a/b", b"x", 1, False, h.now)
    (first,) = h.drain(CLIENT_A)
    assert isinstance(first, Publish) and not first.dup
    retries = h.advance(25, CLIENT_A)
    assert [p.dup for p in retries if isinstance(p, Publish)] == [True, True]
    h.events()
    h.advance(10)
    assert ClientDisconnected("c1", CLIENT_A, "lost_retries") in h.events()


def test_qos2_outbound_flow() -> None:
    """Gateway to client QoS 2: PUBLISH, PUBREC -> PUBREL, PUBCOMP completes."""
    h = Harness(predefined_topics={1: "a/b"})
    h.connect()
    h.send(Subscribe(1, 1, QoS.EXACTLY_ONCE, TopicIdType.PREDEFINED))
    h.core.deliver("a/b", b"x", 2, False, h.now)
    (pub,) = h.drain(CLIENT_A)
    assert isinstance(pub, Publish) and pub.qos == QoS.EXACTLY_ONCE
    assert h.send(PubRec(pub.msg_id)) == [PubRel(pub.msg_id)]
    assert h.send(PubRec(pub.msg_id)) == [PubRel(pub.msg_id)]
    assert h.send(PubComp(pub.msg_id)) == []
    assert not h.core.session("c1").inflight  # type: ignore[union-attr]


def test_inflight_window_limits_unacknowledged_messages() -> None:
    """No more than max_inflight QoS 1 messages are outstanding; an ack lets the next one go."""
    h = Harness(max_inflight=2, predefined_topics={1: "a/b"})
    h.connect()
    h.send(Subscribe(1, 1, QoS.AT_LEAST_ONCE, TopicIdType.PREDEFINED))
    for n in range(4):
        h.core.deliver("a/b", bytes([n]), 1, False, h.now)
    sent = h.drain(CLIENT_A)
    assert [p.data for p in sent if isinstance(p, Publish)] == [b"\x00", b"\x01"]
    nxt = h.send(PubAck(1, sent[0].msg_id, ACCEPTED))  # type: ignore[union-attr]
    assert [p.data for p in nxt if isinstance(p, Publish)] == [b"\x02"]


# --- sleeping clients (§6.14) ----------------------------------------------------------------


def test_sleeping_client_gets_buffered_messages_on_wake() -> None:
    """ASLEEP buffers; PINGREQ with the client id flushes (REGISTER first) and then PINGRESP."""
    h = Harness()
    h.connect(duration=30)
    h.send(Subscribe(1, "cmd/#", QoS.AT_LEAST_ONCE))
    assert h.send(Disconnect(60)) == [Disconnect()]
    assert ClientDisconnected("c1", CLIENT_A, "asleep") in h.events()
    h.core.deliver("cmd/a", b"1", 1, False, h.now)
    h.core.deliver("cmd/a", b"2", 0, False, h.now)
    assert h.drain(CLIENT_A) == []
    (reg,) = h.send(PingReq("c1"))
    assert isinstance(reg, Register)
    sent = h.send(RegAck(reg.topic_id, reg.msg_id, ACCEPTED))
    assert [p.data for p in sent if isinstance(p, Publish)] == [b"1", b"2"]
    assert not any(isinstance(p, PingResp) for p in sent)
    qos1 = next(p for p in sent if isinstance(p, Publish) and p.qos == QoS.AT_LEAST_ONCE)
    assert h.send(PubAck(qos1.topic_id, qos1.msg_id, ACCEPTED)) == [PingResp()]
    assert h.core.session("c1").state.value == "asleep"  # type: ignore[union-attr]


def test_sleeping_client_buffer_is_bounded() -> None:
    """Messages beyond max_buffered for a sleeping client are dropped and counted."""
    h = Harness(max_buffered=3, predefined_topics={1: "a/b"})
    h.connect()
    h.send(Subscribe(1, 1, QoS.AT_MOST_ONCE, TopicIdType.PREDEFINED))
    h.send(Disconnect(60))
    queued = [h.core.deliver("a/b", bytes([n]), 0, False, h.now) for n in range(5)]
    assert queued == [1, 1, 1, 0, 0]
    assert h.core.counters["drop_client_buffer_full"] == 2
    sent = h.send(PingReq("c1"))
    assert sent[-1] == PingResp() and len(sent) == 4


def test_sleeper_that_oversleeps_is_lost_with_will() -> None:
    """A sleeping client silent beyond its sleep duration is lost and its will published."""
    h = Harness()
    h.send(Connect("c1", 10, will=True))
    h.send(WillTopic("wills/c1"))
    h.send(WillMsg(b"overslept"))
    h.send(Disconnect(100))
    h.events()
    h.advance(149)
    assert published(h.events()) == []
    h.advance(2)
    events = h.events()
    assert ClientDisconnected("c1", CLIENT_A, "lost_sleep") in events
    assert published(events)[0].payload == b"overslept"


def test_ping_from_sleeping_client_with_nothing_buffered_answers_at_once() -> None:
    """A wake-up PINGREQ with an empty buffer gets PINGRESP and the client stays asleep."""
    h = Harness()
    h.connect()
    h.send(Disconnect(60))
    assert h.send(PingReq("c1")) == [PingResp()]
    assert h.core.session("c1").state.value == "asleep"  # type: ignore[union-attr]


# --- sessions (§6.3 clean session) -----------------------------------------------------------


def test_persistent_session_survives_reconnect() -> None:
    """CleanSession false keeps subscriptions, registrations and queued QoS 1 messages."""
    h = Harness()
    h.connect(clean=False)
    topic_id = h.register("sensors/t")
    h.send(Subscribe(1, "cmd/x", QoS.AT_LEAST_ONCE))
    h.send(Disconnect())
    h.core.deliver("cmd/x", b"while-away", 1, False, h.now)
    sent = h.send(Connect("c1", 60, clean_session=False), CLIENT_B)
    assert sent[0] == ConnAck(ACCEPTED)
    assert [p.data for p in sent if isinstance(p, Publish)] == [b"while-away"]
    h.send(Publish(topic_id, 0, b"still-known"), CLIENT_B)
    assert published(h.events())[-1].topic == "sensors/t"


def test_clean_session_forgets_everything() -> None:
    """CleanSession true on CONNECT drops earlier subscriptions and registrations."""
    h = Harness()
    h.connect(clean=False)
    topic_id = h.register("sensors/t")
    h.send(Subscribe(1, "cmd/x", QoS.AT_LEAST_ONCE))
    h.events()
    h.send(Connect("c1", 60, clean_session=True))
    assert SubscriptionRemoved("c1", "cmd/x") in h.events()
    assert h.send(Publish(topic_id, 0, b"x")) == [PubAck(topic_id, 0, ReturnCode.INVALID_TOPIC_ID)]
    assert h.core.deliver("cmd/x", b"1", 1, False, h.now) == 0


def test_sessions_survive_a_gateway_restart() -> None:
    """Records from take_dirty restore clients, topic ids, subscriptions and QoS 2 state."""
    h = Harness()
    h.connect(clean=False)
    topic_id = h.register("sensors/t")
    h.send(Subscribe(1, "cmd/x", QoS.AT_LEAST_ONCE))
    h.send(Publish(topic_id, 11, b"v", QoS.EXACTLY_ONCE))
    h.core.ack_publish("c1", 11, ACCEPTED, h.now)
    h.drain()
    records = [r for r in h.core.take_dirty().values() if r is not None]

    restarted = Harness()
    assert restarted.core.restore(records, restarted.now) == 1
    assert restarted.events() == [SubscriptionAdded("c1", "cmd/x", 1)]
    assert restarted.send(Publish(topic_id, 11, b"v", QoS.EXACTLY_ONCE, dup=True)) == [PubRec(11)]
    assert published(restarted.events()) == []
    restarted.send(Publish(topic_id, 0, b"after"))
    after = MessagePublished("c1", "sensors/t", b"after", 0, False)
    assert published(restarted.events()) == [after]
    assert restarted.core.deliver("cmd/x", b"c", 1, False, restarted.now) == 1


def test_forgotten_session_is_reported_deleted() -> None:
    """A clean session that ends is reported by take_dirty as None (delete)."""
    h = Harness()
    h.connect()
    h.core.take_dirty()
    h.send(Disconnect())
    assert h.core.take_dirty() == {"c1": None}


# --- discovery, forwarders, bad input --------------------------------------------------------


def test_searchgw_answered_with_gwinfo_and_advertise_sent_periodically() -> None:
    """SEARCHGW gets GWINFO with the gateway id; ADVERTISE goes out every interval."""
    h = Harness(gateway_id=7, advertise_interval=900)
    assert h.send(SearchGw(1)) == [GwInfo(7)]
    sent = h.advance(1800)
    assert sent.count(Advertise(7, 900)) == 3


def test_forwarder_encapsulated_client_is_answered_through_the_forwarder() -> None:
    """A CONNECT inside an Encapsulated message gets its CONNACK encapsulated for the same node."""
    h = Harness()
    inner = encode(Connect("node1", 30))
    h.core.receive_datagram(encode(Encapsulated(0, b"\x0a\x0b", inner)), CLIENT_A, h.now)
    ((data, addr),) = h.core.datagrams_to_send()
    assert addr == CLIENT_A
    assert data == encode(Encapsulated(1, b"\x0a\x0b", encode(ConnAck(ACCEPTED))))


def test_messages_from_unknown_clients_get_disconnect() -> None:
    """A PUBLISH or SUBSCRIBE from an address with no session is answered with DISCONNECT."""
    h = Harness()
    assert h.send(Publish(1, 1, b"x", QoS.AT_LEAST_ONCE)) == [Disconnect()]
    assert h.send(Subscribe(1, "a", QoS.AT_MOST_ONCE)) == [Disconnect()]
    assert h.core.counters["drop_unknown_client"] == 2


def test_wrong_state_and_gateway_only_messages_are_counted() -> None:
    """WILLMSG outside the handshake and a CONNACK sent to the gateway are counted drops."""
    h = Harness()
    h.connect()
    assert h.send(WillMsg(b"x")) == []
    assert h.send(ConnAck(ACCEPTED)) == []
    assert h.core.counters["drop_wrong_state_WILLMSG"] == 1
    assert h.core.counters["drop_unexpected_CONNACK"] == 1


@pytest.mark.parametrize(
    "datagram",
    [b"", b"\x00", b"\x05\x0c\x00", b"\x02\x03", b"\x03\x0c", b"\x01\x00", b"\xff" * 3],
)
def test_malformed_datagrams_are_counted_and_do_not_disturb_clients(datagram: bytes) -> None:
    """Garbage is dropped with a counted reason; a connected client keeps working."""
    h = Harness()
    h.connect(addr=CLIENT_B)
    assert h.send(datagram) == []
    assert sum(v for k, v in h.core.counters.items() if k.startswith("drop_malformed_")) == 1
    assert h.send(PingReq(), CLIENT_B) == [PingResp()]


def test_oversize_datagram_is_dropped() -> None:
    """A datagram above max_packet_size is counted and dropped before decoding."""
    h = Harness(max_packet_size=100)
    h.connect()
    topic_id = h.register("a")
    assert h.send(Publish(topic_id, 0, b"x" * 200)) == []
    assert h.core.counters["drop_oversize"] == 1
    assert h.events() == []


def test_flooding_address_is_rate_limited_without_hurting_others() -> None:
    """An address above its token bucket is dropped; another address is still served."""
    h = Harness(rate_limit=10, rate_burst=5)
    for _ in range(20):
        h.send(SearchGw(0), CLIENT_A)
    assert h.core.counters["drop_rate_limited"] == 15
    assert h.send(SearchGw(0), CLIENT_B) == [GwInfo(1)]
    h.advance(1.0)
    assert h.send(SearchGw(0), CLIENT_A) == [GwInfo(1)]


def test_client_moving_address_is_followed() -> None:
    """A CONNECT with the same client id from a new address rebinds the session."""
    h = Harness()
    h.connect("c1", CLIENT_A)
    h.connect("c1", CLIENT_B)
    assert h.send(PingReq(), CLIENT_B) == [PingResp()]
    assert h.send(PingReq(), CLIENT_A) == [Disconnect()]


def test_core_constructs_from_settings_defaults() -> None:
    """The core accepts the default MQTT-SN settings and has no timer but housekeeping."""
    core = GatewayCore(MqttSnConfig(), now=0.0)
    assert core.get_timer() == 30.0
