"""The gateway's Prometheus metrics, computed at scrape time from the counters the parts keep.

`GatewayCollector` is a custom collector for a per-gateway `CollectorRegistry`: nothing is
registered globally and nothing is counted per message for metrics' sake. Metric names carry
their unit; every family is listed in `docs/metrics.md`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector

from gateway.http.coapstats import coap_traffic
from gateway.http.health import LOCAL_MODE, readiness
from gateway.http.source import BatchedRecognizer, GatewaySource
from gateway.http.spoolstats import SpoolStatsCache
from gateway.mqttsn.constants import MsgType
from gateway.mqttsn.session import ClientState
from gateway.recognizer.microbatch import Histogram
from gateway.spool import CLASSES

__all__ = ["FAILOVER_MODES", "GatewayCollector"]

FAILOVER_MODES: Final = ("online", "degraded")
_MQTTSN_TYPES: Final = tuple(t.name for t in MsgType)

# The broker link's counters that are a message dropped or refused.
_BRIDGE_DROPS: Final = (
    "dropped_disconnected_qos0", "dropped_backpressure_qos0", "refused_pending_full",
    "refused_by_broker",
    "failed_on_stop", "inbound_echo_dropped", "inbound_outside_mountpoint",
)

Family = CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily | InfoMetricFamily


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _strip(counters: Mapping[str, int], prefix: str) -> Iterator[tuple[str, int]]:
    for key, value in counters.items():
        if key.startswith(prefix):
            yield key[len(prefix):], value


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(histogram.bounds, histogram.counts, strict=False):
        running += count
        out.append((repr(float(bound)), running))
    out.append(("+Inf", running + histogram.counts[-1]))
    return out


def _model_name(recognizer: BatchedRecognizer) -> str:
    return str(recognizer.model.manifest.get("name") or type(recognizer).__name__)


class GatewayCollector(Collector):
    """Reads `source` (the Gateway) on every scrape; `spool` holds the last spool snapshot."""

    def __init__(
        self,
        source: GatewaySource,
        spool: SpoolStatsCache,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._spool = spool
        self._clock = clock
        self._started = clock()

    def collect(self) -> Iterator[Family]:
        yield from self._traffic()
        yield from self._mqttsn()
        yield from self._coap()
        yield self._drops()
        yield from self._recognizers()
        yield self._decisions()
        yield from self._broker()
        yield from self._spool_families()
        ready = _gauge("egw_gateway_ready", "1 when /readyz answers 200.")
        ready.add_metric([], 1.0 if readiness(self._source)[0] else 0.0)
        yield ready

    # -- front-ends ----------------------------------------------------------------------------

    def _traffic(self) -> Iterator[Family]:
        source = self._source
        datagrams_in = _counter(
            "egw_datagrams_received", "UDP datagrams received.", ["protocol"]
        )
        datagrams_out = _counter("egw_datagrams_sent", "UDP datagrams sent.", ["protocol"])
        messages_in = _counter(
            "egw_messages_received",
            "Messages received by protocol and type (MQTT-SN: message type; CoAP: how the "
            "datagram was handled; MQTT: from the broker).",
            ["protocol", "type"],
        )
        messages_out = _counter(
            "egw_messages_sent", "Messages sent by protocol and type.", ["protocol", "type"]
        )
        core = source.core
        if core is not None:
            counters = core.counters
            datagrams_in.add_metric(["mqttsn"], counters["rx_datagrams"])
            datagrams_out.add_metric(
                ["mqttsn"], sum(counters[f"tx_{name}"] for name in _MQTTSN_TYPES)
            )
            for name in _MQTTSN_TYPES:
                messages_in.add_metric(["mqttsn", name], counters[f"rx_{name}"])
                messages_out.add_metric(["mqttsn", name], counters[f"tx_{name}"])
        coap = source.coap
        if coap is not None:
            traffic = coap_traffic(coap.counters)
            datagrams_in.add_metric(["coap"], sum(traffic.received.values()))
            datagrams_out.add_metric(["coap"], sum(traffic.sent.values()))
            for kind, value in traffic.received.items():
                messages_in.add_metric(["coap", kind], value)
            for kind, value in traffic.sent.items():
                messages_out.add_metric(["coap", kind], value)
        bus = source.bus
        if bus is not None and source.settings.broker.url:
            link = bus.link.counters
            messages_in.add_metric(["mqtt", "PUBLISH"], link.get("inbound", 0))
            messages_out.add_metric(["mqtt", "PUBLISH"], link.get("published", 0))
        yield from (datagrams_in, datagrams_out, messages_in, messages_out)

    def _mqttsn(self) -> Iterator[Family]:
        core = self._source.core
        clients = _gauge("egw_mqttsn_clients", "MQTT-SN client sessions by state.", ["state"])
        lost = _counter(
            "egw_mqttsn_clients_lost",
            "MQTT-SN clients declared lost or replaced, by reason.",
            ["reason"],
        )
        retries = _counter(
            "egw_mqttsn_retransmissions", "Gateway-to-client messages re-sent after Tretry."
        )
        if core is not None:
            states = core.client_states()
            for state in ClientState:
                clients.add_metric([state.value], states.get(state.value, 0))
            for reason, value in _strip(core.counters, "client_"):
                if reason.startswith("lost_") or reason == "replaced":
                    lost.add_metric([reason], value)
            retries.add_metric([], core.counters["tx_retries"])
        yield from (clients, lost, retries)

    def _coap(self) -> Iterator[Family]:
        coap = self._source.coap
        requests = _counter(
            "egw_coap_requests", "CoAP requests answered, by response code.", ["code"]
        )
        observers = _gauge("egw_coap_observers", "Active CoAP observations.")
        if coap is not None:
            for code, value in coap_traffic(coap.counters).requests.items():
                requests.add_metric([code], value)
            observers.add_metric([], coap.observers)
        yield from (requests, observers)

    def _drops(self) -> CounterMetricFamily:
        source = self._source
        drops = _counter(
            "egw_dropped_messages",
            "Messages dropped or refused, by component and reason.",
            ["component", "reason"],
        )
        found: Counter[tuple[str, str]] = Counter()
        if source.core is not None:
            for reason, value in _strip(source.core.counters, "drop_"):
                found["mqttsn", reason] += value
        if source.router is not None:
            for key, value in source.router.counters.items():
                found["mqttsn", key] += value
        if source.coap is not None:
            for reason, value in _strip(source.coap.counters, "drop_"):
                found["coap", reason] += value
        if source.bus is not None:
            link = source.bus.link.counters
            for key in _BRIDGE_DROPS:
                found["bridge", key] += link.get(key, 0)
            for key, value in source.bus.counters.items():
                found["bus", key] += value
        if source.pipeline is not None:
            for key, value in source.pipeline.counters.items():
                found["pipeline", key] += value
            for key, value in source.pipeline.decider.counters.items():
                found["pipeline", key] += value
        if source.uplink is not None:
            for key in ("refused_write_backlog", "delete_failed", "refused_by_broker"):
                found["spool", key] += source.uplink.spool_counters.get(key, 0)
        snapshot = self._spool.snapshot
        if snapshot is not None:
            for key, value in snapshot.counters.items():
                if key.startswith(("refused_", "dropped_", "expired_")):
                    found["spool", key] += value
        for (component, reason), value in sorted(found.items()):
            drops.add_metric([component, reason], value)
        return drops

    # -- recogniser and decisions --------------------------------------------------------------

    def _recognizers(self) -> Iterator[Family]:
        info = InfoMetricFamily(
            "egw_model", "Loaded models: manifest name, version and sha256.",
            labels=["model", "version", "sha256"],
        )
        requests = _counter(
            "egw_recognizer_requests", "Items submitted to a model's batcher.", ["model"]
        )
        overloads = _counter(
            "egw_recognizer_overloads", "Items refused because the batch queue was full.",
            ["model"],
        )
        failures = _counter(
            "egw_recognizer_failed_batches", "Batches whose predict call failed.", ["model"]
        )
        queued = _gauge(
            "egw_recognizer_queue_items", "Items waiting for a batch.", ["model"]
        )
        offloaded = _counter(
            "egw_recognizer_worker_batches",
            "Batches run by the recogniser's worker process (the rest ran in a thread).",
            ["model"],
        )
        worker_up = _gauge(
            "egw_recognizer_worker_up", "1 while the worker process is ready.", ["model"]
        )
        worker_exits = _counter(
            "egw_recognizer_worker_exits",
            "Worker processes that exited or were refused (each is restarted).", ["model"],
        )
        seconds = HistogramMetricFamily(
            "egw_recognizer_batch_duration_seconds",
            "Seconds per batch predict call (thread or worker-process hand-off included).",
            labels=["model"],
        )
        sizes = HistogramMetricFamily(
            "egw_recognizer_batch_size_items", "Items per batch.", labels=["model"]
        )
        for recognizer in self._source.recognizers:
            name = _model_name(recognizer)
            model = recognizer.model
            info.add_metric([name, model.version, model.sha256], {})
            stats = recognizer.batcher.stats
            requests.add_metric([name], stats.submitted)
            overloads.add_metric([name], stats.overflows)
            failures.add_metric([name], stats.failures)
            queued.add_metric([name], recognizer.batcher.queued)
            offloaded.add_metric([name], stats.offloaded)
            worker = recognizer.worker
            if worker is not None:
                worker_up.add_metric([name], 1.0 if worker.ready else 0.0)
                worker_exits.add_metric([name], worker.counters["exits"])
            seconds.add_metric(
                [name], _buckets(stats.batch_seconds), sum_value=stats.batch_seconds.total
            )
            sizes.add_metric(
                [name], _buckets(stats.batch_sizes), sum_value=stats.batch_sizes.total
            )
        yield from (info, requests, overloads, failures, queued, seconds, sizes)
        yield from (offloaded, worker_up, worker_exits)
        yield from self._mode()

    def _mode(self) -> Iterator[Family]:
        mode = _gauge(
            "egw_recognizer_mode",
            'Recogniser mode: 1 for the current one ("local" when no cloud is configured).',
            ["mode"],
        )
        seconds = _counter(
            "egw_recognizer_mode_seconds", "Seconds spent in each recogniser mode.", ["mode"]
        )
        source = self._source.recognizer_mode
        if source is None:
            mode.add_metric([LOCAL_MODE], 1.0)
            seconds.add_metric([LOCAL_MODE], self._clock() - self._started)
        else:
            current = source.mode
            spent = source.mode_seconds()
            for name in sorted({*FAILOVER_MODES, current, *spent}):
                mode.add_metric([name], 1.0 if name == current else 0.0)
                seconds.add_metric([name], spent.get(name, 0.0))
        yield from (mode, seconds)

    def _decisions(self) -> CounterMetricFamily:
        decisions = _counter(
            "egw_decisions", "Decisions issued, by intent and recogniser.",
            ["intent", "recognizer"],
        )
        pipeline = self._source.pipeline
        if pipeline is not None:
            for (intent, recognizer), value in sorted(pipeline.decider.decisions.items()):
                decisions.add_metric([intent, recognizer], value)
        return decisions

    # -- broker and spool ----------------------------------------------------------------------

    def _broker(self) -> Iterator[Family]:
        source = self._source
        connected = _gauge(
            "egw_broker_connected", "1 while the broker link is connected (0 with no broker)."
        )
        connects = _counter("egw_broker_connects", "Successful broker connections.")
        failures = _counter("egw_broker_connect_failures", "Failed broker connection attempts.")
        bus = source.bus
        connected.add_metric([], 1.0 if bus is not None and bus.link.connected else 0.0)
        if bus is not None:
            counters = bus.link.counters
            connects.add_metric([], counters.get("connects", 0))
            failures.add_metric([], counters.get("connect_failures", 0))
        yield from (connected, connects, failures)

    def _spool_families(self) -> Iterator[Family]:
        rows = _gauge("egw_spool_rows", "Messages held in the spool, by class.", ["class"])
        size = _gauge(
            "egw_spool_bytes", "Accounted bytes held in the spool, by class.", ["class"]
        )
        age = _gauge(
            "egw_spool_oldest_age_seconds",
            "Age of the oldest spooled message, by class (0 when the class is empty).",
            ["class"],
        )
        file_bytes = _gauge("egw_spool_file_bytes", "Spool database and WAL size on disk.")
        appended = _counter("egw_spool_appended", "Messages written to the spool.", ["class"])
        replayed = _counter(
            "egw_spool_replayed", "Spooled messages re-sent to the broker after an outage."
        )
        rate = _gauge(
            "egw_spool_replay_rate_limit_messages_per_second",
            "Configured replay pace (EGW_SPOOL__REPLAY_RATE).",
        )
        uplink = self._source.uplink
        snapshot = self._spool.snapshot
        if uplink is not None:
            replayed.add_metric([], uplink.spool_counters.get("replayed", 0))
            rate.add_metric([], self._source.settings.spool.replay_rate)
        if snapshot is not None:
            for cls in CLASSES:
                stats = snapshot.classes.get(cls)
                if stats is None:
                    continue
                rows.add_metric([cls], stats.rows)
                size.add_metric([cls], stats.bytes)
                age.add_metric([cls], stats.oldest_age_s or 0.0)
                appended.add_metric([cls], snapshot.counters.get(f"appended_{cls}", 0))
            file_bytes.add_metric([], snapshot.file_bytes)
        yield from (rows, size, age, file_bytes, appended, replayed, rate)

