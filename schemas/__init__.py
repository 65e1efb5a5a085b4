"""Pydantic models of every wire and configuration contract, shared by gateway and sensor_sim."""

from schemas.config import BrokerConfig, LogConfig, MqttSnConfig
from schemas.decisions import ActuatorCommand, CoapSummary, Decision, Intent
from schemas.status import GatewayStatus
from schemas.telemetry import DeviceId, Reading, TelemetryBatch, TextCommand

__all__ = [
    "ActuatorCommand",
    "BrokerConfig",
    "CoapSummary",
    "Decision",
    "DeviceId",
    "GatewayStatus",
    "Intent",
    "LogConfig",
    "MqttSnConfig",
    "Reading",
    "TelemetryBatch",
    "TextCommand",
]
