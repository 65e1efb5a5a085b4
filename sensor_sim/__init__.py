"""Sensor fleet simulator: MQTT-SN and CoAP devices, text panels and actuators from a scenario.

`sensor-sim run SCENARIO ...` (sensor_sim.cli) runs a fleet (sensor_sim.fleet, one
sensor_sim.device per simulated device, faults from sensor_sim.faults) described by a scenario
file (schemas.scenario, loaded by sensor_sim.scenario), shows the live view (sensor_sim.live)
and writes a JSON report (sensor_sim.report); sensor_sim.runner spreads it over processes.
"""
