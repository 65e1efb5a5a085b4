"""The gateway's own status, published retained so that consumers see whether it is up."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GatewayStatus(BaseModel):
    """Gateway availability: the retained status message and the MQTT will."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    state: Literal["online", "offline", "degraded"] = Field(
        description='"online", "offline" (clean stop or MQTT will) or "degraded" (running, but '
        "part of it, e.g. the cloud recogniser, is unavailable)."
    )
    site: str = Field(min_length=1, description="The gateway's site name.")
    reason: str = Field(description='Why the state was entered, e.g. "startup", "shutdown".')
    time: float | None = Field(
        None,
        description="Gateway clock when the state was entered: UTC seconds since the Unix "
        "epoch; null in the MQTT will, which is prepared in advance.",
    )
