"""Fast-path classification, and the CoAP server's datagram handling with a fake transport.

The server tests feed datagrams straight into ``CoapServer.datagram_received`` (no socket, no
aiocoap: the general path is not started, so what it would get is counted as not started) and
look at what it hands to the transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gateway.coap
from gateway.coap.fastpath import FastRequest, classify, unsupported_critical
from gateway.coap.message import (
    ACK,
    BLOCK1,
    CON,
    CONTENT_FORMAT,
    EMPTY,
    GET,
    MAX_AGE,
    NON,
    OBSERVE,
    OSCORE,
    POST,
    RST,
    SIZE1,
    URI_HOST,
    URI_PATH,
    URI_PORT,
    URI_QUERY,
    Message,
    decode,
    decode_uint,
    encode,
)
from gateway.coap.server import CoapServer
from gateway.delivery.bus import MessageBus
from gateway.errors import Overloaded
from gateway.pipeline.normalise import CF_CBOR, CF_JSON, CF_SENML_CBOR, CF_TEXT
from schemas import CoapSummary, TelemetryBatch, TextCommand
from schemas.config import CoapConfig
from tests.unit.test_sans_io_purity import impure_imports_reachable_from

ADDR = ("192.0.2.10", 40000)
SENML = cbor2.dumps([{-2: "urn:dev:d1:", 0: "temp", 1: "Cel", 2: 21.5}, {0: "hum", 2: 40.0}])


def path_options(*segments: str) -> list[tuple[int, bytes]]:
    return [(URI_PATH, s.encode()) for s in segments]


def post(
    path: tuple[str, ...] = ("devices", "d1", "telemetry"),
    *,
    mtype: int = CON,
    mid: int = 1,
    token: bytes = b"\x01\x02",
    content_format: int | None = CF_SENML_CBOR,
    extra: tuple[tuple[int, bytes], ...] = (),
    payload: bytes = SENML,
    code: int = POST,
) -> Message:
    options = path_options(*path)
    if content_format is not None:
        options.append((CONTENT_FORMAT, content_format.to_bytes(2, "big").lstrip(b"\0")))
    options.extend(extra)
    return Message(mtype, code, mid, token, tuple(sorted(options, key=lambda o: o[0])), payload)


# ------------------------------------------------------------------------- classification
def test_con_and_non_telemetry_and_command_take_the_fast_path() -> None:
    """CON/NON POST to devices/{id}/telemetry|command with CF (or none) is a FastRequest."""
    assert classify(post()) == FastRequest("telemetry", "d1", CF_SENML_CBOR)
    assert classify(post(mtype=NON)) == FastRequest("telemetry", "d1", CF_SENML_CBOR)
    assert classify(post(("devices", "lamp-3", "command"), content_format=CF_TEXT)) == (
        FastRequest("command", "lamp-3", 0)
    )
    assert classify(post(content_format=None)) == FastRequest("telemetry", "d1", None)


def test_uri_host_and_port_do_not_matter() -> None:
    """Uri-Host and Uri-Port (which some clients always send) stay on the fast path."""
    extra = ((URI_HOST, b"gw.local"), (URI_PORT, b"\x16\x33"))
    assert isinstance(classify(post(extra=extra)), FastRequest)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (post(code=GET), "method"),
        (post(mtype=ACK), "type"),
        (post(extra=((BLOCK1, b"\x0e"),)), "option_27"),
        (post(extra=((OBSERVE, b""),)), "option_6"),
        (post(extra=((OSCORE, b""),)), "option_9"),
        (post(extra=((URI_QUERY, b"a=b"),)), "option_15"),
        (post(extra=((17, b"\x3c"),)), "option_17"),  # Accept
        (post(extra=((SIZE1, b"\x10"),)), "option_60"),
        (post(extra=((CONTENT_FORMAT, b"\x3c"),)), "content_format_option"),  # repeated
        (post(extra=((CONTENT_FORMAT, b"\x01\x02\x03"),), content_format=None),
         "content_format_option"),
        (post(("devices", "d1")), "path"),
        (post(("devices", "d1", "telemetry", "x")), "path"),
        (post(("device", "d1", "telemetry")), "path"),
        (post(("devices", "d1", "other")), "path"),
        (post(("ps", "a", "b")), "path"),
        (Message(CON, POST, 1, b"", ((URI_PATH, b"devices"), (URI_PATH, b"\xff"),
                                     (URI_PATH, b"telemetry"))), "device_id"),
        (post(("devices", "a+b", "telemetry")), "device_id"),
        (post(("devices", "", "telemetry")), "device_id"),
    ],
)
def test_everything_else_is_declined_with_a_reason(message: Message, reason: str) -> None:
    """Methods, options, paths and ids the fast path does not handle go to aiocoap."""
    assert classify(message) == reason


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((), None),
        (((URI_QUERY, b"a=1"), (BLOCK1, b"\x0e"), (17, b"")), None),  # handled critical ones
        (((OBSERVE, b""), (258, b"")), None),  # elective (even) options never matter
        (((1, b"etag"),), 1),  # If-Match
        (((OSCORE, b""),), 9),
        (((35, b"coap://x/"),), 35),  # Proxy-Uri
        (((2049, b""),), 2049),  # unknown critical
    ],
)
def test_unsupported_critical_options(
    extra: tuple[tuple[int, bytes], ...], expected: int | None
) -> None:
    """§5.4.1: odd-numbered options the server does not act on are found."""
    assert unsupported_critical(post(extra=extra)) == expected


def test_sans_io_modules_import_no_io() -> None:
    """The codec, dedup cache, classifier and bucket import no I/O, clock or logging."""
    package = Path(gateway.coap.__file__).resolve().parent
    for name in ("message.py", "dedup.py", "fastpath.py", "bucket.py"):
        assert impure_imports_reachable_from(package / name) == {}, name


# ------------------------------------------------------------------- the server's fast path
class FakeTransport(asyncio.DatagramTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: Any, addr: Any = None) -> None:
        self.sent.append((bytes(data), addr))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        self.closed = True


class FakePipeline:
    """Accepts everything; `overloaded` makes it shed load like the real pipeline; `safe`, when
    set, is the future each item waits on to be safe upstream (broker PUBACK / spool commit)."""

    def __init__(self) -> None:
        self.items: list[TelemetryBatch | TextCommand] = []
        self.overloaded: int | None = None
        self.fail = False
        self.safe: asyncio.Future[None] | None = None

    def ingest_tracked(self, item: TelemetryBatch | TextCommand) -> tuple[Any, Any]:
        return self.ingest(item), self.safe

    def ingest(self, item: TelemetryBatch | TextCommand) -> CoapSummary:
        if self.fail:
            raise RuntimeError("pipeline bug")
        if self.overloaded is not None:
            raise Overloaded("full", self.overloaded)
        self.items.append(item)
        accepted = len(item.readings) if isinstance(item, TelemetryBatch) else 1
        return CoapSummary(accepted=accepted)


class Harness:
    def __init__(self, server: CoapServer, pipeline: FakePipeline, transport: FakeTransport):
        self.server = server
        self.pipeline = pipeline
        self.transport = transport

    def feed(self, data: bytes | Message, addr: tuple[str, int] = ADDR) -> list[bytes]:
        raw = encode(data) if isinstance(data, Message) else data
        before = len(self.transport.sent)
        self.server.datagram_received(raw, addr)
        return [d for d, _ in self.transport.sent[before:]]


def make_harness(**config: Any) -> Harness:
    pipeline = FakePipeline()
    server = CoapServer(CoapConfig(**config), bus=MessageBus(), pipeline=pipeline)
    transport = FakeTransport()
    server.connection_made(transport)
    return Harness(server, pipeline, transport)


@pytest.fixture
def harness() -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete(_async_harness())
    finally:
        loop.close()


async def _async_harness(**config: Any) -> Harness:
    return make_harness(**config)


def test_con_post_gets_a_piggybacked_changed_with_a_cbor_summary(harness: Harness) -> None:
    """§5.2.1: the ACK carries 2.04, the request's MID and token, CF 60 and the summary."""
    [reply] = harness.feed(post(mid=0x1234, token=b"\xaa\xbb\xcc"))
    response = decode(reply)
    assert (response.mtype, response.code, response.mid, response.token) == (
        ACK, 0x44, 0x1234, b"\xaa\xbb\xcc"
    )
    assert response.option(CONTENT_FORMAT) == bytes([CF_CBOR])
    assert cbor2.loads(response.payload) == {"accepted": 2, "actions": []}
    [batch] = harness.pipeline.items
    assert isinstance(batch, TelemetryBatch) and batch.source == "coap"
    assert harness.server.counters["fast_path"] == 1


