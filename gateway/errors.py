"""Exception hierarchy. Protocol errors carry what to send back."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration is invalid or inconsistent."""


class BrokerUnavailable(GatewayError):
    """The broker cannot take a message now (not connected, or too many pending)."""


class BrokerRefused(GatewayError):
    """The broker answered a publish with an MQTT v5 failure reason code (>= 0x80, e.g. 0x87
    not authorized, 0x97 quota exceeded): it does not have the message and will not take it
    as it is."""

    def __init__(self, topic: str, reason_code: int) -> None:
        super().__init__(f"broker refused the publish to {topic!r}: reason 0x{reason_code:02x}")
        self.reason_code = reason_code


class Overloaded(GatewayError):
    """The gateway sheds load: the client should retry after `retry_after` seconds."""

    def __init__(self, reason: str, retry_after: int = 5) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
