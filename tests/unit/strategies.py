"""Hypothesis strategies for every MQTT-SN v1.2 packet (one per type, plus `packets()`).

By default each strategy draws *spec-valid* packets, the kind a well-behaved peer sends:
topic ids avoid the reserved 0x0000/0xFFFF (§5.3.11) where a real id is meant, MsgId is 0x0000
for QoS 0 and -1 and non-zero otherwise, QoS -1 is only used with predefined or short topic ids
(§6.8), DUP is only set for QoS 1/2, ClientIds are 1-23 characters (§5.3.1), topic names are
non-empty, SUBSCRIBE asks for QoS 0-2, and so on.

Pass `codec_domain=True` to draw from everything the codec encodes and decodes losslessly
instead (any 16-bit id, any QoS with any flag, empty REGISTER topic names, any ProtocolId, ...):
the round-trip properties use that to cover the codec's whole domain.

Every packet drawn satisfies `decode(encode(p)) == p`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from gateway.mqttsn.codec import encode
from gateway.mqttsn.constants import PROTOCOL_ID, QoS, ReturnCode, TopicIdType
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

Strategy = st.SearchStrategy

# --- field strategies -----------------------------------------------------------------------

u8s: Strategy[int] = st.integers(0, 0xFF)
u16s: Strategy[int] = st.integers(0, 0xFFFF)
durations: Strategy[int] = u16s
#: A topic id that names a topic: 0x0000 and 0xFFFF are reserved (§5.3.11).
topic_ids: Strategy[int] = st.integers(0x0001, 0xFFFE)
#: MsgId of a QoS 1/2 exchange (0x0000 is what QoS 0 and -1 carry).
msg_ids: Strategy[int] = st.integers(0x0001, 0xFFFF)
return_codes: Strategy[ReturnCode] = st.sampled_from(ReturnCode)
all_qos: Strategy[QoS] = st.sampled_from(QoS)
#: QoS levels that can be requested, granted or attached to a will (no QoS -1).
connected_qos: Strategy[QoS] = st.sampled_from(
    [QoS.AT_MOST_ONCE, QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE]
)
topic_id_types: Strategy[TopicIdType] = st.sampled_from(TopicIdType)
payloads: Strategy[bytes] = st.one_of(st.binary(max_size=64), st.binary(min_size=240, max_size=400))

_CLIENT_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: ClientIds every server must accept: 1-23 characters from [0-9a-zA-Z] (§5.3.1, as MQTT).
client_ids: Strategy[str] = st.text(_CLIENT_ID_ALPHABET, min_size=1, max_size=23)
#: Any non-empty text the codec carries in a ClientId field.
any_client_ids: Strategy[str] = st.text(min_size=1, max_size=40)

_LEVEL = st.text(
    st.characters(codec="utf-8", exclude_characters="/+#\x00"),
    min_size=1,
    max_size=8,
)
#: Topic names one may publish to: 1-4 non-empty levels, no wildcards.
topic_names: Strategy[str] = st.lists(_LEVEL, min_size=1, max_size=4).map("/".join)
#: Topic filters one may subscribe to: levels, '+' anywhere, '#' only last.
topic_filters: Strategy[str] = st.builds(
    lambda levels, hash_tail: "/".join(levels + (["#"] if hash_tail else [])),
    st.lists(st.one_of(_LEVEL, st.just("+")), min_size=1, max_size=4),
    st.booleans(),
) | st.just("#")
#: Short topic names (TopicIdType 0b10, §5.3.4): exactly two octets once UTF-8 encoded.
short_topic_names: Strategy[str] = st.one_of(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=2, max_size=2),
    st.characters(min_codepoint=0xA0, max_codepoint=0x7FF),  # one printable two-octet char
)
#: Any two-octet UTF-8 text, control characters included.
any_short_topic_names: Strategy[str] = st.one_of(
    st.text(st.characters(max_codepoint=0x7F), min_size=2, max_size=2),
    st.characters(min_codepoint=0x80, max_codepoint=0x7FF),
)


def short_name_id(name: str) -> int:
    """The 16-bit TopicId a short topic name travels as in PUBLISH (its two octets, big-endian)."""
    raw = name.encode()
    if len(raw) != 2:
        raise ValueError("a short topic name is exactly two octets")
    return int.from_bytes(raw, "big")


def _pick(spec: Strategy[Any], domain: Strategy[Any], codec_domain: bool) -> Strategy[Any]:
    return domain if codec_domain else spec


# --- one strategy per packet type -----------------------------------------------------------


def advertise_packets(*, codec_domain: bool = False) -> Strategy[Advertise]:
    """ADVERTISE (§5.4.1)."""
    return st.builds(Advertise, gw_id=u8s, duration=durations)


def search_gw_packets(*, codec_domain: bool = False) -> Strategy[SearchGw]:
    """SEARCHGW (§5.4.2)."""
    return st.builds(SearchGw, radius=u8s)


def gw_info_packets(*, codec_domain: bool = False) -> Strategy[GwInfo]:
    """GWINFO (§5.4.3), with and without GwAdd."""
    gw_add = _pick(
        st.one_of(st.just(b""), st.binary(min_size=2, max_size=16)),
        st.binary(max_size=300),
        codec_domain,
    )
    return st.builds(GwInfo, gw_id=u8s, gw_add=gw_add)


def connect_packets(*, codec_domain: bool = False) -> Strategy[Connect]:
    """CONNECT (§5.4.4)."""
    return st.builds(
        Connect,
        client_id=_pick(client_ids, any_client_ids, codec_domain),
        duration=durations,
        will=st.booleans(),
        clean_session=st.booleans(),
        protocol_id=_pick(st.just(PROTOCOL_ID), u8s, codec_domain),
    )


def conn_ack_packets(*, codec_domain: bool = False) -> Strategy[ConnAck]:
    """CONNACK (§5.4.5)."""
    return st.builds(ConnAck, return_code=return_codes)


def will_topic_req_packets(*, codec_domain: bool = False) -> Strategy[WillTopicReq]:
    """WILLTOPICREQ (§5.4.6)."""
    return st.just(WillTopicReq())


def _will_topic_like(cls: Callable[..., Any], codec_domain: bool) -> Strategy[Any]:
    qos = _pick(connected_qos, all_qos, codec_domain)
    topic = _pick(topic_names, st.text(min_size=1, max_size=40), codec_domain)
    # The empty form has no Flags octet, so it can only carry the default QoS and Retain.
    return st.one_of(
        st.just(cls("")),
        st.builds(cls, will_topic=topic, qos=qos, retain=st.booleans()),
    )


def will_topic_packets(*, codec_domain: bool = False) -> Strategy[WillTopic]:
    """WILLTOPIC (§5.4.7), including the empty WILLTOPIC."""
    return _will_topic_like(WillTopic, codec_domain)


def will_msg_req_packets(*, codec_domain: bool = False) -> Strategy[WillMsgReq]:
    """WILLMSGREQ (§5.4.8)."""
    return st.just(WillMsgReq())


def will_msg_packets(*, codec_domain: bool = False) -> Strategy[WillMsg]:
    """WILLMSG (§5.4.9)."""
    return st.builds(WillMsg, will_msg=payloads)


def register_packets(*, codec_domain: bool = False) -> Strategy[Register]:
    """REGISTER (§5.4.10): from a client (TopicId 0x0000) or from the gateway."""
    return st.builds(
        Register,
        topic_id=_pick(st.one_of(st.just(0), topic_ids), u16s, codec_domain),
        msg_id=_pick(msg_ids, u16s, codec_domain),
        topic_name=_pick(topic_names, st.text(max_size=60), codec_domain),
    )


def reg_ack_packets(*, codec_domain: bool = False) -> Strategy[RegAck]:
    """REGACK (§5.4.11)."""
    return st.builds(
        RegAck,
        topic_id=_pick(st.one_of(st.just(0), topic_ids), u16s, codec_domain),
        msg_id=_pick(msg_ids, u16s, codec_domain),
        return_code=return_codes,
    )


@st.composite
def _spec_publish(
    draw: st.DrawFn, qos: Strategy[QoS], topic_id_type: Strategy[TopicIdType]
) -> Publish:
    level = draw(qos)
    if level is QoS.MINUS_ONE:
        kind = draw(topic_id_type.filter(lambda t: t is not TopicIdType.NORMAL))
    else:
        kind = draw(topic_id_type)
    if kind is TopicIdType.SHORT_NAME:
        topic_id = short_name_id(draw(short_topic_names))
    else:
        topic_id = draw(topic_ids)
    acked = level in (QoS.AT_LEAST_ONCE, QoS.EXACTLY_ONCE)
    return Publish(
        topic_id=topic_id,
        msg_id=draw(msg_ids) if acked else 0,
        data=draw(payloads),
        qos=level,
        topic_id_type=kind,
        dup=draw(st.booleans()) if acked else False,
        retain=draw(st.booleans()),
    )


def publish_packets(
    *,
    codec_domain: bool = False,
    qos: Strategy[QoS] | None = None,
    topic_id_type: Strategy[TopicIdType] | None = None,
) -> Strategy[Publish]:
    """PUBLISH (§5.4.12); `qos` / `topic_id_type` narrow the draw (e.g. st.just(QoS(1)))."""
    qos = all_qos if qos is None else qos
    topic_id_type = topic_id_types if topic_id_type is None else topic_id_type
    if codec_domain:
        return st.builds(
            Publish,
            topic_id=u16s,
            msg_id=u16s,
            data=payloads,
            qos=qos,
            topic_id_type=topic_id_type,
            dup=st.booleans(),
            retain=st.booleans(),
        )
    return _spec_publish(qos, topic_id_type)


def pub_ack_packets(*, codec_domain: bool = False) -> Strategy[PubAck]:
    """PUBACK (§5.4.13)."""
    return st.builds(
        PubAck,
        topic_id=u16s,
        msg_id=_pick(msg_ids, u16s, codec_domain),
        return_code=return_codes,
    )


def pub_rec_packets(*, codec_domain: bool = False) -> Strategy[PubRec]:
    """PUBREC (§5.4.14)."""
    return st.builds(PubRec, msg_id=_pick(msg_ids, u16s, codec_domain))


def pub_rel_packets(*, codec_domain: bool = False) -> Strategy[PubRel]:
    """PUBREL (§5.4.14)."""
    return st.builds(PubRel, msg_id=_pick(msg_ids, u16s, codec_domain))


def pub_comp_packets(*, codec_domain: bool = False) -> Strategy[PubComp]:
    """PUBCOMP (§5.4.14)."""
    return st.builds(PubComp, msg_id=_pick(msg_ids, u16s, codec_domain))


@st.composite
def _subscription_topic(draw: st.DrawFn, codec_domain: bool) -> tuple[TopicIdType, str | int]:
    kind = draw(topic_id_types)
    if kind is TopicIdType.PREDEFINED:
        return kind, draw(_pick(topic_ids, u16s, codec_domain))
    if kind is TopicIdType.SHORT_NAME:
        return kind, draw(_pick(short_topic_names, any_short_topic_names, codec_domain))
    return kind, draw(_pick(topic_filters, st.text(min_size=1, max_size=60), codec_domain))


@st.composite
def _subscribe(draw: st.DrawFn, codec_domain: bool) -> Subscribe:
    kind, topic = draw(_subscription_topic(codec_domain))
    return Subscribe(
        msg_id=draw(_pick(msg_ids, u16s, codec_domain)),
        topic=topic,
        qos=draw(_pick(connected_qos, all_qos, codec_domain)),
        topic_id_type=kind,
        dup=draw(st.booleans()),
    )


def subscribe_packets(*, codec_domain: bool = False) -> Strategy[Subscribe]:
    """SUBSCRIBE (§5.4.15) by topic name/filter, predefined topic id or short topic name."""
    return _subscribe(codec_domain)


def sub_ack_packets(*, codec_domain: bool = False) -> Strategy[SubAck]:
    """SUBACK (§5.4.16)."""
    return st.builds(
        SubAck,
        topic_id=u16s,
        msg_id=_pick(msg_ids, u16s, codec_domain),
        return_code=return_codes,
        qos=_pick(connected_qos, all_qos, codec_domain),
    )


@st.composite
def _unsubscribe(draw: st.DrawFn, codec_domain: bool) -> Unsubscribe:
    kind, topic = draw(_subscription_topic(codec_domain))
    return Unsubscribe(
        msg_id=draw(_pick(msg_ids, u16s, codec_domain)), topic=topic, topic_id_type=kind
    )


def unsubscribe_packets(*, codec_domain: bool = False) -> Strategy[Unsubscribe]:
    """UNSUBSCRIBE (§5.4.17) by topic name/filter, predefined topic id or short topic name."""
    return _unsubscribe(codec_domain)


def unsub_ack_packets(*, codec_domain: bool = False) -> Strategy[UnsubAck]:
    """UNSUBACK (§5.4.18)."""
    return st.builds(UnsubAck, msg_id=_pick(msg_ids, u16s, codec_domain))


def ping_req_packets(*, codec_domain: bool = False) -> Strategy[PingReq]:
    """PINGREQ (§5.4.19), with and without ClientId."""
    client_id = _pick(client_ids, st.text(max_size=40), codec_domain)
    return st.one_of(st.just(PingReq()), st.builds(PingReq, client_id=client_id))


def ping_resp_packets(*, codec_domain: bool = False) -> Strategy[PingResp]:
    """PINGRESP (§5.4.20)."""
    return st.just(PingResp())


def disconnect_packets(*, codec_domain: bool = False) -> Strategy[Disconnect]:
    """DISCONNECT (§5.4.21), with and without Duration."""
    return st.one_of(st.just(Disconnect()), st.builds(Disconnect, duration=durations))


def will_topic_upd_packets(*, codec_domain: bool = False) -> Strategy[WillTopicUpd]:
    """WILLTOPICUPD (§5.4.22), including the empty WILLTOPICUPD."""
    return _will_topic_like(WillTopicUpd, codec_domain)


def will_msg_upd_packets(*, codec_domain: bool = False) -> Strategy[WillMsgUpd]:
    """WILLMSGUPD (§5.4.23)."""
    return st.builds(WillMsgUpd, will_msg=payloads)


def will_topic_resp_packets(*, codec_domain: bool = False) -> Strategy[WillTopicResp]:
    """WILLTOPICRESP (§5.4.24)."""
    return st.builds(WillTopicResp, return_code=return_codes)


def will_msg_resp_packets(*, codec_domain: bool = False) -> Strategy[WillMsgResp]:
    """WILLMSGRESP (§5.4.25)."""
    return st.builds(WillMsgResp, return_code=return_codes)


def encapsulated_packets(*, codec_domain: bool = False) -> Strategy[Encapsulated]:
    """Encapsulated (§5.5); by default the inner message is a valid encoded plain packet."""
    inner = plain_packets().map(encode)
    return st.builds(
        Encapsulated,
        radius=st.integers(0, 3),
        wireless_node_id=_pick(
            st.binary(min_size=1, max_size=8), st.binary(max_size=252), codec_domain
        ),
        message=_pick(inner, st.one_of(inner, st.binary(min_size=1, max_size=64)), codec_domain),
    )


#: Every packet class and the function drawing it, in MsgType order.
STRATEGIES: dict[type[Any], Callable[..., Strategy[Any]]] = {
    Advertise: advertise_packets,
    SearchGw: search_gw_packets,
    GwInfo: gw_info_packets,
    Connect: connect_packets,
    ConnAck: conn_ack_packets,
    WillTopicReq: will_topic_req_packets,
    WillTopic: will_topic_packets,
    WillMsgReq: will_msg_req_packets,
    WillMsg: will_msg_packets,
    Register: register_packets,
    RegAck: reg_ack_packets,
    Publish: publish_packets,
    PubAck: pub_ack_packets,
    PubComp: pub_comp_packets,
    PubRec: pub_rec_packets,
    PubRel: pub_rel_packets,
    Subscribe: subscribe_packets,
    SubAck: sub_ack_packets,
    Unsubscribe: unsubscribe_packets,
    UnsubAck: unsub_ack_packets,
    PingReq: ping_req_packets,
    PingResp: ping_resp_packets,
    Disconnect: disconnect_packets,
    WillTopicUpd: will_topic_upd_packets,
    WillTopicResp: will_topic_resp_packets,
    WillMsgUpd: will_msg_upd_packets,
    WillMsgResp: will_msg_resp_packets,
    Encapsulated: encapsulated_packets,
}


def plain_packets(*, codec_domain: bool = False) -> Strategy[Packet]:
    """Any packet except Encapsulated (what a client and the gateway exchange directly)."""
    return st.one_of(
        [
            make(codec_domain=codec_domain)
            for cls, make in STRATEGIES.items()
            if cls is not Encapsulated
        ]
    )


def packets(*, codec_domain: bool = False) -> Strategy[Packet]:
    """Any MQTT-SN v1.2 packet, Encapsulated included."""
    return st.one_of([make(codec_domain=codec_domain) for make in STRATEGIES.values()])