def test_non_post_gets_a_non_response_with_the_token(harness: Harness) -> None:
    """§5.2.3: a NON request gets a NON response echoing the token."""
    [reply] = harness.feed(post(mtype=NON, token=b"\x07"))
    response = decode(reply)
    assert (response.mtype, response.code, response.token) == (NON, 0x44, b"\x07")


def test_command_text_and_json_map(harness: Harness) -> None:
    """text/plain and {"text": ...} commands are both ingested as TextCommand."""
    harness.feed(post(("devices", "d1", "command"), content_format=CF_TEXT,
                      payload=b"turn off the light", mid=1))
    harness.feed(post(("devices", "d1", "command"), content_format=CF_JSON,
                      payload=b'{"text": "lights on"}', mid=2))
    assert [item.text for item in harness.pipeline.items] == [  # type: ignore[union-attr]
        "turn off the light", "lights on"
    ]


def test_duplicate_con_gets_the_same_response_and_is_ingested_once(harness: Harness) -> None:
    """§4.5: a retransmitted CON is answered from the cache, not processed again."""
    first = harness.feed(post(mid=9))
    again = harness.feed(post(mid=9))
    assert first == again and len(first) == 1
    assert len(harness.pipeline.items) == 1
    assert harness.server.counters["duplicate_con_answered"] == 1
    harness.feed(post(mid=9), addr=("192.0.2.11", 40000))  # another endpoint: a new message
    assert len(harness.pipeline.items) == 2


