"""Exception hierarchy. Protocol errors carry what to send back."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration is invalid or inconsistent."""


class BrokerUnavailable(GatewayError):
    """The broker cannot take a message now (not connected, or too many pending)."""


class Overloaded(GatewayError):
    """The gateway sheds load: the client should retry after `retry_after` seconds."""

    def __init__(self, reason: str, retry_after: int = 5) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
