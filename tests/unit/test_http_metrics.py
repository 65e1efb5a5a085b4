"""The metrics collector: what each family reports, read back from the Prometheus text output
of a per-gateway registry, with real parts (MQTT-SN core, decider, micro-batcher, spool) behind
a stand-in gateway."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.bridge.null_link import NullLink
from gateway.config import Settings
from gateway.delivery.bus import MessageBus
from gateway.http.endpoint import HttpEndpoint
from gateway.http.metrics import GatewayCollector
from gateway.http.spoolstats import SpoolStatsCache
from gateway.mqttsn.codec import encode
from gateway.mqttsn.constants import MsgType
from gateway.mqttsn.core import GatewayCore
from gateway.mqttsn.packets import Connect, PingReq
from gateway.pipeline.decide import Decider
from gateway.recognizer.microbatch import MicroBatcher
from gateway.rules.engine import RuleEngine
from gateway.rules.loader import load_rules
from gateway.spool import Spool
from schemas import Intent
from schemas.config import MqttSnConfig

CLIENT = ("192.0.2.7", 4000)


@dataclass
class FakeMode:
    mode: str
    seconds: dict[str, float]

    def mode_seconds(self) -> Mapping[str, float]:
        return self.seconds


@dataclass
class StandIn:
    """The attributes of `GatewaySource`; every part absent unless a test puts one in."""

    settings: Settings = field(default_factory=Settings)
    stopping: bool = False
    mqttsn_address: Any = None
    core: Any = None
    router: Any = None
    bus: Any = None
    uplink: Any = None
    pipeline: Any = None
    coap: Any = None
    recognizers: list[Any] = field(default_factory=list)
    recognizer_mode: Any = None


def parse_samples(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text page: 'name{label="value",...}' -> value (labels
    sorted by name)."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def scrape(source: StandIn, spool: SpoolStatsCache | None = None) -> dict[str, float]:
    """One scrape of a fresh endpoint on `source` (with `spool`'s snapshot, if given)."""
    endpoint = HttpEndpoint(source)  # type: ignore[arg-type]
    if spool is not None:
        endpoint.spool.snapshot = spool.snapshot
    return parse_samples(generate_latest(endpoint.registry).decode())


def make_bus() -> MessageBus:
    bus = MessageBus()
    bus.link = NullLink(Settings(), bus.on_broker_message)
    return bus


def test_an_unassembled_gateway_exports_every_family_without_failing() -> None:
    """Before the parts exist, a scrape works and says: not ready, recogniser mode local."""
    samples = scrape(StandIn())
    assert samples["egw_gateway_ready{}"] == 0
    assert samples['egw_recognizer_mode{mode="local"}'] == 1
    assert samples["egw_broker_connected{}"] == 0


def test_mqttsn_datagrams_messages_clients_and_drops() -> None:
    """CONNECT, PINGREQ and one malformed datagram: 3 in, CONNACK + PINGRESP out, one active
    client, the malformed one dropped by reason."""
    core = GatewayCore(MqttSnConfig(), now=0.0)
    core.receive_datagram(encode(Connect("c1", 60)), CLIENT, 0.0)
    core.receive_datagram(encode(PingReq()), CLIENT, 1.0)
    core.receive_datagram(b"\x02", CLIENT, 1.0)
    samples = scrape(StandIn(core=core))
    assert samples['egw_datagrams_received_total{protocol="mqttsn"}'] == 3
    assert samples['egw_datagrams_sent_total{protocol="mqttsn"}'] == 2
    assert samples['egw_messages_received_total{protocol="mqttsn",type="CONNECT"}'] == 1
    assert samples['egw_messages_received_total{protocol="mqttsn",type="PINGREQ"}'] == 1
    assert samples['egw_messages_sent_total{protocol="mqttsn",type="CONNACK"}'] == 1
    assert samples['egw_messages_sent_total{protocol="mqttsn",type="PINGRESP"}'] == 1
    assert samples['egw_mqttsn_clients{state="active"}'] == 1
    assert samples['egw_mqttsn_clients{state="asleep"}'] == 0
    drops = {k: v for k, v in samples.items() if k.startswith("egw_dropped_messages_total")}
    assert sum(drops.values()) == 1
    [(key, _)] = drops.items()
    assert 'component="mqttsn"' in key and 'reason="malformed_' in key
    assert len([k for k in samples if k.startswith("egw_messages_received_total")]) == len(
        MsgType
    )


def test_lost_clients_are_counted_by_reason() -> None:
    """A persistent-session client that misses its keep-alive is counted as lost_keepalive
    and stays in state lost."""
    core = GatewayCore(MqttSnConfig(), now=0.0)
    core.receive_datagram(encode(Connect("c1", 10, clean_session=False)), CLIENT, 0.0)
    core.handle_timer(100.0)
    samples = scrape(StandIn(core=core))
    assert samples['egw_mqttsn_clients_lost_total{reason="lost_keepalive"}'] == 1
    assert samples['egw_mqttsn_clients{state="lost"}'] == 1


async def test_decisions_are_counted_by_intent_and_recognizer() -> None:
    """Two decisions from the local model and one from the sensor rules, by label pair."""
    bus = make_bus()
    decider = Decider(RuleEngine(load_rules()), bus, "site1-1")
    lights_off = Intent(name="iot_hue_lightoff", confidence=0.9, slots={"house_place": "kitchen"})
    decider.decide("p1", lights_off, "local", "m1", 1.0)
    decider.decide("p1", lights_off, "local", "m1", 2.0)
    decider.decide("p2", Intent(name="other", confidence=0.2), "cloud", "c1", 3.0)
    pipeline = SimpleNamespace(counters={}, decider=decider, recognizer=None)
    samples = scrape(StandIn(pipeline=pipeline, bus=bus))
    assert samples['egw_decisions_total{intent="iot_hue_lightoff",recognizer="local"}'] == 2
    assert samples['egw_decisions_total{intent="other",recognizer="cloud"}'] == 1


async def test_recognizer_histograms_are_cumulative_with_count_and_sum() -> None:
    """Batches of 1, 3 and 3 items: the size histogram's buckets are cumulative and its count
    and sum are 3 batches and 7 items; the latency histogram counts the same 3 batches."""

    def predict(items: Any) -> list[int]:
        time.sleep(0.002)
        return [len(item) for item in items]

    def offload(items: list[str]) -> asyncio.Future[list[int]] | None:
        """A stand-in worker process that takes the batch starting with "b" only."""
        if items[0] != "b":
            return None
        answer: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        answer.set_result([len(item) for item in items])
        return answer

    batcher: MicroBatcher[str, int] = MicroBatcher(
        predict, window_ms=20, max_batch=3, offload=offload
    )
    model = SimpleNamespace(version="v1", sha256="ab" * 32, manifest={"name": "intent_text"})
    worker = SimpleNamespace(ready=True, counters=Counter(exits=2))
    recognizer = SimpleNamespace(model=model, batcher=batcher, worker=worker)
    async with asyncio.TaskGroup() as tg:
        service = tg.create_task(batcher.run())
        await batcher.submit("a")
        await asyncio.gather(*(batcher.submit(t) for t in ("b", "cc", "ddd", "e", "f", "g")))
        service.cancel()
    samples = scrape(StandIn(recognizers=[recognizer]))
    size = 'egw_recognizer_batch_size_items_bucket{le="%s",model="intent_text"}'
    assert samples[size % "1.0"] == 1
    assert samples[size % "2.0"] == 1
    assert samples[size % "4.0"] == 3
    assert samples[size % "+Inf"] == 3
    assert samples['egw_recognizer_batch_size_items_count{model="intent_text"}'] == 3
    assert samples['egw_recognizer_batch_size_items_sum{model="intent_text"}'] == 7
    latency = 'egw_recognizer_batch_duration_seconds_%s{model="intent_text"}'
    assert samples[latency % "count"] == 3
    assert samples[latency % "sum"] >= 2 * 0.002  # the two batches predict ran
    assert samples['egw_recognizer_requests_total{model="intent_text"}'] == 7
    assert samples['egw_recognizer_worker_batches_total{model="intent_text"}'] == 1
    assert samples['egw_recognizer_worker_up{model="intent_text"}'] == 1
    assert samples['egw_recognizer_worker_exits_total{model="intent_text"}'] == 2
    assert samples[
        f'egw_model_info{{model="intent_text",sha256="{"ab" * 32}",version="v1"}}'
    ] == 1


@pytest.mark.parametrize("mode", ["online", "degraded"])
def test_failover_mode_is_one_hot_with_seconds_per_mode(mode: str) -> None:
    """With a failover state, the current mode is 1, the other 0, seconds are passed through."""
    source = StandIn(recognizer_mode=FakeMode(mode, {"online": 12.5, "degraded": 3.0}))
    samples = scrape(source)
    other = "degraded" if mode == "online" else "online"
    assert samples[f'egw_recognizer_mode{{mode="{mode}"}}'] == 1
    assert samples[f'egw_recognizer_mode{{mode="{other}"}}'] == 0
    assert 'egw_recognizer_mode{mode="local"}' not in samples
    assert samples['egw_recognizer_mode_seconds_total{mode="online"}'] == 12.5
    assert samples['egw_recognizer_mode_seconds_total{mode="degraded"}'] == 3.0


def test_local_mode_seconds_grow_from_the_collector_start() -> None:
    """Without a cloud, seconds in mode "local" are the seconds since the collector started."""
    now = [100.0]
    collector = GatewayCollector(StandIn(), SpoolStatsCache(), clock=lambda: now[0])  # type: ignore[arg-type]
    now[0] = 142.0
    [family] = [f for f in collector.collect() if f.name == "egw_recognizer_mode_seconds"]
    assert [(s.labels, s.value) for s in family.samples] == [({"mode": "local"}, 42.0)]


def test_broker_link_state_and_bridge_drops() -> None:
    """Broker connected and the link's drop counters come from the link."""
    counters = {"connects": 2, "connect_failures": 5, "published": 9, "inbound": 4,
                "dropped_disconnected_qos0": 3}
    bus = SimpleNamespace(link=SimpleNamespace(connected=True, counters=counters), counters={})
    source = StandIn(bus=bus, settings=Settings(broker={"url": "mqtt://127.0.0.1:1"}))
    samples = scrape(source)
    assert samples["egw_broker_connected{}"] == 1
    assert samples["egw_broker_connects_total{}"] == 2
    assert samples["egw_broker_connect_failures_total{}"] == 5
    assert samples['egw_messages_sent_total{protocol="mqtt",type="PUBLISH"}'] == 9
    assert samples['egw_messages_received_total{protocol="mqtt",type="PUBLISH"}'] == 4
    key = 'egw_dropped_messages_total{component="bridge",reason="dropped_disconnected_qos0"}'
    assert samples[key] == 3


async def test_spool_rows_bytes_age_and_replays(tmp_path: Path) -> None:
    """Rows, accounted bytes and oldest age per class come from the spool (read in a thread);
    appended per class, replayed and the configured replay rate are exported too."""
    spool = Spool(tmp_path / "spool.sqlite3")
    try:
        now = time.time()
        spool.append("telemetry", "devices/d1/telemetry", b"x" * 100, now=now - 30)
        spool.append("telemetry", "devices/d1/telemetry", b"y" * 100, now=now - 10)
        spool.append("decision", "decisions/d1", b"z", now=now - 5)
        uplink = SimpleNamespace(spool=spool, spool_counters={"replayed": 6})
        source = StandIn(uplink=uplink, settings=Settings(spool={"replay_rate": 250}))
        cache = SpoolStatsCache()
        await cache.refresh(spool)
        samples = scrape(source, cache)
    finally:
        spool.close()
    assert samples['egw_spool_rows{class="telemetry"}'] == 2
    assert samples['egw_spool_rows{class="decision"}'] == 1
    assert samples['egw_spool_rows{class="command"}'] == 0
    assert samples['egw_spool_bytes{class="telemetry"}'] == 2 * (100 + 20 + 64)
    assert 29 < samples['egw_spool_oldest_age_seconds{class="telemetry"}'] < 60
    assert samples['egw_spool_oldest_age_seconds{class="command"}'] == 0
    assert samples['egw_spool_appended_total{class="telemetry"}'] == 2
    assert samples["egw_spool_replayed_total{}"] == 6
    assert samples["egw_spool_replay_rate_limit_messages_per_second{}"] == 250
    assert samples["egw_spool_file_bytes{}"] > 0


async def test_spool_reads_are_cached_for_the_ttl(tmp_path: Path) -> None:
    """A refresh within the TTL does not query the spool again; one after it does."""
    spool = Spool(tmp_path / "spool.sqlite3")
    now = [0.0]
    cache = SpoolStatsCache(ttl=1.0, clock=lambda: now[0])
    try:
        await cache.refresh(spool)
        assert cache.snapshot is not None and cache.snapshot.classes["telemetry"].rows == 0
        spool.append("telemetry", "devices/d1/telemetry", b"x")
        now[0] = 0.5
        await cache.refresh(spool)
        assert cache.snapshot.classes["telemetry"].rows == 0
        now[0] = 1.5
        await cache.refresh(spool)
        assert cache.snapshot.classes["telemetry"].rows == 1
        await cache.refresh(None)
        assert cache.snapshot is None
    finally:
        spool.close()


def test_each_gateway_has_its_own_registry() -> None:
    """Two endpoints do not share metrics, and nothing lands in the global default registry."""
    core = GatewayCore(MqttSnConfig(), now=0.0)
    core.receive_datagram(encode(PingReq()), CLIENT, 0.0)
    first = scrape(StandIn(core=core))
    second = scrape(StandIn())
    assert first['egw_datagrams_received_total{protocol="mqttsn"}'] == 1
    assert 'egw_datagrams_received_total{protocol="mqttsn"}' not in second
    assert b"egw_" not in generate_latest(REGISTRY)