def test_duplicate_non_is_silently_ignored(harness: Harness) -> None:
    """§4.5: a duplicate NON is neither answered nor processed again."""
    assert len(harness.feed(post(mtype=NON, mid=5))) == 1
    assert harness.feed(post(mtype=NON, mid=5)) == []
    assert len(harness.pipeline.items) == 1
    assert harness.server.counters["duplicate_non_ignored"] == 1


@pytest.mark.parametrize(
    ("message", "code", "diagnostic"),
    [
        (post(payload=b"\xff\xff"), 0x80, b"CBOR"),  # 4.00, diagnostic names the problem
        (post(content_format=CF_SENML_CBOR, payload=b"[1, 2]"), 0x80, b""),
        (post(content_format=CF_TEXT, payload=b"21.5"), 0x8F, b"content-format"),  # 4.15
        (post(content_format=41), 0x8F, b""),
        (post(("devices", "bad id!", "telemetry")), 0x80, b"device id"),
    ],
)
def test_payload_errors_map_to_4xx(
    harness: Harness, message: Message, code: int, diagnostic: bytes
) -> None:
    """PayloadError kinds become 4.00 (with the diagnostic as payload) or 4.15."""
    [reply] = harness.feed(message)
    response = decode(reply)
    assert response.code == code
    assert diagnostic in response.payload
    assert response.option(CONTENT_FORMAT) is None  # §5.5.2: a diagnostic has no CF
    assert harness.pipeline.items == []


def test_payload_over_the_limit_is_4_13_with_size1() -> None:
    """A body over max_payload gets 4.13 and Size1 = the limit (RFC 7959 §4)."""
    loop = asyncio.new_event_loop()
    try:
        harness = loop.run_until_complete(_async_harness(max_payload=16))
        [reply] = harness.feed(post(payload=b"\xa1" + b"x" * 40))
    finally:
        loop.close()
    response = decode(reply)
    assert response.code == 0x8D
    assert decode_uint(response.option(SIZE1) or b"") == 16


