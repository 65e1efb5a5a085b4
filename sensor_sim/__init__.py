"""Sensor fleet simulator (MQTT-SN and CoAP clients for demos and load tests).

Placeholder package: the simulator is planned in a later issue and does not exist yet.
"""
