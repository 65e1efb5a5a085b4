"""The real gateway's HTTP endpoint over loopback: /healthz, /readyz and /metrics, with real
MQTT-SN and CoAP traffic, a real mosquitto and the packaged models; counters are asserted to
move by exactly what was sent."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import cbor2
import pytest

from gateway.app import Gateway
from gateway.coap.message import (
    CON,
    CONTENT,
    CONTENT_FORMAT,
    GET,
    NON,
    POST,
    RST,
    URI_PATH,
    Message,
    decode,
    encode,
)
from gateway.mqttsn.packets import Disconnect
from gateway.pipeline.normalise import CF_SENML_CBOR, CF_TEXT
from tests.helpers import MosquittoProcess
from tests.integration.gateway_runner import (
    address,
    broker_connected,
    gateway_settings,
    running_gateway,
)
from tests.integration.mqttsn_client import UdpMqttSnClient
from tests.integration.test_coap_support import raw_client
from tests.unit.test_http_metrics import parse_samples

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


async def http_get(gateway: Gateway, path: str) -> tuple[int, str, bytes]:
    """GET with urllib (a real HTTP client) in a worker thread."""
    assert gateway.http_address is not None
    host, port = gateway.http_address
    return await asyncio.to_thread(_get, f"http://{host}:{port}{path}")


async def metrics(gateway: Gateway) -> dict[str, float]:
    status, content_type, body = await http_get(gateway, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    return parse_samples(body.decode())


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Samples that changed (new ones count from 0), without process_* and timings."""
    moved = {}
    for key, value in after.items():
        if key.startswith(("process_", "egw_recognizer_batch_duration_seconds",
                           "egw_recognizer_mode_seconds", "egw_spool_file_bytes",
                           "egw_spool_oldest_age_seconds", "python_")):
            continue
        if value != before.get(key, 0.0):
            moved[key] = value - before.get(key, 0.0)
    return moved


def coap_post(mid: int, path: tuple[bytes, ...], content_format: int, payload: bytes) -> bytes:
    options = (*((URI_PATH, p) for p in path), (CONTENT_FORMAT, bytes([content_format])))
    return encode(Message(NON, POST, mid, bytes([mid]), options, payload))


