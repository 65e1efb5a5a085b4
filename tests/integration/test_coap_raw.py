"""The CoAP server over real UDP with hand-made datagrams: malformed messages, duplicates, and
observers that reject, ignore or cancel their notifications."""

from __future__ import annotations

import asyncio

import cbor2
import pytest

from gateway.coap.message import (
    ACK,
    CON,
    CONTENT,
    CONTENT_FORMAT,
    EMPTY,
    GET,
    NON,
    OBSERVE,
    POST,
    RST,
    URI_PATH,
    Message,
    decode,
    encode,
)
from tests.integration.test_coap_support import (
    RawClient,
    Running,
    SlowCommandPipeline,
    coap_server,
    raw_client,
    until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(10)]

SENML = cbor2.dumps([{0: "temp", 2: 21.5}])


def telemetry(mid: int, mtype: int = CON, token: bytes = b"\x01") -> bytes:
    options = ((URI_PATH, b"devices"), (URI_PATH, b"d1"), (URI_PATH, b"telemetry"),
               (CONTENT_FORMAT, b"\x70"))
    return encode(Message(mtype, POST, mid, token, options, SENML))


def observe(mid: int, token: bytes, value: bytes = b"", path: bytes = b"a1") -> bytes:
    """GET actuators/{path}/set with Observe (empty = 0 register, b"\\x01" = deregister)."""
    options = ((OBSERVE, value), (URI_PATH, b"actuators"), (URI_PATH, path), (URI_PATH, b"set"))
    return encode(Message(CON, GET, mid, token, options))


async def test_malformed_con_is_reset_and_non_is_dropped() -> None:
    """§4.2: a CON with a format error gets RST (same MID); a NON one is dropped; both are
    counted, and the server keeps serving."""
    async with coap_server() as srv, raw_client(srv.port) as client:
        client.send(bytes.fromhex("40014321ff"))  # payload marker, empty payload
        assert decode(await client.recv()) == Message(RST, EMPTY, 0x4321)
        client.send(bytes.fromhex("50014323ff"))  # the same error in a NON
        assert await client.nothing_within(0.3)
        client.send(b"\x00\x01")
        assert await client.nothing_within(0.2)
        counters = srv.server.counters
        assert counters["drop_malformed_empty_payload"] == 2
        assert counters["rst_malformed"] == 1
        assert counters["drop_malformed_short_header"] == 1
        client.send(telemetry(1))
        assert decode(await client.recv()).code == 0x44


async def test_duplicate_con_is_answered_again_but_ingested_once() -> None:
    """§4.5: a retransmitted CON gets the identical ACK, and the bus sees one message."""
    async with coap_server() as srv, raw_client(srv.port) as client:
        seen: list[str] = []
        srv.bus.subscribe("devices/#", lambda topic, *_: seen.append(topic))
        client.send(telemetry(77, token=b"\x09"))
        first = await client.recv()
        client.send(telemetry(77, token=b"\x09"))
        assert await client.recv() == first
        client.send(telemetry(77, mtype=NON, token=b"\x0a"))  # MID reuse as NON: duplicate
        assert await client.nothing_within(0.2)
        assert seen == ["devices/d1/telemetry"]


async def test_unknown_critical_option_is_4_02() -> None:
    """§5.4.1: aiocoap would ignore an unrecognised critical option; the server answers 4.02."""
    async with coap_server() as srv, raw_client(srv.port) as client:
        client.send(encode(Message(CON, GET, 3, b"\x03", ((URI_PATH, b"time"), (2049, b"x")))))
        reply = decode(await client.recv())
        assert (reply.mtype, reply.code, reply.mid) == (ACK, 0x82, 3)


async def test_late_answer_is_an_empty_ack_then_a_separate_con_response() -> None:
    """§5.2.2: a command answered after empty_ack_delay gets an empty ACK at once, then the
    2.04 as a separate CON with the request's token, which the client ACKs."""
    async with (
        coap_server(SlowCommandPipeline, empty_ack_delay=0.05) as srv,
        raw_client(srv.port) as client,
    ):
        options = ((URI_PATH, b"devices"), (URI_PATH, b"d1"), (URI_PATH, b"command"),
                   (CONTENT_FORMAT, b""))
        request = encode(Message(CON, POST, 0x99, b"\x77\x78", options, b"lights off"))
        client.send(request)
        assert decode(await client.recv()) == Message(ACK, EMPTY, 0x99)
        client.send(request)  # a retransmission meanwhile gets the empty ACK again
        assert decode(await client.recv()) == Message(ACK, EMPTY, 0x99)
        separate = decode(await client.recv())
        assert (separate.mtype, separate.code, separate.token) == (CON, 0x44, b"\x77\x78")
        assert cbor2.loads(separate.payload)["intent"] == "lights_off"
        client.send(encode(Message(ACK, EMPTY, separate.mid)))
        assert await client.nothing_within(0.3)
        assert srv.server.counters["separate_response_sent"] == 1


