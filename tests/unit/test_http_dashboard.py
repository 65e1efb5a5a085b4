"""The Grafana dashboard and docs/metrics.md name only metrics the gateway exports, and the docs
name all of them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import ProcessCollector
from prometheus_client.registry import Collector

from gateway.http.metrics import GatewayCollector
from gateway.http.spoolstats import SpoolStatsCache
from tests.unit.test_http_metrics import StandIn

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana-dashboard.json"
DOCS = ROOT / "docs" / "metrics.md"
METRIC = re.compile(r"\b((?:egw|process)_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "info": ("_info",),
            "histogram": ("_bucket", "_count", "_sum")}


def sample_names(collector: Collector) -> set[str]:
    return {
        family.name + suffix
        for family in collector.collect()
        for suffix in SUFFIXES[family.type]
    }


def exported() -> set[str]:
    """Every sample name /metrics can carry (families exist even before the parts do)."""
    gateway = GatewayCollector(StandIn(), SpoolStatsCache())  # type: ignore[arg-type]
    return sample_names(gateway) | sample_names(ProcessCollector(registry=None))


def expressions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def test_every_dashboard_query_uses_exported_metrics() -> None:
    """Each expr in the dashboard names at least one metric, and every name it uses exists."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = list(expressions(dashboard))
    assert len(exprs) >= 20
    names = exported()
    for expr in exprs:
        used = set(METRIC.findall(expr))
        assert used, expr
        assert used <= names, (expr, used - names)


def test_the_dashboard_shows_every_gateway_metric_family() -> None:
    """No egw_ family is left off the dashboard."""
    text = DASHBOARD.read_text()
    families = {
        family.name for family in GatewayCollector(StandIn(), SpoolStatsCache()).collect()  # type: ignore[arg-type]
    }
    assert {name for name in families if name not in text} == set()


def test_docs_describe_exactly_the_exported_metrics() -> None:
    """docs/metrics.md lists every egw_ sample name and none that does not exist."""
    documented = set(METRIC.findall(DOCS.read_text()))
    names = exported()
    gateway_names = {name for name in names if name.startswith("egw_")}
    # A histogram is documented by its family name; its samples are implied.
    histograms = {"egw_recognizer_batch_duration_seconds", "egw_recognizer_batch_size_items"}
    expected = {
        name for name in gateway_names
        if not name.endswith(("_bucket", "_count", "_sum"))
    } | histograms
    assert expected - documented == set()
    assert documented - names - histograms == set()
