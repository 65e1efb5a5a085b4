"""Regressions found by the hypothesis state machine (tests/unit/test_mqttsn_statemachine.py)."""

from __future__ import annotations

from typing import Any

from gateway.mqttsn.constants import QoS, ReturnCode, TopicIdType
from gateway.mqttsn.events import MessagePublished
from gateway.mqttsn.packets import (
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    PubAck,
    Publish,
    PubRec,
    PubRel,
    RegAck,
    Register,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    WillMsgReq,
    WillTopic,
    WillTopicReq,
)
from tests.unit.mqttsn_harness import CLIENT_A, Harness

ACCEPTED = ReturnCode.ACCEPTED
PREDEF = {"predefined_topics": {1: "a/b"}}


def persist(h: Harness, store: dict[str, Any]) -> None:
    """What the session store does with take_dirty(): client id -> record, None deletes."""
    for client_id, record in h.core.take_dirty().items():
        if record is None:
            store.pop(client_id, None)
        else:
            store[client_id] = record


def restart(h: Harness, store: dict[str, Any] | None = None, **config: Any) -> Harness:
    """Persist, then a new core restored from the store, at the same time."""
    store = {} if store is None else store
    persist(h, store)
    restarted = Harness(**config)
    restarted.now = h.now
    restarted.core.restore(list(store.values()), restarted.now)
    return restarted


def wills(h: Harness) -> list[MessagePublished]:
    return [e for e in h.events() if isinstance(e, MessagePublished) and e.will]


def test_will_of_an_unfinished_handshake_is_not_published() -> None:
    """A client that sent WILLTOPIC but never WILLMSG (so never got CONNACK) has no will."""
    h = Harness()
    assert h.send(Connect("c1", 10, will=True)) == [WillTopicReq()]
    assert h.send(WillTopic("wills/c1", QoS.AT_LEAST_ONCE, retain=True)) == [WillMsgReq()]
    h.events()
    h.advance(61)  # handshake timeout
    assert wills(h) == []


def test_client_in_the_will_handshake_cannot_sleep_into_a_partial_will() -> None:
    """DISCONNECT(duration) during the will handshake is a plain disconnect, with no will."""
    h = Harness()
    h.send(Connect("c1", 10, will=True))
    h.send(WillTopic("wills/c1", QoS.AT_LEAST_ONCE, retain=True))
    h.send(Disconnect(5))
    h.events()
    h.advance(8)
    assert wills(h) == []


def test_unsubscribe_does_not_register_a_topic_id_the_client_never_learns() -> None:
    """After UNSUBSCRIBE of a plain name, a wildcard match still REGISTERs before PUBLISH."""
    h = Harness()
    h.connect()
    h.send(Subscribe(1, "a/#", QoS.AT_MOST_ONCE))
    assert h.send(Unsubscribe(2, "a/b")) == [UnsubAck(2)]
    h.core.deliver("a/b", b"x", 0, False, h.now)
    sent = h.drain(CLIENT_A)
    assert isinstance(sent[0], Register), sent


def test_a_restored_active_session_resumes_sending() -> None:
    """After a restart, an ACTIVE client's unacknowledged message is re-sent without new traffic."""
    h = Harness(**PREDEF)
    h.connect(duration=0, clean=False)
    h.send(Subscribe(1, 1, QoS.AT_LEAST_ONCE, TopicIdType.PREDEFINED))
    h.core.deliver("a/b", b"x", 1, False, h.now)
    (lost,) = h.drain(CLIENT_A)
    restarted = restart(h, **PREDEF)
    sent = restarted.advance(60, CLIENT_A)
    resent = [p for p in sent if isinstance(p, Publish)]
    assert resent and resent[0].msg_id == lost.msg_id and resent[0].dup  # type: ignore[union-attr]


def test_a_topic_still_being_registered_is_not_used_after_a_restart() -> None:
    """A REGISTER never acknowledged is re-sent after a restart, and nothing is published first."""
    h = Harness()
    h.connect(duration=0, clean=False)
    h.send(Subscribe(1, "a/#", QoS.AT_MOST_ONCE))
    h.core.deliver("a/b", b"1", 0, False, h.now)
    (reg,) = h.drain(CLIENT_A)
    assert isinstance(reg, Register)
    restarted = restart(h)
    restarted.core.deliver("a/b", b"2", 0, False, restarted.now)
    sent = restarted.drain(CLIENT_A)
    assert not [p for p in sent if isinstance(p, Publish)], sent
    assert [p for p in sent if isinstance(p, Register)] == [reg]


