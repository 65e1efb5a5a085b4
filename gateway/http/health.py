"""Liveness and readiness.

Ready means the gateway can take sensor traffic: both UDP listeners are bound, the models are
loaded (when the recogniser is on) and it is not stopping. The broker, the cloud recogniser and
the spool are reported in the same document but never make it unready: the gateway is built to
work without them.
"""

from __future__ import annotations

from typing import Any, Final

from gateway.http.source import GatewaySource

__all__ = ["LIVE", "LOCAL_MODE", "readiness"]

LIVE: Final = {"status": "ok"}
"""The /healthz document: the event loop answered."""
LOCAL_MODE: Final = "local"
"""The recogniser mode reported when no cloud recogniser is configured."""


def readiness(source: GatewaySource) -> tuple[bool, dict[str, Any]]:
    """(ready, the /readyz document)."""
    settings = source.settings
    pipeline = source.pipeline
    coap = source.coap
    checks = {
        "mqttsn_listening": source.mqttsn_address is not None,
        "coap_listening": coap is not None and coap.address is not None,
        "models_loaded": pipeline is not None
        and (not settings.recognizer.enabled or pipeline.recognizer is not None),
        "not_stopping": not source.stopping,
    }
    ready = all(checks.values())
    bus = source.bus
    uplink = source.uplink
    mode = source.recognizer_mode
    document = {
        "status": "ready" if ready else "not_ready",
        "checks": checks,
        "broker": {
            "configured": bool(settings.broker.url),
            "connected": bus is not None and bus.link.connected,
        },
        "recognizer": {"mode": LOCAL_MODE if mode is None else mode.mode},
        "spool": {
            "enabled": uplink is not None,
            "rows": None if uplink is None else uplink.spool.total_rows,
        },
    }
    return ready, document
