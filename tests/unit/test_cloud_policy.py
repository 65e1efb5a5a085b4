"""The edge-first policy: local when sure, cloud when unsure and ONLINE, local on any failure."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import Overloaded
from gateway.recognizer.cloud import CloudUnavailable
from gateway.recognizer.failover import Probe
from gateway.recognizer.policy import SAFE_ACTION, EdgeFirstPolicy, Recognition
from schemas import Intent

SURE = Intent(name="iot_hue_lightoff", confidence=0.95, slots={"house_place": "kitchen"})
UNSURE = Intent(name="iot_hue_lightdim", confidence=0.41)
OTHER_SURE = Intent(name="other", confidence=0.97)
CLOUD = Intent(name="alarm_set", confidence=0.88, slots={"time": "seven am"})


class FakeLocal:
    name = "local"
    version = "local-1"

    def __init__(self, intent: Intent, overloaded: bool = False) -> None:
        self.intent = intent
        self.overloaded = overloaded

    def submit(self, text: str) -> asyncio.Future[Intent]:
        if self.overloaded:
            raise Overloaded("queue full", 1)
        future: asyncio.Future[Intent] = asyncio.get_running_loop().create_future()
        future.set_result(self.intent)
        return future


class FakeCloud:
    name = "cloud"
    version = "cloud-7"

    def __init__(self, refuse: CloudUnavailable | None = None) -> None:
        self.refuse = refuse
        self.asked: list[str] = []
        self.futures: list[asyncio.Future[Intent]] = []

    def submit(self, text: str) -> asyncio.Future[Intent]:
        self.asked.append(text)
        if self.refuse is not None:
            raise self.refuse
        future: asyncio.Future[Intent] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


class FakeHealth:
    def __init__(self, online: bool = True) -> None:
        self.online = online
        self.records: list[tuple[bool, Probe, str]] = []

    def record(self, ok: bool, probe: Probe, reason: str = "") -> None:
        self.records.append((ok, probe, reason))


def policy(
    local: Intent,
    cloud: FakeCloud | None = None,
    health: FakeHealth | None = None,
    **options: object,
) -> EdgeFirstPolicy:
    cloud = cloud or FakeCloud()
    health = health or FakeHealth()
    options.setdefault("escalate_below", 0.6)
    options.setdefault("deadline_ms", 50)
    return EdgeFirstPolicy(FakeLocal(local), cloud, health, **options)  # type: ignore[arg-type]


async def settle(future: asyncio.Future[Recognition]) -> Recognition:
    async with asyncio.timeout(1.0):
        return await future


async def test_confident_local_answer_decides_without_the_cloud() -> None:
    """Confidence at or above escalate_below: the local answer, the cloud never asked."""
    cloud = FakeCloud()
    result = await settle(policy(SURE, cloud).submit("turn off the kitchen lights"))
    assert result == Recognition(SURE, "local", "local-1")
    assert cloud.asked == []


async def test_threshold_is_inclusive() -> None:
    """A confidence exactly at escalate_below is not escalated."""
    cloud = FakeCloud()
    at = Intent(name="iot_wemo_on", confidence=0.6)
    assert (await settle(policy(at, cloud).submit("plug on"))).recognizer == "local"
    assert cloud.asked == []


async def test_unsure_answer_escalates_and_the_cloud_decides() -> None:
    """Below the threshold the text goes to the cloud; its answer decides, labelled cloud."""
    cloud, health = FakeCloud(), FakeHealth()
    pending = policy(UNSURE, cloud, health).submit("wake me at seven")
    await asyncio.sleep(0)
    assert cloud.asked == ["wake me at seven"]
    cloud.futures[0].set_result(CLOUD)
    assert await settle(pending) == Recognition(CLOUD, "cloud", "cloud-7")
    assert health.records == [(True, "request", "")]


async def test_deadline_falls_back_to_the_local_answer() -> None:
    """No cloud answer within deadline_ms: the local answer decides; a timeout miss is
    recorded and the cloud request is cancelled (forgotten)."""
    cloud, health = FakeCloud(), FakeHealth()
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await settle(policy(UNSURE, cloud, health, deadline_ms=40).submit("dim a bit"))
    elapsed = loop.time() - started
    assert result == Recognition(UNSURE, "local", "local-1")
    assert 0.035 <= elapsed < 0.5
    assert health.records == [(False, "request", "timeout")]
    assert cloud.futures[0].cancelled()


async def test_unsendable_request_is_a_miss_and_falls_back_at_once() -> None:
    """Broker down (request unsent): the local answer at once, and a miss for the failover."""
    cloud, health = FakeCloud(refuse=CloudUnavailable("unsent")), FakeHealth()
    result = await settle(policy(UNSURE, cloud, health, deadline_ms=10_000).submit("dim"))
    assert result.recognizer == "local"
    assert health.records == [(False, "request", "unsent")]


async def test_cloud_error_falls_back_but_is_not_a_miss() -> None:
    """A refusal from a reachable cloud falls back to local without counting as a miss."""
    cloud, health = FakeCloud(), FakeHealth()
    active = policy(UNSURE, cloud, health)
    pending = active.submit("dim")
    await asyncio.sleep(0)
    cloud.futures[0].set_exception(CloudUnavailable("error", "model failed"))
    assert (await settle(pending)).recognizer == "local"
    assert health.records == []
    assert active.counters["cloud_error"] == 1


async def test_degraded_mode_decides_locally_without_asking() -> None:
    """While DEGRADED even unsure answers stay local; the cloud is not asked."""
    cloud, health = FakeCloud(), FakeHealth(online=False)
    active = policy(UNSURE, cloud, health)
    assert (await settle(active.submit("dim"))) == Recognition(UNSURE, "local", "local-1")
    assert cloud.asked == []
    assert active.counters["local_degraded"] == 1


@pytest.mark.parametrize("escalate_other", [True, False])
async def test_confident_other_escalates_only_when_configured(escalate_other: bool) -> None:
    """A confident local 'other' goes to the cloud only with escalate_other (cloud-only
    intents live there)."""
    cloud = FakeCloud()
    pending = policy(OTHER_SURE, cloud, escalate_other=escalate_other).submit("set an alarm")
    await asyncio.sleep(0)
    assert cloud.asked == (["set an alarm"] if escalate_other else [])
    if escalate_other:
        cloud.futures[0].set_result(CLOUD)
    expected = "cloud" if escalate_other else "local"
    assert (await settle(pending)).recognizer == expected


async def test_safe_intent_replaces_a_failed_escalation() -> None:
    """With safe_intent set, a failed escalation decides the safe intent, labelled so."""
    cloud = FakeCloud(refuse=CloudUnavailable("unsent"))
    result = await settle(policy(UNSURE, cloud, safe_intent="other").submit("dim"))
    assert result.recognizer == SAFE_ACTION
    assert result.intent.name == "other" and result.intent.slots == {}


async def test_without_a_cloud_the_local_answer_always_decides() -> None:
    """The local-only policy (cloud disabled) never escalates, however unsure."""
    local_only = EdgeFirstPolicy(FakeLocal(UNSURE), escalate_below=1.0, escalate_other=True)
    assert (await settle(local_only.submit("dim"))).recognizer == "local"


async def test_local_overload_is_raised_at_once() -> None:
    """A full local queue raises Overloaded synchronously, like the local recogniser."""
    overloaded = EdgeFirstPolicy(FakeLocal(SURE, overloaded=True))
    with pytest.raises(Overloaded):
        overloaded.submit("anything")


def test_cloud_and_health_come_together() -> None:
    """A cloud without its failover health (or the reverse) is a wiring error."""
    with pytest.raises(ValueError, match="health"):
        EdgeFirstPolicy(FakeLocal(SURE), FakeCloud())


async def test_cancellation_before_the_deadline_is_not_a_miss() -> None:
    """A request cancelled early (the client closing at shutdown) falls back without
    counting as a miss: stopping the gateway must not publish a spurious DEGRADED."""
    cloud, health = FakeCloud(), FakeHealth()
    active = policy(UNSURE, cloud, health, deadline_ms=10_000)
    pending = active.submit("dim")
    await asyncio.sleep(0)
    cloud.futures[0].cancel()
    assert (await settle(pending)).recognizer == "local"
    assert health.records == []
    assert active.counters["cloud_cancelled"] == 1
