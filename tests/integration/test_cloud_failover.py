"""Cloud recogniser chaos: the real gateway, a private mosquitto and the reference cloud service
(`sensor-sim cloud`) as a separate process, stopped and restarted under continuous commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from schemas import Decision, GatewayStatus
from schemas.cloud import CloudConfig
from sensor_sim.cloud import DEFAULT_MODEL
from tests.helpers import MosquittoProcess, MqttRecorder
from tests.integration.gateway_runner import (
    address,
    broker_connected,
    gateway_settings,
    running_gateway,
)
from tests.integration.mqttsn_client import UdpMqttSnClient
from tests.integration.test_coap_support import until

pytestmark = pytest.mark.integration

Recorder = Callable[..., MqttRecorder]

REQUEST_TOPIC = "test/cloud/requests"
HEARTBEAT = 0.2
CLOUD_ONLY = "set an alarm for seven am"  # local: confident 'other'; cloud: alarm_set
UNSURE = "switch kitchen lights"  # local: lightup below 0.6; cloud: lightoff in the kitchen
CONFIDENT = "turn off the kitchen lights"  # local decides alone
CLOUD_VERSION = json.loads(DEFAULT_MODEL.read_text(encoding="utf-8"))["version"]


class CloudProcess:
    """`python -m sensor_sim cloud` on the test broker; stopped by pid."""

    def __init__(self, broker_url: str, log_path: Path) -> None:
        self._args = [sys.executable, "-m", "sensor_sim", "cloud", "--broker", broker_url,
                      "--request-topic", REQUEST_TOPIC]
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log_path.open("ab") as log:
            self._proc = subprocess.Popen(self._args, stdout=log, stderr=log)

    def stop(self) -> None:
        """SIGTERM (the service disconnects cleanly), SIGKILL after 5 s; always reaped."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def subscribed(self) -> int:
        """How many times the service has subscribed to the request topic (log lines)."""
        return self._log_path.read_text(errors="replace").count("cloud_subscribed")

    def log_tail(self) -> str:
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-20:])


async def decision_for(recorder: MqttRecorder, index: int) -> Decision:
    messages = await recorder.wait_for_async(index + 1, within=5)
    return Decision.model_validate_json(messages[index].payload)


async def send_until(
    panel: UdpMqttSnClient, topic_id: int, stop: asyncio.Event, sent: list[str]
) -> None:
    """Alternate a cloud-only command and a confident one every 50 ms until ``stop``."""
    while not stop.is_set():
        text = CLOUD_ONLY if len(sent) % 2 == 0 else CONFIDENT
        await panel.publish(topic_id, text.encode(), qos=1)
        sent.append(text)
        await asyncio.sleep(0.05)


async def test_cloud_stopped_and_restarted_under_continuous_commands(
    tmp_path: Path, mosquitto: MosquittoProcess, mqtt_recorder: Recorder
) -> None:
    """Unsure and cloud-only commands are answered by the cloud; with the service stopped the
    gateway is DEGRADED after 3 heartbeats and every command still gets a (local) decision;
    restarted, it is ONLINE again after recovery; the status topic shows both transitions."""
    status = mqtt_recorder("edge/site1/gateway/status", qos=1)
    decisions = mqtt_recorder("edge/site1/decisions/#", qos=1)
    service = CloudProcess(mosquitto.url, tmp_path / "cloud.log")
    settings = gateway_settings(tmp_path, mosquitto.url)
    settings = settings.model_copy(update={"cloud": CloudConfig(
        enabled=True, request_topic=REQUEST_TOPIC, heartbeat_interval=HEARTBEAT,
        misses_to_degrade=3, successes_to_recover=3, escalate_below=0.6, deadline_ms=500,
    )})
    service.start()
    try:
        await until(lambda: service.subscribed() == 1, 30)
        async with (
            running_gateway(settings) as gateway,
            UdpMqttSnClient(address(gateway)) as panel,
        ):
            await broker_connected(gateway)
            assert gateway.failover is not None and gateway.cloud is not None
            failover = gateway.failover
            await until(lambda: failover.counters["heartbeat_successes"] >= 2, 20)
            assert failover.mode == "online"
            await panel.connect("panel1")
            topic_id = await panel.register("devices/panel1/command")

            # ONLINE: a cloud-only intent and an unsure smart-home command go to the cloud.
            await panel.publish(topic_id, CLOUD_ONLY.encode(), qos=1)
            cloud_only = await decision_for(decisions, 0)
            assert (cloud_only.recognizer, cloud_only.intent.name) == ("cloud", "alarm_set")
            assert cloud_only.model_version == CLOUD_VERSION
            assert cloud_only.actions == []  # recorded, no actuator
            await panel.publish(topic_id, UNSURE.encode(), qos=1)
            unsure = await decision_for(decisions, 1)
            assert (unsure.recognizer, unsure.intent.name) == ("cloud", "iot_hue_lightoff")
            assert [(a.actuator_id, a.command) for a in unsure.actions] == [
                ("light.kitchen", {"state": "off"})
            ]
            decisions.clear()

            stop_sending = asyncio.Event()
            sent: list[str] = []
            async with asyncio.TaskGroup() as group:
                group.create_task(send_until(panel, topic_id, stop_sending, sent))
                await until(lambda: len(sent) >= 6, 10)
                stopped_at = asyncio.get_running_loop().time()
                service.stop()
                await until(lambda: failover.mode == "degraded", 5)
                took = asyncio.get_running_loop().time() - stopped_at
                assert took < 3 * HEARTBEAT + 1.5, took
                degraded_at = len(sent)
                await until(lambda: len(sent) >= degraded_at + 8, 10)
                service.start()
                await until(lambda: service.subscribed() == 2, 30)
                await until(lambda: failover.mode == "online", 5)
                recovered_at = len(sent)
                await until(lambda: len(sent) >= recovered_at + 6, 10)
                stop_sending.set()

            got = [Decision.model_validate_json(m.payload)
                   for m in await decisions.wait_for_async(len(sent), within=10)]
            assert len(got) == len(sent)  # every command got exactly one decision
            seqs = sorted(d.seq for d in got)
            assert seqs == list(range(seqs[0], seqs[0] + len(sent)))
            by_recognizer = {d.recognizer for d in got}
            assert by_recognizer == {"local", "cloud"}
            assert all(d.intent.name in {"alarm_set", "other", "iot_hue_lightoff"} for d in got)
            policy = gateway.pipeline.policy if gateway.pipeline else None
            assert policy is not None
            assert policy.counters["local_degraded"] >= 4  # decided locally without asking
            assert policy.counters["cloud_answered"] >= 4  # before the stop and after recovery
            assert failover.counters["entered_degraded"] == 1
            assert failover.counters["entered_online"] == 1
            spent = gateway.cloud.mode_seconds()
            assert spent["degraded"] > 0.5
    finally:
        service.stop()

    states = [GatewayStatus.model_validate_json(m.payload) for m in status.messages]
    transitions = [(s.state, s.reason) for s in states if s.reason.startswith("cloud_")]
    # The third miss is a heartbeat or an escalated request that timed out, whichever came
    # first after the stop.
    assert [state for state, _ in transitions] == ["degraded", "online"], service.log_tail()
    assert transitions[0][1] in {"cloud_heartbeat_timeout", "cloud_request_timeout"}
    assert transitions[1][1] == "cloud_recovered"
    assert states[0].state == "online"  # the link's own status on connect
