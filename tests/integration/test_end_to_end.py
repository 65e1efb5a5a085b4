"""Sensors and panels to actuators through the whole gateway: front-ends, real model, rules,
local delivery, broker. Real UDP sockets, a real mosquitto, the packaged onnxruntime model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiocoap
import cbor2
import pytest

from schemas import ActuatorCommand, Decision
from tests.helpers import MosquittoProcess, MqttRecorder
from tests.integration.gateway_runner import (
    address,
    broker_connected,
    broker_disconnected,
    gateway_settings,
    running_gateway,
)
from tests.integration.mqttsn_client import UdpMqttSnClient
from tests.integration.test_coap_support import aiocoap_client, request, until

pytestmark = pytest.mark.integration

Recorder = Callable[..., MqttRecorder]


async def command_from_panel(gateway_addr: tuple[str, int], text: bytes) -> None:
    async with UdpMqttSnClient(gateway_addr) as panel:
        await panel.connect("panel1")
        topic_id = await panel.register("devices/panel1/command")
        await panel.publish(topic_id, text, qos=1)


@pytest.mark.parametrize("broker_up", [True, False])
async def test_mqttsn_panel_command_reaches_mqttsn_actuator(
    tmp_path: Path, mosquitto: MosquittoProcess, mqtt_recorder: Recorder, broker_up: bool
) -> None:
    """'turn off the kitchen lights' from an MQTT-SN panel switches light.kitchen off, and the
    decision reaches the back office; the actuator is served with the broker stopped too."""
    recorder = mqtt_recorder("edge/site1/decisions/#", qos=1)
    async with (
        running_gateway(gateway_settings(tmp_path, mosquitto.url)) as gateway,
        UdpMqttSnClient(address(gateway)) as light,
    ):
        await broker_connected(gateway)
        if not broker_up:
            await asyncio.to_thread(mosquitto.stop)
            await broker_disconnected(gateway)
        await light.connect("light.kitchen")
        await light.subscribe("actuators/light.kitchen/set", qos=1)
        panel = asyncio.ensure_future(
            command_from_panel(address(gateway), b"turn off the kitchen lights")
        )
        topic, payload = await light.next_message(timeout=5)
        command = ActuatorCommand.model_validate_json(payload)
        assert topic == "actuators/light.kitchen/set"
        assert (command.actuator_id, command.command) == ("light.kitchen", {"state": "off"})
        await light.nothing(0.3)
        if broker_up:
            await panel
            (got,) = await recorder.wait_for_async(1)
            decision = Decision.model_validate_json(got.payload)
            assert (decision.intent.name, decision.recognizer) == ("iot_hue_lightoff", "local")
            assert decision.intent.slots.get("house_place") == "kitchen"
            assert decision.seq == command.decision_seq
        else:
            panel.cancel()  # its QoS 1 PUBACK waits for the broker, which is down
            await asyncio.gather(panel, return_exceptions=True)


async def observe(client: Any, uri: str) -> tuple[Any, asyncio.Future[bytes]]:
    """Register a CoAP observation of `uri`: the request and a future of its first
    notification's payload."""
    observation = client.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
    assert (await asyncio.wait_for(observation.response, 5)).code.is_successful()

    async def first_notification() -> bytes:
        async for notification in observation.observation:
            return bytes(notification.payload)
        raise AssertionError("the observation ended without a notification")

    return observation, asyncio.ensure_future(first_notification())


async def test_coap_command_answer_carries_the_decision(tmp_path: Path) -> None:
    """A CoAP text command gets 2.04 with the intent and actions; a CoAP observer of the
    actuator sees the command pushed."""
    async with (
        running_gateway(gateway_settings(tmp_path)) as gateway,
        aiocoap_client() as client,
    ):
        assert gateway.coap is not None
        base = f"coap://127.0.0.1:{gateway.coap.address[1]}"
        observation, pushed = await observe(client, base + "/actuators/light.bedroom/set")
        await until(lambda: gateway.coap is not None and gateway.coap.observers == 1)
        response = await request(
            client, code=aiocoap.POST, uri=base + "/devices/panel3/command",
            payload=b"switch off the lights in the bedroom", content_format=0,
        )
        assert str(response.code) == "2.04 Changed"
        summary = cbor2.loads(response.payload)
        assert summary["intent"] == "iot_hue_lightoff"
        assert [a["actuator_id"] for a in summary["actions"]] == ["light.bedroom"]
        command = ActuatorCommand.model_validate_json(await asyncio.wait_for(pushed, 5))
        assert command.command == {"state": "off"}
        observation.observation.cancel()


