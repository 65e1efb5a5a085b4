"""edge-intent-gateway: an asyncio edge IoT gateway."""

__version__ = "0.1.0"