def test_overloaded_pipeline_is_5_03_with_max_age(harness: Harness) -> None:
    """Overloaded(retry_after) becomes 5.03 Service Unavailable with Max-Age = retry_after."""
    harness.pipeline.overloaded = 7
    [reply] = harness.feed(post())
    response = decode(reply)
    assert response.code == 0xA3
    assert decode_uint(response.option(MAX_AGE) or b"\xff") == 7


def test_a_pipeline_bug_is_5_00_and_counted(harness: Harness) -> None:
    """An unexpected exception from the pipeline is a 5.00, never a crash."""
    harness.pipeline.fail = True
    [reply] = harness.feed(post())
    assert decode(reply).code == 0xA0
    assert harness.server.counters["ingest_ingest_failed"] == 1


@pytest.mark.parametrize(
    ("data", "answer", "counter"),
    [
        (bytes.fromhex("40010001ff"), bytes.fromhex("70000001"), "drop_malformed_empty_payload"),
        (bytes.fromhex("4901abcd") + b"\0" * 9, bytes.fromhex("7000abcd"),
         "drop_malformed_token_length"),
        (bytes.fromhex("50010001ff"), None, "drop_malformed_empty_payload"),  # NON: silence
        (bytes.fromhex("60010001f0"), None, "drop_malformed_reserved_delta"),  # ACK: silence
        (bytes.fromhex("80010001"), None, "drop_malformed_bad_version"),  # §3: ignore
        (b"\x40", None, "drop_malformed_short_header"),
        (bytes.fromhex("40000042"), bytes.fromhex("70000042"), "ping_answered"),  # §4.3 ping
        (bytes.fromhex("50000042"), None, "drop_empty_non"),
        (bytes.fromhex("4021000a"), bytes.fromhex("7000000a"), "drop_reserved_code"),  # 1.01
        (bytes.fromhex("5061000b"), None, "drop_reserved_code"),  # 3.01 in a NON
        (bytes.fromhex("60020001"), None, "drop_request_in_ack_or_rst"),
    ],
)
def test_malformed_and_odd_messages(
    harness: Harness, data: bytes, answer: bytes | None, counter: str
) -> None:
    """§4.2: a CON format error is rejected with RST; NON/ACK/RST are dropped; all counted."""
    sent = harness.feed(data)
    assert sent == ([] if answer is None else [answer])
    assert harness.server.counters[counter] == 1


@pytest.mark.parametrize(
    ("option", "code", "diagnostic"),
    [(2049, 0x82, b"option 2049 not supported"), (OSCORE, 0x82, b"option 9"),
     (35, 0xA5, b"not a proxy")],
)
def test_unsupported_critical_option_in_con_is_4_02(
    harness: Harness, option: int, code: int, diagnostic: bytes
) -> None:
    """§5.4.1: a CON with an unrecognised critical option gets 4.02 (Proxy-Uri: 5.05, §5.7.2);
    the same in a NON is rejected silently."""
    [reply] = harness.feed(post(extra=((option, b"x"),), mid=3, token=b"\x33"))
    response = decode(reply)
    assert (response.mtype, response.code, response.mid, response.token) == (
        ACK, code, 3, b"\x33"
    )
    assert diagnostic in response.payload
    assert harness.feed(post(extra=((option, b"x"),), mid=4, mtype=NON)) == []
    assert harness.server.counters["drop_non_bad_option"] == 1
    assert harness.pipeline.items == []


