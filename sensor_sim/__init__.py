"""Sensor fleet simulator: MQTT-SN and CoAP devices, text panels and actuators from a scenario.

`sensor-sim run SCENARIO ...` (sensor_sim.cli) runs a fleet (sensor_sim.fleet) described by a
scenario file (schemas.scenario, loaded by sensor_sim.scenario) and writes a JSON report.
"""
