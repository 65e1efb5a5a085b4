"""The spool settings section (``Settings.spool``: ``EGW_SPOOL__ENABLED``, ``EGW_SPOOL__MAX_BYTES``,
...). The spool file is ``EGW_DATA_DIR/spool.sqlite3`` (``gateway.spool.DEFAULT_FILENAME``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.config import _Section

__all__ = ["SpoolConfig"]


class SpoolConfig(_Section):
    """The durable store-and-forward spool for everything bound for the broker."""

    enabled: bool = Field(
        True,
        description="Spool broker-bound messages on disk while the broker is unreachable or "
        "slower than ingest.",
    )
    max_bytes: int = Field(
        512 * 1024 * 1024,
        ge=64 * 1024,
        description="Accounted bytes the spool holds at most (payload + topic + 64 per row); "
        "512 MiB is about 3.4 days of 50 sensors sending a one-reading telemetry message "
        "(370 accounted bytes) every 10 s (docs/operations.md). The file on disk is somewhat "
        "larger (indexes, WAL up to 64 MiB).",
    )
    max_age_s: float = Field(
        7 * 24 * 3600.0, gt=0, description="Seconds a spooled message is kept before it expires."
    )
    decision_share: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="Share of max_bytes decisions and alarms may use; beyond it new ones are "
        "refused (counted, logged).",
    )
    command_share: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="Share of max_bytes actuator commands may use; beyond it new ones are "
        "refused (counted, logged).",
    )
    telemetry_share: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Share of max_bytes telemetry may use; beyond it, and whenever the spool "
        "is full, the oldest telemetry is dropped (counted).",
    )
    synchronous: Literal["full", "normal"] = Field(
        "full",
        description="SQLite synchronous mode: full = every commit is fsync'ed, acknowledged "
        "messages survive power loss; normal = faster, survives a process crash but may "
        "lose the last commits on power loss.",
    )
    max_file_bytes: int = Field(
        0,
        ge=0,
        description="Hard ceiling of the database file in bytes, handled like a full disk; "
        "0 = none. Must exceed max_bytes.",
    )
    replay_rate: float = Field(
        500.0, gt=0, description="Messages per second replayed after a reconnect (token bucket)."
    )
    replay_burst: int = Field(
        100, ge=1, description="Burst size of the replay token bucket, messages."
    )

    @model_validator(mode="after")
    def _ceiling_above_bound(self) -> SpoolConfig:
        if self.max_file_bytes and self.max_file_bytes <= self.max_bytes:
            raise ValueError("spool max_file_bytes must be 0 or larger than max_bytes")
        return self