def test_a_late_regack_for_another_topic_id_does_not_accept_ours() -> None:
    """A REGACK with our REGISTER's msg id but another topic id (a late answer to a REGISTER of a
    discarded session that reused the msg id) does not let a PUBLISH use the new topic id."""
    h = Harness()
    h.connect()
    h.send(Subscribe(1, "s/+", QoS.AT_MOST_ONCE))
    h.core.deliver("s/a", b"1", 0, False, h.now)
    (reg,) = h.drain(CLIENT_A)
    assert isinstance(reg, Register)
    stale = RegAck(reg.topic_id + 1, reg.msg_id, ACCEPTED)
    assert h.send(stale) == []
    assert h.core.counters["drop_regack_topic_id_mismatch"] == 1
    h.core.deliver("s/a", b"2", 0, False, h.now)
    assert not [p for p in h.drain(CLIENT_A) if isinstance(p, Publish)]
    # The answer to our REGISTER releases both messages, in order.
    sent = h.send(RegAck(reg.topic_id, reg.msg_id, ACCEPTED))
    assert [(p.topic_id, p.data) for p in sent if isinstance(p, Publish)] == [
        (reg.topic_id, b"1"), (reg.topic_id, b"2")
    ]


def test_the_wake_up_flush_reaches_the_session_store() -> None:
    """A QoS 0 message flushed to a waking client is not delivered again after a restart."""
    h = Harness(**PREDEF)
    h.connect(clean=False)
    h.send(Subscribe(1, 1, QoS.AT_MOST_ONCE, TopicIdType.PREDEFINED))
    h.send(Disconnect(60))
    h.core.deliver("a/b", b"once", 0, False, h.now)
    store: dict[str, Any] = {}
    persist(h, store)
    assert h.send(PingReq("c1")) == [
        Publish(1, 0, b"once", QoS.AT_MOST_ONCE, TopicIdType.PREDEFINED), PingResp()
    ]
    restarted = restart(h, store, **PREDEF)
    assert restarted.send(PingReq("c1")) == [PingResp()]


def test_a_qos2_message_keeps_its_msg_id_across_a_restart() -> None:
    """After PUBREC the client has the message: a restart finishes with PUBREL, not a re-send."""
    h = Harness(**PREDEF)
    h.connect(clean=False)
    h.send(Subscribe(1, 1, QoS.EXACTLY_ONCE, TopicIdType.PREDEFINED))
    h.core.deliver("a/b", b"x", 2, False, h.now)
    (pub,) = h.drain(CLIENT_A)
    assert h.send(PubRec(pub.msg_id)) == [PubRel(pub.msg_id)]  # type: ignore[union-attr]
    restarted = restart(h, **PREDEF)
    sent = restarted.send(Connect("c1", 60, clean_session=False))
    assert not [p for p in sent if isinstance(p, Publish)], sent
    assert PubRel(pub.msg_id) in sent  # type: ignore[union-attr]


def test_a_client_that_connects_while_awake_stays_active() -> None:
    """A client woken to flush its buffer that then CONNECTs is not put back to sleep."""
    h = Harness(**PREDEF)
    h.connect(clean=False)
    h.send(Subscribe(1, 1, QoS.AT_LEAST_ONCE, TopicIdType.PREDEFINED))
    h.send(Disconnect(60))
    h.core.deliver("a/b", b"x", 1, False, h.now)
    (pub,) = h.send(PingReq("c1"))
    assert isinstance(pub, Publish)
    h.send(Connect("c1", 60, clean_session=False))
    h.send(PubAck(1, pub.msg_id, ACCEPTED))
    assert h.core.session("c1").state.value == "active"  # type: ignore[union-attr]


def test_pubrec_stage_reaches_the_session_store() -> None:
    """After PUBREC the persisted in-flight entry awaits PUBCOMP, so a restart sends PUBREL."""
    h = Harness(**PREDEF)
    h.connect(clean=False)
    h.send(Subscribe(1, 1, QoS.EXACTLY_ONCE, TopicIdType.PREDEFINED))
    h.core.deliver("a/b", b"x", 2, False, h.now)
    (pub,) = h.drain(CLIENT_A)
    store: dict[str, Any] = {}
    persist(h, store)
    assert h.send(PubRec(pub.msg_id)) == [PubRel(pub.msg_id)]  # type: ignore[union-attr]
    persist(h, store)
    (entry,) = store["c1"]["inflight"]
    assert entry["awaiting"] == "pubcomp"