def test_declined_requests_are_shed_with_5_03_when_over_the_rate() -> None:
    """Beyond slow_path_rate a CON bound for the general path gets 5.03 + Max-Age, NON nothing."""
    loop = asyncio.new_event_loop()
    try:
        harness = loop.run_until_complete(
            _async_harness(slow_path_rate=0.001, slow_path_burst=1, overload_max_age=9)
        )
        get = Message(CON, GET, 1, b"\x01", ((URI_PATH, b"time"),))
        assert harness.feed(get) == []  # within the burst: handed on (general path not started)
        [reply] = harness.feed(Message(CON, GET, 2, b"\x02", ((URI_PATH, b"time"),)))
        assert harness.feed(Message(NON, GET, 3, b"\x03", ((URI_PATH, b"time"),))) == []
    finally:
        loop.close()
    response = decode(reply)
    assert (response.mtype, response.code, response.mid, response.token) == (
        ACK, 0xA3, 2, b"\x02"
    )
    assert decode_uint(response.option(MAX_AGE) or b"") == 9
    assert harness.server.counters["general_shed_503"] == 1
    assert harness.server.counters["drop_general_shed"] == 1
    assert harness.server.counters["drop_not_started"] == 1


def test_empty_ack_and_rst_are_never_shed() -> None:
    """ACK/RST (the answers to our CON notifications) always reach the general path."""
    loop = asyncio.new_event_loop()
    try:
        harness = loop.run_until_complete(
            _async_harness(slow_path_rate=0.001, slow_path_burst=1)
        )
        for mid in range(5):
            harness.feed(Message(ACK, EMPTY, mid))
            harness.feed(Message(RST, EMPTY, 100 + mid))
    finally:
        loop.close()
    assert harness.server.counters["drop_not_started"] == 10


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=80),
        st.builds(
            lambda head, rest: head + rest,
            st.sampled_from([b"\x40\x02", b"\x50\x02", b"\x44\x02", b"\x40\x01", b"\x60\x00"]),
            st.binary(max_size=80),
        ),
    )
)
def test_no_datagram_raises_out_of_the_protocol(data: bytes) -> None:
    """Whatever arrives, datagram_received returns normally and counts nothing as an error."""
    loop = asyncio.new_event_loop()
    try:
        harness = loop.run_until_complete(_async_harness())
        harness.feed(data)
    finally:
        loop.close()
    assert harness.server.counters["internal_error"] == 0


# ------------------------------------------------------------ answers that come later
class LatePipeline(FakePipeline):
    """Answers commands with a future (as the pipeline does while recognising a command)."""

    def __init__(self) -> None:
        super().__init__()
        self.futures: list[asyncio.Future[CoapSummary]] = []

    def ingest(self, item: TelemetryBatch | TextCommand) -> Any:
        if isinstance(item, TelemetryBatch):
            return super().ingest(item)
        future: asyncio.Future[CoapSummary] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


def late_harness(**config: Any) -> Harness:
    harness = make_harness(**config)
    pipeline = LatePipeline()
    harness.pipeline = pipeline
    harness.server.ingest._pipeline = pipeline
    return harness


async def settle() -> None:
    """Let the chained done-callbacks (pipeline future -> outcome future -> reply) run."""
    for _ in range(5):
        await asyncio.sleep(0)


def command(mid: int, mtype: int = CON) -> Message:
    return post(("devices", "d1", "command"), content_format=CF_TEXT, payload=b"lights off",
                mid=mid, mtype=mtype, token=b"\x5a")


async def test_late_answer_within_the_delay_is_piggybacked() -> None:
    """An answer that comes within empty_ack_delay still rides on the ACK (§5.2.1)."""
    harness = late_harness(empty_ack_delay=1.0)
    assert harness.feed(command(10)) == []
    future = harness.pipeline.futures[0]  # type: ignore[attr-defined]
    future.set_result(CoapSummary(accepted=1, intent="lights_off"))
    await settle()
    [reply] = harness.transport.sent
    response = decode(reply[0])
    assert (response.mtype, response.code, response.mid, response.token) == (
        ACK, 0x44, 10, b"\x5a"
    )
    assert cbor2.loads(response.payload)["intent"] == "lights_off"
    assert harness.feed(command(10)) == [reply[0]]  # a duplicate gets the same ACK


