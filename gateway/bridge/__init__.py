"""The MQTT bridge: one aggregated connection from the gateway to an upstream broker."""

from gateway.bridge.link import BrokerLink, InboundHandler, InboundMessage, create_link

__all__ = ["BrokerLink", "InboundHandler", "InboundMessage", "create_link"]
