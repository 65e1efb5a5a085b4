"""The HTTP endpoint section (``Settings.http``: ``EGW_HTTP__ENABLED``, ``EGW_HTTP__HOST``,
``EGW_HTTP__PORT``): Prometheus metrics at ``/metrics``, liveness at ``/healthz``, readiness at
``/readyz``.
"""

from __future__ import annotations

from pydantic import Field

from schemas.config import _Section

__all__ = ["HttpConfig"]


class HttpConfig(_Section):
    """The HTTP endpoint for metrics and health checks."""

    enabled: bool = Field(
        True, description="Serve /metrics, /healthz and /readyz over HTTP."
    )
    host: str = Field("0.0.0.0", description="Address the HTTP endpoint binds to.")
    port: int = Field(
        8080, ge=0, le=65535,
        description="TCP port of the HTTP endpoint; 0 = any free port (tests).",
    )
