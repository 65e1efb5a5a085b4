"""The operational HTTP endpoint: Prometheus metrics, liveness and readiness."""

from gateway.http.endpoint import HttpEndpoint, run_http_endpoint
from gateway.http.server import HttpPortInUse
from gateway.http.source import GatewaySource, RecognizerModeSource

__all__ = [
    "GatewaySource",
    "HttpEndpoint",
    "HttpPortInUse",
    "RecognizerModeSource",
    "run_http_endpoint",
]
