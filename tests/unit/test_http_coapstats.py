"""CoAP datagrams and requests by code, derived from the CoAP server's counters, checked against
what actually went over a fake transport (fast path; the general path is covered by
tests/integration/test_http_endpoints.py)."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.coap.message import CON, GET, NON, OSCORE, URI_PATH, Message, decode, encode
from gateway.errors import Overloaded
from gateway.http.coapstats import coap_traffic, code_text
from gateway.pipeline.normalise import CF_CBOR, CF_JSON
from schemas import CoapSummary
from tests.unit.test_coap_fastpath import (
    Harness,
    command,
    late_harness,
    make_harness,
    post,
    settle,
)


def check_totals(harness: Harness, fed: int) -> None:
    traffic = coap_traffic(harness.server.counters)
    assert sum(traffic.received.values()) == fed
    assert sum(traffic.sent.values()) == len(harness.transport.sent)


def test_code_text_writes_codes_as_rfc_7252_does() -> None:
    """69 is 2.05, 132 is 4.04, 160 is 5.00."""
    assert [code_text(c) for c in (68, 69, 132, 143, 160, 165)] == [
        "2.04", "2.05", "4.04", "4.15", "5.00", "5.05"
    ]


async def test_every_fast_path_branch_is_counted_once() -> None:
    """A scripted mix of answered, rejected, duplicate, odd and malformed datagrams: received
    and sent totals match the transport, and requests are counted by their response code."""
    harness = make_harness(slow_path_rate=0.001, slow_path_burst=1, max_payload=64)
    script: list[bytes | Message] = [
        post(mid=1),  # 2.04
        post(mid=1),  # duplicate CON: cached answer re-sent
        post(mid=2, mtype=NON),  # 2.04 as a NON response
        post(mid=2, mtype=NON),  # duplicate NON: ignored
        post(mid=3, payload=b"\xff\xff"),  # 4.00
        post(mid=4, content_format=CF_JSON, payload=b"{not json"),  # 4.00
        post(mid=5, content_format=9999),  # 4.15
        post(mid=6, payload=b"\xa1" + b"x" * 80),  # 4.13
        post(mid=7, extra=((OSCORE, b"x"),)),  # 4.02, answered directly
        post(mid=8, extra=((35, b"x"),)),  # Proxy-Uri: 5.05
        post(mid=9, extra=((OSCORE, b"x"),), mtype=NON),  # dropped silently
        Message(CON, GET, 10, b"\x0a", ((URI_PATH, b"time"),)),  # general path (not started)
        Message(CON, GET, 11, b"\x0b", ((URI_PATH, b"time"),)),  # over the rate: 5.03
        bytes.fromhex("40000042"),  # ping: RST
        bytes.fromhex("50000043"),  # empty NON: dropped
        bytes.fromhex("4021000a"),  # reserved code in a CON: RST
        bytes.fromhex("40010001ff"),  # malformed CON: RST
        bytes.fromhex("80010001"),  # bad version: dropped
        bytes.fromhex("60020001"),  # request in an ACK: dropped
    ]
    for item in script:
        harness.feed(item)
    harness.pipeline.overloaded = 3
    harness.feed(post(mid=20))  # 5.03
    harness.pipeline.overloaded = None
    harness.pipeline.fail = True
    harness.feed(post(mid=21))  # 5.00
    check_totals(harness, len(script) + 2)
    traffic = coap_traffic(harness.server.counters)
    assert traffic.requests == {
        "2.04": 2, "4.00": 2, "4.02": 1, "4.13": 1, "4.15": 1, "5.00": 1, "5.03": 2, "5.05": 1
    }
    assert traffic.received == {
        "fast_path": 8, "general": 0, "duplicate": 2, "ping": 1, "rejected": 3, "dropped": 7,
    }
    assert traffic.sent == {"response": 12, "empty_ack": 0, "reset": 3, "general": 0}


async def test_answers_that_wait_for_the_uplink_are_counted_when_sent() -> None:
    """A CON whose item waits to be safe upstream: nothing is sent or counted as a request
    until it is; then one piggybacked 2.04."""
    harness = make_harness()
    harness.pipeline.safe = asyncio.get_running_loop().create_future()
    assert harness.feed(post(mid=1)) == []
    assert coap_traffic(harness.server.counters).requests == {}
    check_totals(harness, 1)
    harness.pipeline.safe.set_result(None)
    for _ in range(3):
        await asyncio.sleep(0)
    [reply] = [data for data, _ in harness.transport.sent]
    assert decode(reply).code == 68
    assert coap_traffic(harness.server.counters).requests == {"2.04": 1}
    check_totals(harness, 1)


async def test_late_answers_empty_acks_and_duplicates_add_up() -> None:
    """Commands answered later: an empty ACK past the delay, a duplicate answered with it, NON
    responses (one 2.04, one 5.03); the separate CON response of the first has no general path
    here, so it is dropped, and neither counted as sent nor lost from the request count."""
    harness = late_harness(empty_ack_delay=0.01)
    harness.feed(command(11))
    await asyncio.sleep(0.05)
    harness.feed(command(11))  # duplicate: gets the empty ACK again
    harness.feed(command(12, mtype=NON))
    harness.feed(command(13, mtype=NON))
    first, second, third = harness.pipeline.futures  # type: ignore[attr-defined]
    second.set_result(CoapSummary(accepted=1))
    third.set_exception(Overloaded("recogniser busy", 3))
    first.set_result(CoapSummary(accepted=1))
    await settle()
    check_totals(harness, 4)
    traffic = coap_traffic(harness.server.counters)
    assert traffic.sent == {"response": 3, "empty_ack": 1, "reset": 0, "general": 0}
    assert traffic.requests == {"2.04": 2, "5.03": 1}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.builds(
                lambda mtype, mid, cf, payload: encode(
                    post(mtype=mtype, mid=mid, content_format=cf, payload=payload)
                ),
                st.sampled_from([CON, NON]),
                st.integers(0, 5),
                st.sampled_from([CF_CBOR, CF_JSON, None, 9999]),
                st.binary(max_size=20),
            ),
        ),
        max_size=12,
    )
)
def test_any_datagrams_are_each_counted_once(datagrams: list[bytes]) -> None:
    """Whatever arrives, the derived received and sent totals match the transport exactly."""

    async def run() -> Harness:
        harness = make_harness()
        for data in datagrams:
            harness.server.datagram_received(data, ("192.0.2.1", 5000))
        return harness

    loop = asyncio.new_event_loop()
    try:
        harness = loop.run_until_complete(run())
    finally:
        loop.close()
    check_totals(harness, len(datagrams))
