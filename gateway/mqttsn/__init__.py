"""Sans-IO MQTT-SN v1.2, gateway side: no asyncio, no sockets, no clock, no logging."""
