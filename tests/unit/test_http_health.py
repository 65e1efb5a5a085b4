"""Readiness logic and the /healthz, /readyz and /metrics handlers (no sockets)."""

from __future__ import annotations

import json
from dataclasses import replace
from http import HTTPStatus
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.config import Settings
from gateway.http.endpoint import PROMETHEUS_CONTENT_TYPE, HttpEndpoint
from gateway.http.health import readiness
from gateway.http.server import Request
from tests.unit.test_http_metrics import FakeMode, StandIn

REQUEST = Request("GET", "/", "", {})


def ready_gateway(**changes: Any) -> StandIn:
    """Everything the readiness checks look at, in place; no broker, no spool."""
    link = SimpleNamespace(connected=False, counters={})
    source = StandIn(
        mqttsn_address=("127.0.0.1", 1884),
        coap=SimpleNamespace(address=("127.0.0.1", 5683), counters={}, observers=0),
        pipeline=SimpleNamespace(recognizer=object(), counters={},
                                 decider=SimpleNamespace(counters={}, decisions={})),
        bus=SimpleNamespace(link=link, counters={}),
    )
    return replace(source, **changes)


def test_a_bound_gateway_with_models_is_ready() -> None:
    """Both listeners bound and the models loaded: ready, every check true."""
    ready, document = readiness(ready_gateway())  # type: ignore[arg-type]
    assert ready
    assert document["status"] == "ready"
    assert all(document["checks"].values())


@pytest.mark.parametrize(
    ("changes", "failed"),
    [
        ({"mqttsn_address": None}, "mqttsn_listening"),
        ({"coap": None}, "coap_listening"),
        ({"coap": SimpleNamespace(address=None)}, "coap_listening"),
        ({"pipeline": None}, "models_loaded"),
        ({"pipeline": SimpleNamespace(recognizer=None)}, "models_loaded"),
        ({"stopping": True}, "not_stopping"),
    ],
)
def test_each_missing_part_makes_it_not_ready(changes: dict[str, Any], failed: str) -> None:
    """A listener not bound, the models not loaded, or a stop in progress: not ready, and the
    document names the failed check."""
    ready, document = readiness(ready_gateway(**changes))  # type: ignore[arg-type]
    assert not ready
    assert document["status"] == "not_ready"
    assert [name for name, ok in document["checks"].items() if not ok] == [failed]


def test_models_are_not_required_with_the_recognizer_off() -> None:
    """EGW_RECOGNIZER__ENABLED=false: a pipeline without a recogniser is ready."""
    source = ready_gateway(
        settings=Settings(recognizer={"enabled": False}),
        pipeline=SimpleNamespace(recognizer=None),
    )
    assert readiness(source)[0]  # type: ignore[arg-type]


def test_broker_cloud_and_spool_are_reported_not_required() -> None:
    """A configured broker that is down, a degraded cloud and a spool with rows do not make the
    gateway unready; the document reports them."""
    uplink = SimpleNamespace(spool=SimpleNamespace(total_rows=42))
    source = ready_gateway(
        settings=Settings(broker={"url": "mqtt://127.0.0.1:1"}),
        uplink=uplink,
        recognizer_mode=FakeMode("degraded", {}),
    )
    ready, document = readiness(source)  # type: ignore[arg-type]
    assert ready
    assert document["broker"] == {"configured": True, "connected": False}
    assert document["recognizer"] == {"mode": "degraded"}
    assert document["spool"] == {"enabled": True, "rows": 42}


def test_without_broker_or_cloud_the_mode_is_local_and_no_spool() -> None:
    """No broker: no spool (rows null); no cloud: mode local."""
    _, document = readiness(ready_gateway())  # type: ignore[arg-type]
    assert document["broker"] == {"configured": False, "connected": False}
    assert document["recognizer"] == {"mode": "local"}
    assert document["spool"] == {"enabled": False, "rows": None}


async def test_readyz_is_503_until_ready_and_200_after() -> None:
    """The /readyz handler answers 503 with the document while not ready, 200 once ready."""
    source = ready_gateway(coap=None)
    endpoint = HttpEndpoint(source)  # type: ignore[arg-type]
    response = await endpoint.readyz(REQUEST)
    assert response.status is HTTPStatus.SERVICE_UNAVAILABLE
    assert json.loads(response.body)["checks"]["coap_listening"] is False
    source.coap = SimpleNamespace(address=("127.0.0.1", 5683), counters={}, observers=0)
    response = await endpoint.readyz(REQUEST)
    assert response.status is HTTPStatus.OK
    assert json.loads(response.body)["status"] == "ready"


async def test_healthz_answers_while_not_ready() -> None:
    """Liveness does not depend on readiness: 200 {"status":"ok"} on an unassembled gateway."""
    response = await HttpEndpoint(StandIn()).healthz(REQUEST)  # type: ignore[arg-type]
    assert (response.status, json.loads(response.body)) == (HTTPStatus.OK, {"status": "ok"})


async def test_metrics_is_prometheus_text() -> None:
    """/metrics answers the text exposition format with its content type."""
    response = await HttpEndpoint(ready_gateway()).metrics(REQUEST)  # type: ignore[arg-type]
    assert response.status is HTTPStatus.OK
    assert response.content_type == PROMETHEUS_CONTENT_TYPE
    assert b"# TYPE egw_gateway_ready gauge\negw_gateway_ready 1.0\n" in response.body
