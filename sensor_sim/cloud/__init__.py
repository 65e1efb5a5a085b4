"""The reference cloud recogniser: `sensor-sim cloud --broker URL`.

A stand-in for a cloud NLU service, for tests and demos: it answers the gateway's MQTT v5
requests (`schemas.cloud.CloudRequest`) on the request topic with `schemas.cloud.CloudResponse`s,
using a model that knows every source intent of the training file (67 labels), more than the
gateway's local model (9 smart-home intents + other). Model files: ``models/`` (see
``models/ATTRIBUTION.md``), trained by ``training/train_cloud.py``.
"""

from sensor_sim.cloud.service import DEFAULT_MODEL, DEFAULT_REQUEST_TOPIC, CloudService

__all__ = ["DEFAULT_MODEL", "DEFAULT_REQUEST_TOPIC", "CloudService"]
