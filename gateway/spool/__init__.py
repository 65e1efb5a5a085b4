"""The durable store-and-forward spool (SQLite, WAL) and the token bucket that paces replay."""

from gateway.spool.pacing import TokenBucket
from gateway.spool.store import (
    CLASSES,
    DEFAULT_FILENAME,
    PRIORITY,
    ROW_OVERHEAD,
    ClassStats,
    Row,
    Spool,
    SpoolFull,
    SpoolMessage,
    row_size,
)

__all__ = [
    "CLASSES",
    "DEFAULT_FILENAME",
    "PRIORITY",
    "ROW_OVERHEAD",
    "ClassStats",
    "Row",
    "Spool",
    "SpoolFull",
    "SpoolMessage",
    "TokenBucket",
    "row_size",
]
