"""Pydantic models of every wire and configuration contract, shared by gateway and sensor_sim."""

from schemas.config import BrokerConfig, LogConfig, MqttSnConfig

__all__ = ["BrokerConfig", "LogConfig", "MqttSnConfig"]
