"""Build hook: optionally compile the hot path with mypyc (everything else is in pyproject.toml).

    EGW_MYPYC=1 pip install --no-build-isolation .     (needs mypy, setuptools, wheel and gcc)

compiles the modules below to C extensions; without EGW_MYPYC the package is pure Python and
behaves the same (the test suite runs on both, see docs/benchmarks.md). The modules are those a
CoAP or MQTT-SN message crosses on its way in, chosen by profile; they are already checked by
`mypy --strict`, which is what mypyc needs. Left interpreted: modules with coroutines (a
compiled one did not unwind like an interpreted one under cancellation: the CoAP server's
close), whose synchronous parts live in modules of their own instead. Not for
editable installs: an extension beside its source would shadow later edits of that source.
"""

from __future__ import annotations

import os

from setuptools import setup

HOT_PATH = [
    "gateway/coap/bucket.py",
    "gateway/coap/datagrams.py",
    "gateway/coap/dedup.py",
    "gateway/coap/fastpath.py",
    "gateway/coap/handler.py",
    "gateway/coap/message.py",
    "gateway/pipeline/cbor.py",
    "gateway/pipeline/cbor_onepass.py",
    "gateway/pipeline/decide.py",
    "gateway/pipeline/ingest.py",
    "gateway/pipeline/normalise.py",
    "gateway/pipeline/senml.py",
    "gateway/delivery/bus.py",
    "gateway/recognizer/policy.py",
    "gateway/rules/engine.py",
    "gateway/mqttsn/codec.py",
    "gateway/mqttsn/core.py",
    "gateway/mqttsn/events.py",
    "gateway/mqttsn/packets.py",
    "gateway/mqttsn/ratelimit.py",
    "gateway/mqttsn/session.py",
    "gateway/mqttsn/subscriptions.py",
    "gateway/mqttsn/topics.py",
    "gateway/router.py",
    "gateway/topics.py",
    "gateway/bridge/publish_codec.py",
    "gateway/bridge/packet_reader.py",
]


def _ext_modules() -> list[object]:
    if os.environ.get("EGW_MYPYC", "0") != "1":
        return []
    from mypyc.build import mypycify  # noqa: PLC0415 - only a compiled build needs mypy

    return list(mypycify(HOT_PATH, opt_level="3"))


setup(ext_modules=_ext_modules())