async def test_late_answer_after_the_delay_gets_an_empty_ack_first() -> None:
    """§5.2.2: past empty_ack_delay the CON is acknowledged empty; a duplicate gets that ACK."""
    harness = late_harness(empty_ack_delay=0.01)
    harness.feed(command(11))
    await asyncio.sleep(0.05)
    [(ack, _)] = harness.transport.sent
    assert decode(ack) == Message(ACK, EMPTY, 11)
    assert harness.feed(command(11)) == [ack]
    assert harness.server.counters["empty_ack_sent"] == 1


async def test_late_answer_to_a_non_is_a_non_response() -> None:
    """A NON command answered later gets its NON response then; an error maps as usual."""
    harness = late_harness()
    harness.feed(command(12, mtype=NON))
    harness.feed(command(13, mtype=NON))
    first, second = harness.pipeline.futures  # type: ignore[attr-defined]
    first.set_result(CoapSummary(accepted=1))
    second.set_exception(Overloaded("recogniser busy", 3))
    await settle()
    responses = [decode(data) for data, _ in harness.transport.sent]
    assert [(r.mtype, r.code) for r in responses] == [(NON, 0x44), (NON, 0xA3)]
    assert decode_uint(responses[1].option(MAX_AGE) or b"") == 3


async def test_close_forgets_pending_answers() -> None:
    """Closing the server cancels the empty-ACK timers of answers still pending."""
    harness = late_harness(empty_ack_delay=0.01)
    harness.feed(command(14))
    await harness.server.close()
    await asyncio.sleep(0.03)
    assert harness.transport.sent == []


# ---------------------------------------------------- acknowledged only once safe upstream
async def test_con_is_not_acknowledged_before_its_item_is_safe() -> None:
    """A CON telemetry POST gets no ACK (not even an empty one) until the item is safe; then
    the piggybacked 2.04; a retransmission meanwhile is ignored, not ingested twice."""
    harness = make_harness(empty_ack_delay=0.01)
    safe: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    harness.pipeline.safe = safe
    assert harness.feed(post(mid=21)) == []
    await asyncio.sleep(0.05)  # well past empty_ack_delay
    assert harness.transport.sent == []
    assert harness.feed(post(mid=21)) == []
    safe.set_result(None)
    await settle()
    [(reply, _)] = harness.transport.sent
    response = decode(reply)
    assert (response.mtype, response.code, response.mid) == (ACK, 0x44, 21)
    assert len(harness.pipeline.items) == 1
    assert harness.feed(post(mid=21)) == [reply]  # now duplicates get the ACK


async def test_item_that_could_not_be_stored_gets_5_03_with_max_age() -> None:
    """When the uplink could neither deliver nor spool the item, the CON gets 5.03 + Max-Age,
    so the sensor sends it again later instead of believing it stored."""
    harness = make_harness()
    safe: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    harness.pipeline.safe = safe
    harness.feed(post(mid=22))
    safe.set_exception(RuntimeError("spool refused"))
    await settle()
    [(reply, _)] = harness.transport.sent
    response = decode(reply)
    assert (response.mtype, response.code) == (ACK, 0xA3)
    assert decode_uint(response.option(MAX_AGE) or b"") > 0
    assert harness.server.counters["ingest_not_stored"] == 1


async def test_already_safe_item_is_answered_at_once() -> None:
    """An item already safe when ingest returns (a done future) is answered synchronously."""
    harness = make_harness()
    safe: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    safe.set_result(None)
    harness.pipeline.safe = safe
    [reply] = harness.feed(post(mid=23))
    assert decode(reply).code == 0x44


async def test_slow_recognition_after_safe_gets_the_empty_ack_clock() -> None:
    """Once the command is safe, a recogniser slower than empty_ack_delay gets an empty ACK."""
    harness = late_harness(empty_ack_delay=0.01)
    safe: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    harness.pipeline.safe = safe
    harness.feed(command(24))
    await asyncio.sleep(0.03)
    assert harness.transport.sent == []
    safe.set_result(None)
    await asyncio.sleep(0.05)
    [(ack, _)] = harness.transport.sent
    assert decode(ack) == Message(ACK, EMPTY, 24)
