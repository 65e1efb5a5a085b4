"""The CoAP server over real UDP on 127.0.0.1, driven by aiocoap's client: every resource and
every error response."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiocoap
import cbor2
import pytest
from aiocoap import Code
from aiocoap.numbers.constants import Unreliable

from gateway.delivery.bus import MessageBus
from gateway.errors import Overloaded
from schemas import ActuatorCommand, CoapSummary, TelemetryBatch, TextCommand
from tests.integration.test_coap_support import (
    SlowCommandPipeline,
    aiocoap_client,
    coap_server,
    request,
    until,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(10)]

SENML_CBOR = cbor2.dumps([{-2: "urn:dev:d1:", 0: "temp", 1: "Cel", 2: 21.5}, {0: "hum", 2: 40.0}])
SENML_JSON = b'[{"bn": "urn:dev:d1:", "n": "temp", "u": "Cel", "v": 21.5}]'


class Recorder:
    """A bus subscriber that keeps (topic, payload) pairs."""

    def __init__(self, bus: MessageBus, topic_filter: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        bus.subscribe(topic_filter, lambda topic, payload, _q, _r: self.messages.append(
            (topic, payload)))


def summary(response: Any) -> dict[str, Any]:
    assert response.opt.content_format == 60
    decoded: dict[str, Any] = cbor2.loads(response.payload)
    return decoded


@pytest.mark.parametrize(
    ("payload", "content_format", "accepted"),
    [
        (SENML_CBOR, 112, 2),
        (SENML_JSON, 110, 1),
        (cbor2.dumps({"temp": 21.5, "door": True, "label": "hall"}), 60, 3),
        (b'{"temp": 21.5, "hum": 40}', 50, 2),
    ],
    ids=["senml-cbor", "senml-json", "cbor-map", "json-object"],
)
async def test_post_telemetry_in_every_format(
    payload: bytes, content_format: int, accepted: int
) -> None:
    """A CON POST of telemetry gets 2.04 with the CBOR summary and reaches the bus."""
    async with coap_server() as srv, aiocoap_client() as client:
        telemetry = Recorder(srv.bus, "devices/+/telemetry")
        response = await request(
            client, code=Code.POST, uri=srv.base + "/devices/d1/telemetry",
            payload=payload, content_format=content_format,
        )
        assert response.code == Code.CHANGED
        assert response.mtype == aiocoap.ACK
        assert summary(response) == {"accepted": accepted, "actions": []}
        await until(lambda: len(telemetry.messages) == 1)
        topic, body = telemetry.messages[0]
        assert topic == "devices/d1/telemetry"
        assert len(TelemetryBatch.model_validate_json(body).readings) == accepted
        assert srv.server.counters["fast_path"] == 1


@pytest.mark.parametrize(
    ("payload", "content_format"),
    [(b"turn off the kitchen light", 0), (b'{"text": "turn off the kitchen light"}', 50)],
    ids=["text-plain", "json-text"],
)
async def test_post_command(payload: bytes, content_format: int) -> None:
    """text/plain and {"text": ...} commands are accepted and published as TextCommand."""
    async with coap_server() as srv, aiocoap_client() as client:
        commands = Recorder(srv.bus, "devices/+/command")
        response = await request(
            client, code=Code.POST, uri=srv.base + "/devices/lamp-3/command",
            payload=payload, content_format=content_format,
        )
        assert response.code == Code.CHANGED
        assert summary(response)["accepted"] == 1
        await until(lambda: len(commands.messages) == 1)
        command = TextCommand.model_validate_json(commands.messages[0][1])
        assert command.text == "turn off the kitchen light"
        assert command.source == "coap"


async def test_non_post_gets_a_non_response() -> None:
    """A NON POST is answered with a NON 2.04 carrying the summary."""
    async with coap_server() as srv, aiocoap_client() as client:
        response = await request(
            client, code=Code.POST, uri=srv.base + "/devices/d1/telemetry",
            payload=SENML_CBOR, content_format=112, transport_tuning=Unreliable(),
        )
        assert response.code == Code.CHANGED
        assert response.mtype == aiocoap.NON
        assert summary(response)["accepted"] == 2


async def test_accept_json_gets_the_summary_as_json() -> None:
    """With Accept 50 the summary comes back as JSON; an Accept it cannot meet is 4.06."""
    async with coap_server() as srv, aiocoap_client() as client:
        response = await request(
            client, code=Code.POST, uri=srv.base + "/devices/d1/telemetry",
            payload=SENML_CBOR, content_format=112, accept=50,
        )
        assert response.code == Code.CHANGED
        assert response.opt.content_format == 50
        assert json.loads(response.payload) == {"accepted": 2, "actions": []}
        response = await request(
            client, code=Code.POST, uri=srv.base + "/devices/d1/telemetry",
            payload=SENML_CBOR, content_format=112, accept=0,
        )
        assert response.code == Code.NOT_ACCEPTABLE


async def test_observe_actuator_receives_bus_messages_as_con_notifications() -> None:
    """GET+Observe on actuators/{id}/set: each bus publish arrives, in order, as a CON."""
    async with coap_server() as srv, aiocoap_client() as client:
        req = client.request(
            aiocoap.Message(code=Code.GET, uri=srv.base + "/actuators/a1/set", observe=0)
        )
        first = await asyncio.wait_for(req.response, 5)
        assert first.code == Code.CONTENT and first.opt.observe is not None
        notifications = req.observation.__aiter__()
        for state in (b'{"state":"on"}', b'{"state":"off"}', b'{"state":"dim"}'):
            srv.bus.publish("actuators/a1/set", state, qos=1)
        received = [await asyncio.wait_for(notifications.__anext__(), 5) for _ in range(3)]
        assert [n.payload for n in received] == [
            b'{"state":"on"}', b'{"state":"off"}', b'{"state":"dim"}'
        ]
        assert all(n.mtype == aiocoap.CON for n in received)
        observes = [first.opt.observe] + [n.opt.observe for n in received]
        assert observes == sorted(observes) and len(set(observes)) == 4
        srv.bus.publish("actuators/a2/set", b"other actuator", qos=1)
        assert srv.server.observers == 1
        req.observation.cancel()


async def test_post_to_actuator_publishes_a_command() -> None:
    """POST actuators/{id}/set publishes the raw payload on the bus and answers 2.04."""
    async with coap_server() as srv, aiocoap_client() as client:
        commands = Recorder(srv.bus, "actuators/+/set")
        response = await request(
            client, code=Code.POST, uri=srv.base + "/actuators/fan-2/set", payload=b"on"
        )
        assert response.code == Code.CHANGED
        assert commands.messages == [("actuators/fan-2/set", b"on")]


async def test_ps_post_reaches_a_bus_subscriber() -> None:
    """POST /ps/{topic} publishes the raw payload to {topic}."""
    async with coap_server() as srv, aiocoap_client() as client:
        recorder = Recorder(srv.bus, "sensors/#")
        response = await request(
            client, code=Code.POST, uri=srv.base + "/ps/sensors/room1/co2", payload=b"\x01\x02"
        )
        assert response.code == Code.CHANGED
        assert recorder.messages == [("sensors/room1/co2", b"\x01\x02")]


@pytest.mark.parametrize("path", ["sensors/+/co2", "sensors/%23"], ids=["plus", "hash"])
async def test_ps_observe_with_wildcards_sees_bus_messages(path: str) -> None:
    """GET+Observe /ps/{filter} (MQTT wildcards as path segments) gets matching messages."""
    async with coap_server() as srv, aiocoap_client() as client:
        req = client.request(
            aiocoap.Message(code=Code.GET, uri=f"{srv.base}/ps/{path}", observe=0)
        )
        first = await asyncio.wait_for(req.response, 5)
        assert first.code == Code.CONTENT and first.opt.observe is not None
        srv.bus.publish("other/room1/co2", b"no", qos=0)
        srv.bus.publish("sensors/room1/co2", b"812", qos=0)
        notification = await asyncio.wait_for(req.observation.__aiter__().__anext__(), 5)
        assert notification.payload == b"812"
        listing = await request(client, code=Code.GET, uri=srv.base + "/ps")
        assert b"</ps/sensors/" in listing.payload and listing.opt.content_format == 40
        req.observation.cancel()


async def test_ps_bad_topics_are_4_00() -> None:
    """A wildcard in a publish topic or a misplaced '#' in a filter is a 4.00."""
    async with coap_server() as srv, aiocoap_client() as client:
        response = await request(
            client, code=Code.POST, uri=srv.base + "/ps/sensors/+/co2", payload=b"1"
        )
        assert response.code == Code.BAD_REQUEST
        response = await request(
            client, code=Code.GET, uri=srv.base + "/ps/a/%23/b", observe=0
        )
        assert response.code == Code.BAD_REQUEST


async def test_blockwise_post_larger_than_one_datagram() -> None:
    """A SenML payload of several kB goes Block1 (RFC 7959) through aiocoap and is ingested."""
    records = [{0: f"temp{i}", 2: float(i), 1: "Cel"} for i in range(150)]
    payload = cbor2.dumps(records)
    assert len(payload) > 2048
    async with coap_server() as srv, aiocoap_client() as client:
        response = await request(
            client, code=Code.POST, uri=srv.base + "/devices/d1/telemetry",
            payload=payload, content_format=112,
        )
        assert response.code == Code.CHANGED
        assert summary(response)["accepted"] == 150
        assert srv.server.counters["general_option_27"] >= 2  # the blocks took aiocoap's path


async def test_blockwise_post_over_max_payload_is_4_13_with_size1() -> None:
    """A Block1 transfer whose total exceeds max_payload is refused with 4.13 and Size1."""
    payload = cbor2.dumps([{0: f"temp{i}", 2: float(i)} for i in range(200)])
    async with coap_server(max_payload=1500) as srv, aiocoap_client() as client:
        response = await request(
            client, code=Code.POST, uri=srv.base + "/devices/d1/telemetry",
            payload=payload, content_format=112,
        )
        assert response.code == Code.REQUEST_ENTITY_TOO_LARGE
        assert response.opt.size1 == 1500
        assert srv.server.counters["block1_too_large"] == 1


async def test_single_datagram_over_max_payload_is_4_13_with_size1() -> None:
    """A one-datagram body over max_payload gets 4.13 and Size1 on the fast path."""
    async with coap_server(max_payload=100) as srv, aiocoap_client() as client:
        response = await request(
            client, code=Code.POST, uri=srv.base + "/devices/d1/telemetry",
            payload=cbor2.dumps({"label": "x" * 300}), content_format=60,
        )
        assert response.code == Code.REQUEST_ENTITY_TOO_LARGE
        assert response.opt.size1 == 100


async def test_well_known_core_lists_resources_with_attributes() -> None:
    """/.well-known/core is RFC 6690 link-format with rt, ct and obs attributes."""
    async with coap_server() as srv, aiocoap_client() as client:
        await request(
            client, code=Code.POST, uri=srv.base + "/devices/d1/telemetry",
            payload=SENML_CBOR, content_format=112,
        )
        await request(client, code=Code.POST, uri=srv.base + "/actuators/a1/set", payload=b"on")
        response = await request(client, code=Code.GET, uri=srv.base + "/.well-known/core")
        assert response.code == Code.CONTENT
        assert response.opt.content_format == 40
        links = response.payload.decode()
        assert '</time>;ct="60 50";rt="egw.time"' in links
        assert '</ps>;ct="40";rt="core.ps"' in links
        assert '</devices/d1/telemetry>;rt="egw.telemetry";ct="112 110 60 50"' in links
        assert '</devices/d1/command>;rt="egw.command";ct="0 50 60"' in links
        assert '</actuators/a1/set>;rt="egw.actuator";obs' in links
        filtered = await request(
            client, code=Code.GET, uri=srv.base + "/.well-known/core?rt=egw.time"
        )
        assert filtered.payload.decode() == '</time>;ct="60 50";rt="egw.time"'


@pytest.mark.parametrize("accept", [None, 60, 50])
async def test_time_in_cbor_or_json(accept: int | None) -> None:
    """GET /time returns epoch seconds as a float, CBOR by default or by Accept 60, JSON by 50."""
    async with coap_server() as srv, aiocoap_client() as client:
        options = {} if accept is None else {"accept": accept}
        response = await request(client, code=Code.GET, uri=srv.base + "/time", **options)
        assert response.code == Code.CONTENT
        if accept == 50:
            assert response.opt.content_format == 50
            value = json.loads(response.payload)
        else:
            assert response.opt.content_format == 60
            value = cbor2.loads(response.payload)
        assert isinstance(value, float)
        assert abs(value - time.time()) < 5


async def test_time_with_an_unsupported_accept_is_4_06() -> None:
    """Accept text/plain on /time is 4.06 Not Acceptable."""
    async with coap_server() as srv, aiocoap_client() as client:
        response = await request(client, code=Code.GET, uri=srv.base + "/time", accept=0)
        assert response.code == Code.NOT_ACCEPTABLE


async def test_invalid_payloads_are_4_00_with_a_diagnostic() -> None:
    """Invalid CBOR, JSON or SenML is 4.00 Bad Request with a short diagnostic payload."""
    async with coap_server() as srv, aiocoap_client() as client:
        for payload, content_format in [
            (b"\xa1\x61", 112),  # truncated CBOR
            (b"{not json", 110),
            (cbor2.dumps([{2: "not a number"}]), 112),  # SenML v must be a number
            (b'{"text": 7}', 50),
        ]:
            kind = "command" if payload.startswith(b'{"text"') else "telemetry"
            response = await request(
                client, code=Code.POST, uri=f"{srv.base}/devices/d1/{kind}",
                payload=payload, content_format=content_format,
            )
            assert response.code == Code.BAD_REQUEST, payload
            assert 0 < len(response.payload) <= 100
            response.payload.decode("ascii")


async def test_unsupported_content_format_is_4_15() -> None:
    """Telemetry as text/plain or a command as SenML is 4.15 Unsupported Content-Format."""
    async with coap_server() as srv, aiocoap_client() as client:
        response = await request(
            client, code=Code.POST, uri=srv.base + "/devices/d1/telemetry",
            payload=b"21.5", content_format=0,
        )
        assert response.code == Code.UNSUPPORTED_CONTENT_FORMAT
        response = await request(
            client, code=Code.POST, uri=srv.base + "/devices/d1/command",
            payload=SENML_CBOR, content_format=112,
        )
        assert response.code == Code.UNSUPPORTED_CONTENT_FORMAT


@pytest.mark.parametrize(
    "path", ["/nothing", "/devices/d1/other", "/devices/d1", "/devices", "/actuators/a1/get"]
)
async def test_unknown_paths_are_4_04(path: str) -> None:
    """Paths outside the namespace are 4.04 Not Found."""
    async with coap_server() as srv, aiocoap_client() as client:
        response = await request(client, code=Code.POST, uri=srv.base + path, payload=b"{}")
        assert response.code == Code.NOT_FOUND


@pytest.mark.parametrize(
    ("method", "path"),
    [
        (Code.GET, "/devices/d1/telemetry"),
        (Code.PUT, "/devices/d1/command"),
        (Code.DELETE, "/actuators/a1/set"),
        (Code.POST, "/time"),
        (Code.PUT, "/.well-known/core"),
        (Code.DELETE, "/ps/a/b"),
    ],
)
async def test_wrong_methods_are_4_05(method: Code, path: str) -> None:
    """A method a resource does not support is 4.05 Method Not Allowed."""
    async with coap_server() as srv, aiocoap_client() as client:
        response = await request(client, code=method, uri=srv.base + path, payload=b"x")
        assert response.code == Code.METHOD_NOT_ALLOWED


class SheddingPipeline:
    def __init__(self, _bus: MessageBus) -> None:
        pass

    def ingest_tracked(self, item: TelemetryBatch | TextCommand) -> tuple[CoapSummary, None]:
        raise Overloaded("uplink queue full", retry_after=7)


async def test_overloaded_pipeline_is_5_03_with_max_age() -> None:
    """When the pipeline sheds load the device gets 5.03 with Max-Age = retry_after."""
    async with coap_server(SheddingPipeline) as srv, aiocoap_client() as client:
        response = await request(
            client, code=Code.POST, uri=srv.base + "/devices/d1/telemetry",
            payload=SENML_CBOR, content_format=112,
        )
        assert response.code == Code.SERVICE_UNAVAILABLE
        assert response.opt.max_age == 7


class DecidingPipeline:
    def __init__(self, _bus: MessageBus) -> None:
        pass

    def ingest_tracked(self, item: TelemetryBatch | TextCommand) -> tuple[CoapSummary, None]:
        command = ActuatorCommand(
            actuator_id="lamp-3", command={"state": "off"}, issued_at=1700000000.5
        )
        return CoapSummary(accepted=1, intent="lights_off", actions=[command]), None


async def test_summary_carries_intent_and_actions() -> None:
    """The 2.04 body is the summary as CBOR: intent and actuator commands included."""
    async with coap_server(DecidingPipeline) as srv, aiocoap_client() as client:
        response = await request(
            client, code=Code.POST, uri=srv.base + "/devices/d1/command",
            payload=b"turn off the lamp", content_format=0,
        )
        assert summary(response) == {
            "accepted": 1,
            "intent": "lights_off",
            "actions": [
                {"actuator_id": "lamp-3", "command": {"state": "off"},
                 "issued_at": 1700000000.5}
            ],
        }


@pytest.mark.parametrize("delay", [0.01, 0.4], ids=["piggybacked", "separate"])
async def test_late_command_answer_reaches_the_client(delay: float) -> None:
    """A command the pipeline answers later reaches aiocoap's client, piggybacked or as a
    separate response after an empty ACK, on the fast and the general path alike."""
    class Pipeline(SlowCommandPipeline):
        pass

    Pipeline.delay = delay
    async with coap_server(Pipeline, empty_ack_delay=0.1) as srv, aiocoap_client() as client:
        for accept in ({}, {"accept": 60}):  # Accept sends it through aiocoap instead
            response = await request(
                client, code=Code.POST, uri=srv.base + "/devices/d1/command",
                payload=b"lights off", content_format=0, **accept,
            )
            assert response.code == Code.CHANGED
            assert summary(response)["intent"] == "lights_off"
