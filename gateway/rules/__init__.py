"""Rules: the device registry and how intents and readings become actuator commands."""
