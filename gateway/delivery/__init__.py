"""Delivery: the local message bus (local subscribers + broker uplink)."""
