"""The HTTP endpoint of one gateway: /metrics, /healthz and /readyz on its own registry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from gateway.http.health import LIVE, readiness
from gateway.http.metrics import GatewayCollector
from gateway.http.server import HttpServer, Request, Response, json_response
from gateway.http.source import GatewaySource
from gateway.http.spoolstats import SpoolStatsCache
from schemas.http_config import HttpConfig

__all__ = ["PROMETHEUS_CONTENT_TYPE", "HttpEndpoint", "run_http_endpoint"]

log = structlog.get_logger(__name__)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HttpEndpoint:
    """The routes and the metrics registry of one gateway (no global registry is touched)."""

    def __init__(self, source: GatewaySource) -> None:
        self._source = source
        self.spool = SpoolStatsCache()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(GatewayCollector(source, self.spool))
        ProcessCollector(registry=self.registry)
        self.routes = {"/metrics": self.metrics, "/healthz": self.healthz, "/readyz": self.readyz}

    async def metrics(self, _request: Request) -> Response:
        uplink = self._source.uplink
        await self.spool.refresh(None if uplink is None else uplink.spool)
        return Response(HTTPStatus.OK, generate_latest(self.registry), PROMETHEUS_CONTENT_TYPE)

    async def healthz(self, _request: Request) -> Response:
        return json_response(HTTPStatus.OK, LIVE)

    async def readyz(self, _request: Request) -> Response:
        ready, document = readiness(self._source)
        status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
        return json_response(status, document)


async def run_http_endpoint(
    source: GatewaySource,
    config: HttpConfig,
    ready: asyncio.Event,
    on_started: Callable[[tuple[str, int]], None],
) -> None:
    """Serve until cancelled; `on_started` gets the bound address before `ready` is set.
    Raises HttpPortInUse (before `ready`) when the port is taken."""
    server = HttpServer(HttpEndpoint(source).routes)
    address = await server.start(config.host, config.port)
    try:
        on_started(address)
        log.info("http_listening", addr=f"{address[0]}:{address[1]}")
        ready.set()
        await asyncio.get_running_loop().create_future()  # until cancelled
    finally:
        await server.close()