async def test_general_path_duplicates_get_the_stored_response() -> None:
    """§4.5 on the aiocoap path too: a retransmitted GET /time gets the very same bytes, until
    exchange_lifetime has passed (then it is a new request)."""
    async with (
        coap_server(exchange_lifetime=0.3) as srv,
        raw_client(srv.port) as client,
    ):
        request = encode(Message(CON, GET, 0x0101, b"\x11", ((URI_PATH, b"time"),)))
        client.send(request)
        first = await client.recv()
        client.send(request)
        assert await client.recv() == first
        await asyncio.sleep(0.45)
        client.send(request)
        later = await client.recv()
        assert decode(later).code == CONTENT and later != first  # a new clock reading


async def test_ping_is_answered_with_reset() -> None:
    """§4.3: an Empty CON (CoAP ping) is answered with RST."""
    async with coap_server() as srv, raw_client(srv.port) as client:
        client.send(encode(Message(CON, EMPTY, 0x0BAD)))
        assert decode(await client.recv()) == Message(RST, EMPTY, 0x0BAD)


async def _register(
    client: RawClient, srv: Running, token: bytes = b"\xab", mid: int = 1
) -> None:
    client.send(observe(mid, token))
    reply = decode(await client.recv())
    assert (reply.mtype, reply.code, reply.mid, reply.token) == (ACK, CONTENT, mid, token)
    assert reply.option(OBSERVE) is not None
    assert srv.server.observers == 1


async def test_observer_that_resets_a_notification_is_removed() -> None:
    """RFC 7641 §3.6: an RST to a notification removes the observer and its bus subscription."""
    async with coap_server() as srv, raw_client(srv.port) as client:
        await _register(client, srv)
        srv.bus.publish("actuators/a1/set", b"on", qos=1)
        notification = decode(await client.recv())
        assert (notification.mtype, notification.payload) == (CON, b"on")
        client.send(encode(Message(RST, EMPTY, notification.mid)))
        await until(lambda: srv.server.observers == 0)
        assert srv.bus.link.counters["unsubscribes"] == 1
        srv.bus.publish("actuators/a1/set", b"off", qos=1)
        assert await client.nothing_within(0.3)


async def test_acknowledging_observer_keeps_receiving() -> None:
    """An observer that ACKs its CON notifications gets every one of them."""
    async with coap_server() as srv, raw_client(srv.port) as client:
        await _register(client, srv)
        for state in (b"1", b"2", b"3"):
            srv.bus.publish("actuators/a1/set", state, qos=1)
        payloads = []
        for _ in range(3):
            notification = decode(await client.recv())
            client.send(encode(Message(ACK, EMPTY, notification.mid)))
            payloads.append(notification.payload)
        assert payloads == [b"1", b"2", b"3"]
        assert srv.server.observers == 1


async def test_silent_observer_is_removed_after_retransmissions() -> None:
    """An observer that never ACKs is dropped once the notification's retransmissions are
    exhausted (RFC 7641 §4.5), and the bus subscription goes with it."""
    async with (
        coap_server(notify_ack_timeout=0.05, notify_max_retransmit=1) as srv,
        raw_client(srv.port) as client,
    ):
        await _register(client, srv)
        srv.bus.publish("actuators/a1/set", b"on", qos=1)
        first = decode(await client.recv())
        again = decode(await client.recv())  # the one retransmission, same MID
        assert (again.mid, again.payload, again.mtype) == (first.mid, b"on", CON)
        await until(lambda: srv.server.observers == 0, within=3)
        assert srv.bus.link.counters["unsubscribes"] == 1


async def test_get_without_observe_deregisters() -> None:
    """RFC 7641 §3.6: GET with Observe 1 on the same token ends the observation."""
    async with coap_server() as srv, raw_client(srv.port) as client:
        await _register(client, srv, token=b"\x42")
        client.send(observe(2, b"\x42", value=b"\x01"))
        reply = decode(await client.recv())
        assert reply.code == CONTENT and reply.option(OBSERVE) is None
        await until(lambda: srv.server.observers == 0)


async def test_observers_beyond_the_limit_get_a_plain_response() -> None:
    """RFC 7641 §4.1: past max_observers a GET+Observe is answered without Observe."""
    async with coap_server(max_observers=1) as srv, raw_client(srv.port) as client:
        await _register(client, srv, token=b"\x01", mid=1)
        client.send(observe(2, b"\x02", path=b"a2"))
        reply = decode(await client.recv())
        assert reply.code == CONTENT and reply.option(OBSERVE) is None
        assert srv.server.observers == 1
        assert srv.server.counters["observe_refused_limit"] == 1