async def test_health_and_readiness_of_a_running_gateway(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    """/healthz is 200 ok; /readyz is 200 with the listeners, models, broker, recogniser mode
    and spool reported; other paths and methods get 404 and 405."""
    async with running_gateway(gateway_settings(tmp_path, mosquitto.url)) as gateway:
        await broker_connected(gateway)
        assert gateway.http_address is not None and gateway.http_address[1] != 0
        assert await http_get(gateway, "/healthz") == (
            200, "application/json", b'{"status":"ok"}\n'
        )
        status, _, body = await http_get(gateway, "/readyz")
        assert status == 200
        assert json.loads(body) == {
            "status": "ready",
            "checks": {"mqttsn_listening": True, "coap_listening": True,
                       "models_loaded": True, "not_stopping": True},
            "broker": {"configured": True, "connected": True},
            "recognizer": {"mode": "local"},
            "spool": {"enabled": True, "rows": 0},
        }
        assert (await http_get(gateway, "/nope"))[0] == 404
        host, port = gateway.http_address
        request = urllib.request.Request(f"http://{host}:{port}/metrics", method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
        assert info.value.code == 405
        info.value.close()


async def test_metrics_move_by_exactly_the_traffic_sent(
    tmp_path: Path, mosquitto: MosquittoProcess
) -> None:
    """An MQTT-SN session (CONNECT, REGISTER, QoS 1 PUBLISH, DISCONNECT) plus one malformed
    datagram, and CoAP NON telemetry, a NON text command, discovery, a ping and a malformed
    CON: datagrams, messages, requests by code, drops, decisions, recogniser batches and broker
    publishes move by exactly those amounts."""
    async with running_gateway(gateway_settings(tmp_path, mosquitto.url)) as gateway:
        await broker_connected(gateway)
        assert gateway.coap is not None and gateway.coap.address is not None
        before = await metrics(gateway)
        assert before["egw_gateway_ready{}"] == 1
        assert before["egw_broker_connected{}"] == 1

        async with UdpMqttSnClient(address(gateway)) as sensor:
            await sensor.connect("s1")
            topic_id = await sensor.register("sensors/s1/raw")
            await sensor.publish(topic_id, b"21.5", qos=1)
            during = await metrics(gateway)
            assert during['egw_mqttsn_clients{state="active"}'] == 1
            sensor.send(Disconnect())
            await sensor.expect(Disconnect)
            sensor.send(b"\x02\x99")  # a message type that does not exist
            await sensor.nothing(0.2)

        async with raw_client(gateway.coap.address[1]) as coap:
            senml = cbor2.dumps([{0: "hum", 2: 40.0}])
            coap.send(coap_post(1, (b"devices", b"s2", b"telemetry"), CF_SENML_CBOR, senml))
            assert decode(await coap.recv(10)).code == 0x44
            command = b"turn off the kitchen lights"
            coap.send(coap_post(2, (b"devices", b"panel1", b"command"), CF_TEXT, command))
            answer = decode(await coap.recv(10))
            assert answer.code == 0x44
            assert cbor2.loads(answer.payload)["intent"] == "iot_hue_lightoff"
            discovery = ((URI_PATH, b".well-known"), (URI_PATH, b"core"))
            coap.send(encode(Message(CON, GET, 3, b"\x03", discovery)))
            assert decode(await coap.recv()).code == CONTENT
            coap.send(bytes.fromhex("40000004"))  # ping
            assert decode(await coap.recv()).mtype == RST
            coap.send(bytes.fromhex("40010005ff"))  # malformed CON
            assert decode(await coap.recv()).mtype == RST

        after = await metrics(gateway)
    moved = delta(before, after)
    mqttsn = 'egw_messages_{}_total{{protocol="mqttsn",type="{}"}}'
    coap_in = 'egw_messages_received_total{{protocol="coap",type="{}"}}'
    coap_out = 'egw_messages_sent_total{{protocol="coap",type="{}"}}'
    expected = {
        'egw_datagrams_received_total{protocol="mqttsn"}': 5,
        'egw_datagrams_sent_total{protocol="mqttsn"}': 4,
        mqttsn.format("received", "CONNECT"): 1,
        mqttsn.format("received", "REGISTER"): 1,
        mqttsn.format("received", "PUBLISH"): 1,
        mqttsn.format("received", "DISCONNECT"): 1,
        mqttsn.format("sent", "CONNACK"): 1,
        mqttsn.format("sent", "REGACK"): 1,
        mqttsn.format("sent", "PUBACK"): 1,
        mqttsn.format("sent", "DISCONNECT"): 1,
        'egw_dropped_messages_total{component="mqttsn",reason="malformed_unknown_type"}': 1,
        'egw_datagrams_received_total{protocol="coap"}': 5,
        'egw_datagrams_sent_total{protocol="coap"}': 5,
        coap_in.format("fast_path"): 2,
        coap_in.format("general"): 1,
        coap_in.format("ping"): 1,
        coap_in.format("dropped"): 1,
        coap_out.format("response"): 2,
        coap_out.format("general"): 1,
        coap_out.format("reset"): 2,
        'egw_coap_requests_total{code="2.04"}': 2,
        'egw_coap_requests_total{code="2.05"}': 1,
        'egw_dropped_messages_total{component="coap",reason="malformed_empty_payload"}': 1,
        'egw_decisions_total{intent="iot_hue_lightoff",recognizer="local"}': 1,
        'egw_recognizer_requests_total{model="intent_text"}': 1,
        'egw_recognizer_batch_size_items_bucket{le="1.0",model="intent_text"}': 1,
        'egw_recognizer_batch_size_items_count{model="intent_text"}': 1,
        'egw_recognizer_batch_size_items_sum{model="intent_text"}': 1,
        # The bridged MQTT-SN publish, the normalised telemetry and command, the decision and
        # the actuator command for light.kitchen.
        'egw_messages_sent_total{protocol="mqtt",type="PUBLISH"}': 5,
    }
    batch_buckets = {
        key for key in moved
        if key.startswith("egw_recognizer_batch_size_items_bucket") and 'le="1.0"' not in key
    }
    for key in batch_buckets:  # cumulative: every bucket above 1 item moved by 1 too
        assert moved.pop(key) == 1
    assert moved == expected


async def test_http_can_be_turned_off(tmp_path: Path) -> None:
    """EGW_HTTP__ENABLED=false: the gateway runs without binding an HTTP port."""
    settings = gateway_settings(tmp_path)
    settings = settings.model_copy(update={"http": settings.http.model_copy(
        update={"enabled": False})})
    async with running_gateway(settings) as gateway:
        assert gateway.http_address is None
        assert gateway.ready.is_set()


async def test_a_busy_http_port_stops_the_gateway_with_a_clear_error(tmp_path: Path) -> None:
    """An HTTP port already listened on fails the start with HttpPortInUse, nothing left open."""
    from gateway.http import HttpPortInUse  # noqa: PLC0415

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        settings = gateway_settings(tmp_path)
        http = settings.http.model_copy(update={"port": squatter.getsockname()[1]})
        gateway = Gateway(settings.model_copy(update={"http": http}))
        with pytest.raises(ExceptionGroup) as info:
            await asyncio.wait_for(gateway.run(), 10)
    assert info.group_contains(HttpPortInUse)
    assert not gateway.ready.is_set()
