"""The cloud client (correlation, refusals, bounds), the heartbeat supervisor and the reference
service's answers, over an in-memory request channel."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest
from pydantic import ValidationError

from gateway.bridge.link import ResponseHandler
from gateway.config import load_settings
from gateway.recognizer.cloud import CloudClient, CloudUnavailable
from gateway.recognizer.failover import Failover
from gateway.recognizer.heartbeat import CloudSupervisor
from gateway.recognizer.text_model import TextIntentModel
from schemas import GatewayStatus, Intent
from schemas.cloud import CloudConfig, CloudRequest, CloudResponse
from sensor_sim.cloud import DEFAULT_MODEL, CloudService
from tests.integration.test_coap_support import until

RESPONSES = "cloud/responses/site1-1"


@dataclass
class Sent:
    topic: str
    request: CloudRequest
    response_topic: str
    correlation: bytes


@dataclass
class FakeChannel:
    """Records requests; `reply` answers one. ``auto`` answers heartbeats at once."""

    connected: bool = True
    auto: bool = False
    sent: list[Sent] = field(default_factory=list)
    responders: dict[str, ResponseHandler] = field(default_factory=dict)
    statuses: list[GatewayStatus] = field(default_factory=list)

    def request(
        self, topic: str, payload: bytes, *, response_topic: str, correlation_data: bytes
    ) -> bool:
        if not self.connected:
            return False
        sent = Sent(topic, CloudRequest.model_validate_json(payload), response_topic,
                    correlation_data)
        self.sent.append(sent)
        if self.auto:
            asyncio.get_running_loop().call_soon(
                self.reply, sent, CloudResponse(kind="heartbeat", ok=True, model_version="m2")
            )
        return True

    def add_responder(self, topic: str, handler: ResponseHandler) -> None:
        self.responders[topic] = handler

    def set_status(self, payload: bytes) -> None:
        self.statuses.append(GatewayStatus.model_validate_json(payload))

    def reply(self, sent: Sent, response: CloudResponse | bytes) -> None:
        body = response if isinstance(response, bytes) else response.model_dump_json().encode()
        self.responders[sent.response_topic](sent.correlation, body)


def client(channel: FakeChannel, **config: object) -> CloudClient:
    return CloudClient(channel, CloudConfig(enabled=True, **config),
                       gateway_id="site1-1", response_topic=RESPONSES, wall_clock=lambda: 42.0)


INTENT = Intent(name="alarm_set", confidence=0.9, slots={"time": "seven am"})


async def test_request_carries_the_contract_and_the_answer_resolves_it() -> None:
    """A recognize request goes to the request topic with the response topic and a
    correlation id; the matching answer resolves the intent and sets the cloud version."""
    channel = FakeChannel()
    cloud = client(channel, request_topic="nlu/requests", deadline_ms=120)
    future = cloud.submit("set an alarm for seven am", device_id="panel1")
    (sent,) = channel.sent
    assert (sent.topic, sent.response_topic) == ("nlu/requests", RESPONSES)
    assert sent.request == CloudRequest(
        kind="recognize", gateway_id="site1-1", text="set an alarm for seven am",
        device_id="panel1", deadline_ms=120, sent_at=42.0,
    )
    channel.reply(sent, CloudResponse(kind="recognize", ok=True, model_version="m9",
                                      intent=INTENT))
    assert await future == INTENT
    assert cloud.version == "m9"
    assert cloud.pending == 0


async def test_answers_are_matched_by_correlation_not_order() -> None:
    """Two requests answered in reverse order each get their own answer."""
    channel = FakeChannel()
    cloud = client(channel)
    first, second = cloud.submit("one"), cloud.submit("two")
    assert channel.sent[0].correlation != channel.sent[1].correlation
    other = Intent(name="weather_query", confidence=0.8)
    channel.reply(channel.sent[1], CloudResponse(kind="recognize", ok=True, model_version="m",
                                                 intent=other))
    channel.reply(channel.sent[0], CloudResponse(kind="recognize", ok=True, model_version="m",
                                                 intent=INTENT))
    assert (await first, await second) == (INTENT, other)


async def test_cancelled_request_is_forgotten_and_a_late_answer_dropped() -> None:
    """Cancelling (the policy's deadline) forgets the request; its late answer is counted."""
    channel = FakeChannel()
    cloud = client(channel)
    future = cloud.submit("late")
    future.cancel()
    for _ in range(3):  # the cancellation travels through two done-callbacks
        await asyncio.sleep(0)
    assert cloud.pending == 0
    channel.reply(channel.sent[0], CloudResponse(kind="recognize", ok=True, model_version="m",
                                                 intent=INTENT))
    assert cloud.counters["responses_unmatched"] == 1


@pytest.mark.parametrize(
    "answer",
    [
        CloudResponse(kind="recognize", ok=False, model_version="m", error="model failed"),
        CloudResponse(kind="recognize", ok=True, model_version="m"),  # no intent
        b"{not json",
    ],
)
async def test_refusals_and_malformed_answers_fail_with_error(
    answer: CloudResponse | bytes,
) -> None:
    """ok=false, a recognize answer without an intent or garbage: CloudUnavailable(error)."""
    channel = FakeChannel()
    future = client(channel).submit("x")
    channel.reply(channel.sent[0], answer)
    with pytest.raises(CloudUnavailable) as caught:
        await future
    assert caught.value.reason == "error"


async def test_unsendable_and_too_many_pending_raise_at_once() -> None:
    """Link down: unsent; max_pending requests outstanding: busy; nothing is queued."""
    down = client(FakeChannel(connected=False))
    with pytest.raises(CloudUnavailable) as unsent:
        down.submit("x")
    assert unsent.value.reason == "unsent" and down.pending == 0
    busy = client(FakeChannel(), max_pending=2)
    held = [busy.submit("a"), busy.submit("b")]
    with pytest.raises(CloudUnavailable) as refused:
        busy.submit("c")
    assert refused.value.reason == "busy"
    busy.close()
    await asyncio.sleep(0)
    assert all(f.cancelled() for f in held) and busy.pending == 0


def supervisor(channel: FakeChannel, interval: float = 0.02) -> CloudSupervisor:
    config = CloudConfig(enabled=True, heartbeat_interval=interval)
    cloud = CloudClient(channel, config, gateway_id="site1-1", response_topic=RESPONSES)
    failover = Failover(misses_to_degrade=3, successes_to_recover=3, now=0.0)
    return CloudSupervisor(cloud, failover, interval=interval, site="site1",
                           publish_status=channel.set_status)


async def test_heartbeats_degrade_then_recover_and_publish_each_change() -> None:
    """Unanswered heartbeats: DEGRADED after three, published retained as degraded; answered
    again: ONLINE after three, published as online; heartbeats keep their interval."""
    channel = FakeChannel(auto=True)
    watch = supervisor(channel)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(watch.run())
        await until(lambda: watch.failover.counters["heartbeat_successes"] >= 3)
        assert watch.mode == "online" and channel.statuses == []
        channel.auto = False
        await until(lambda: watch.mode == "degraded")
        assert watch.failover.counters["heartbeat_misses"] == 3
        channel.auto = True
        await until(lambda: watch.mode == "online")
        task.cancel()
    assert [(s.state, s.reason, s.site) for s in channel.statuses] == [
        ("degraded", "cloud_heartbeat_timeout", "site1"),
        ("online", "cloud_recovered", "site1"),
    ]
    assert all(s.time is not None for s in channel.statuses)
    assert {s.request.kind for s in channel.sent} == {"heartbeat"}
    assert watch.client.pending == 0
    spent = watch.mode_seconds()
    assert spent["degraded"] > 0 and spent["online"] > 0


async def test_broker_down_heartbeats_are_misses() -> None:
    """A heartbeat that cannot be sent (link down) counts as a miss at once."""
    channel = FakeChannel(connected=False)
    watch = supervisor(channel, interval=0.01)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(watch.run())
        await until(lambda: watch.mode == "degraded")
        task.cancel()
    assert watch.failover.counters["miss_unsent"] == 3
    assert channel.statuses[0].reason == "cloud_heartbeat_unsent"


@pytest.fixture(scope="module")
def service() -> CloudService:
    return CloudService(TextIntentModel.load(DEFAULT_MODEL), broker_url="mqtt://127.0.0.1:1")


def request(**fields: object) -> bytes:
    body = {"gateway_id": "g", "deadline_ms": 150, "sent_at": 1.0, **fields}
    return json.dumps(body).encode()


def test_reference_service_knows_more_intents_than_the_local_model(
    service: CloudService,
) -> None:
    """The cloud model's labels include every local label and many more (alarm, weather)."""
    local = set(TextIntentModel.load().labels)
    cloud = set(service.model.labels)
    assert local < cloud
    assert {"alarm_set", "weather_query", "general_joke"} <= cloud
    assert len(cloud) >= 60


def test_reference_service_answers_recognize_and_heartbeat(service: CloudService) -> None:
    """A recognize request gets the cloud-only intent; a heartbeat gets ok and the version."""
    answer = service.answer(request(kind="recognize", text="set an alarm for seven am"))
    assert answer.ok and answer.intent is not None
    assert answer.intent.name == "alarm_set"
    assert answer.model_version == service.model.version
    beat = service.answer(request(kind="heartbeat"))
    assert (beat.kind, beat.ok, beat.intent) == ("heartbeat", True, None)


def test_reference_service_refuses_malformed_requests(service: CloudService) -> None:
    """Garbage or a recognize request without text is answered ok=false with a reason."""
    for payload in (b"\xff", request(kind="recognize")):
        answer = service.answer(payload)
        assert not answer.ok and answer.error


def test_cloud_settings_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """The EGW_CLOUD__* names and defaults of the issue, and the broker requirement."""
    defaults = load_settings().cloud
    assert (defaults.enabled, defaults.heartbeat_interval, defaults.misses_to_degrade,
            defaults.deadline_ms) == (False, 5.0, 3, 150)
    for name, value in {
        "EGW_BROKER__URL": "mqtt://127.0.0.1:1883",
        "EGW_CLOUD__ENABLED": "true",
        "EGW_CLOUD__REQUEST_TOPIC": "nlu/in",
        "EGW_CLOUD__HEARTBEAT_INTERVAL": "0.5",
        "EGW_CLOUD__MISSES_TO_DEGRADE": "4",
        "EGW_CLOUD__SUCCESSES_TO_RECOVER": "5",
        "EGW_CLOUD__ESCALATE_BELOW": "0.7",
        "EGW_CLOUD__DEADLINE_MS": "90",
    }.items():
        monkeypatch.setenv(name, value)
    cloud = load_settings().cloud
    assert (cloud.enabled, cloud.request_topic, cloud.heartbeat_interval,
            cloud.misses_to_degrade, cloud.successes_to_recover, cloud.escalate_below,
            cloud.deadline_ms) == (True, "nlu/in", 0.5, 4, 5, 0.7, 90)
    monkeypatch.delenv("EGW_BROKER__URL")
    with pytest.raises(ValidationError, match="EGW_BROKER__URL"):
        load_settings()
    with pytest.raises(ValidationError, match="wildcards"):
        CloudConfig(request_topic="cloud/+/requests")


def test_configured_work_is_shed_only_while_degraded() -> None:
    """sheds(work) is true only for work named in shed_when_degraded, and only in DEGRADED."""
    channel = FakeChannel(auto=True)
    config = CloudConfig(enabled=True, shed_when_degraded=["telemetry_uplink"])
    cloud = CloudClient(channel, config, gateway_id="site1-1", response_topic=RESPONSES)
    failover = Failover(misses_to_degrade=3, successes_to_recover=3, now=0.0)
    supervisor = CloudSupervisor(cloud, failover, interval=1.0, site="site1",
                                 publish_status=channel.set_status,
                                 shed_when_degraded=config.shed_when_degraded)
    assert not supervisor.sheds("telemetry_uplink")
    for _ in range(3):
        supervisor.record(False, "heartbeat", "heartbeat_timeout")
    assert supervisor.mode == "degraded"
    assert supervisor.sheds("telemetry_uplink")
    assert not supervisor.sheds("decision_summaries")