async def test_coap_smoke_reading_fires_the_siren_rule(tmp_path: Path) -> None:
    """A SenML-CBOR smoke reading over the threshold answers with smoke_detected and commands
    the hall siren to a local MQTT-SN subscriber."""
    async with (
        running_gateway(gateway_settings(tmp_path)) as gateway,
        aiocoap_client() as client,
        UdpMqttSnClient(address(gateway)) as siren,
    ):
        assert gateway.coap is not None
        await siren.connect("siren.hall")
        await siren.subscribe("actuators/siren.hall/set", qos=1)
        payload = cbor2.dumps([{-2: "urn:dev:smoke1:", 0: "smoke", 2: 0.93}])
        response = await request(
            client, code=aiocoap.POST, content_format=112, payload=payload,
            uri=f"coap://127.0.0.1:{gateway.coap.address[1]}/devices/smoke1/telemetry",
        )
        summary = cbor2.loads(response.payload)
        assert (summary["accepted"], summary["intent"]) == (1, "smoke_detected")
        _, data = await siren.next_message(timeout=5)
        assert ActuatorCommand.model_validate_json(data).command == {"state": "on"}


async def test_occupancy_model_drives_the_room(tmp_path: Path) -> None:
    """A dark office reported over MQTT-SN turns its light off and HVAC to eco; a bright one
    (occupied) turns the HVAC to comfort; a repeated state decides nothing new."""
    async with (
        running_gateway(gateway_settings(tmp_path)) as gateway,
        UdpMqttSnClient(address(gateway)) as sensor,
        UdpMqttSnClient(address(gateway)) as office,
    ):
        await office.connect("office-actuators")
        await office.subscribe("actuators/+/set", qos=0)
        await sensor.connect("occ1")
        topic_id = await sensor.register("devices/occ1/telemetry")
        dark = {"temp": 21.0, "humidity": 27.0, "light": 0.0, "co2": 440.0}
        await sensor.publish(topic_id, cbor2.dumps(dark), qos=1)
        got = {
            ActuatorCommand.model_validate_json((await office.next_message(timeout=5))[1])
            .actuator_id: None
            for _ in range(2)
        }
        assert set(got) == {"light.office", "hvac.office"}
        await sensor.publish(topic_id, cbor2.dumps(dark), qos=1)
        await office.nothing(0.3)
        bright = {**dark, "light": 480.0, "co2": 900.0}
        await sensor.publish(topic_id, cbor2.dumps(bright), qos=1)
        command = ActuatorCommand.model_validate_json((await office.next_message(timeout=5))[1])
        assert (command.actuator_id, command.command) == ("hvac.office", {"mode": "comfort"})


async def test_mqttsn_panel_gets_its_decision_summary(tmp_path: Path) -> None:
    """An MQTT-SN panel subscribed to devices/{id}/decision gets the CBOR summary (intent and
    actions) of the decision its command caused; no broker is needed."""
    async with (
        running_gateway(gateway_settings(tmp_path)) as gateway,
        UdpMqttSnClient(address(gateway)) as panel,
    ):
        await panel.connect("panel7")
        await panel.subscribe("devices/panel7/decision", qos=1)
        topic_id = await panel.register("devices/panel7/command")
        await panel.publish(topic_id, b"turn off the kitchen lights", qos=1)
        topic, payload = await panel.next_message(timeout=5)
        assert topic == "devices/panel7/decision"
        summary = cbor2.loads(payload)
        assert (summary["accepted"], summary["intent"]) == (1, "iot_hue_lightoff")
        assert [action["actuator_id"] for action in summary["actions"]] == ["light.kitchen"]
        await panel.nothing(0.3)  # one decision, one summary


async def test_coap_observer_of_ps_decision_gets_the_summary(tmp_path: Path) -> None:
    """A CoAP device observing /ps/devices/{id}/decision is pushed the decision summary."""
    async with (
        running_gateway(gateway_settings(tmp_path)) as gateway,
        aiocoap_client() as client,
    ):
        assert gateway.coap is not None
        base = f"coap://127.0.0.1:{gateway.coap.address[1]}"
        observation, pushed = await observe(client, base + "/ps/devices/panel8/decision")
        await until(lambda: gateway.coap is not None and gateway.coap.observers == 1)
        await request(
            client, code=aiocoap.POST, uri=base + "/devices/panel8/command",
            payload=b"turn on the lights in the kitchen", content_format=0,
        )
        summary = cbor2.loads(await asyncio.wait_for(pushed, 5))
        assert summary["intent"] == "iot_hue_lighton"
        assert [action["actuator_id"] for action in summary["actions"]] == ["light.kitchen"]
        observation.observation.cancel()
