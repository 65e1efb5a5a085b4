"""Static facts of docker/Dockerfile, docker/compose.yaml and .dockerignore.

These guard the image against drifting from the settings model and the CLIs; they do not build
or run anything. `bash docker/smoke-test.sh` builds the image and runs the gateway in it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from typer.main import get_command

from gateway.config import Settings
from sensor_sim.cli import app as sensor_sim_app
from sensor_sim.scenario import shipped_scenarios

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
Instruction = tuple[str, str]


def _instructions() -> list[Instruction]:
    """The Dockerfile as (KEYWORD, arguments) pairs, continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in (DOCKER / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation line"
    pairs: list[Instruction] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        pairs.append((keyword.upper(), " ".join(args.split())))
    return pairs


def _stages() -> list[list[Instruction]]:
    """The build stages, each starting with its FROM."""
    stages: list[list[Instruction]] = []
    for keyword, args in _instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def _final(keyword: str) -> list[str]:
    """Arguments of every `keyword` instruction of the final stage."""
    return [args for kw, args in _stages()[-1] if kw == keyword]


def _env(stage: list[Instruction]) -> dict[str, str]:
    """The KEY=VALUE pairs set by the stage's ENV instructions."""
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for item in args.split():
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _section(name: str) -> Any:
    """The default of one settings section, e.g. ``mqttsn``."""
    annotation = Settings.model_fields[name].annotation
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation()


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _is_setting(variable: str) -> bool:
    """Whether EGW_A__B names a field of the settings model (nested sections by ``__``)."""
    model: type[BaseModel] = Settings
    parts = variable.removeprefix("EGW_").lower().split("__")
    for index, part in enumerate(parts):
        if part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        if index < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def _parse_cli(argv: list[str]) -> dict[str, Any]:
    """Parse ``sensor-sim`` arguments (subcommand first) as the CLI would, without running it."""
    group = get_command(sensor_sim_app)
    parent = group.context_class(group, info_name="sensor-sim")
    command = group.get_command(parent, argv[0])  # type: ignore[attr-defined]
    assert command is not None, f"no subcommand {argv[0]!r}"
    with command.make_context(argv[0], argv[1:], parent=parent) as ctx:
        return dict(ctx.params)


def test_both_stages_build_on_python_311_slim() -> None:
    """Builder and runtime stages start from the PYTHON_IMAGE argument, python:3.11-slim."""
    instructions = _instructions()
    assert instructions[0] == ("ARG", "PYTHON_IMAGE=python:3.11-slim")
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]


def test_final_stage_installs_only_the_built_wheels() -> None:
    """The runtime stage installs from the builder's wheels, offline, with no compiler or apt."""
    run = " ".join(_final("RUN"))
    assert "--mount=type=bind,from=builder,source=/wheels,target=/wheels" in run
    assert "pip install --no-cache-dir --no-index --find-links /wheels edge-intent-gateway" in run
    for forbidden in ("apt-get", "gcc", "build-essential", "pip wheel"):
        assert forbidden not in run
    assert _final("COPY") == [], "sources belong to the builder stage only"
    builder_run = " ".join(args for kw, args in _stages()[0] if kw == "RUN")
    assert "pip wheel --wheel-dir /wheels ." in builder_run


def test_exposed_ports_are_the_default_ports() -> None:
    """EXPOSE lists the default MQTT-SN, CoAP (UDP) and HTTP (TCP) ports of the settings model."""
    exposed = set(" ".join(_final("EXPOSE")).split())
    expected = {
        f"{_section('mqttsn').port}/udp",
        f"{_section('coap').port}/udp",
        f"{_section('http').port}/tcp",
    }
    assert exposed == expected == {"1884/udp", "5683/udp", "8080/tcp"}


def test_runs_as_non_root_with_data_under_the_volume() -> None:
    """USER is a named non-root user who owns /data, the VOLUME the data dir points at."""
    (user,) = _final("USER")
    name = user.split(":")[0]
    assert name not in {"root", "0"}
    assert _final("VOLUME") == ["/data"]
    assert _env(_stages()[-1])["EGW_DATA_DIR"] == "/data"
    run = " ".join(_final("RUN"))
    assert f"useradd --system --uid 10001 --gid {name}" in run
    assert f"chown {name}:{name} /data" in run


def test_entrypoint_cmd_and_stop_signal() -> None:
    """ENTRYPOINT edge-gateway (a console script), CMD run, STOPSIGNAL SIGTERM, stop within 10 s."""
    assert [json.loads(args) for args in _final("ENTRYPOINT")] == [["edge-gateway"]]
    assert [json.loads(args) for args in _final("CMD")] == [["run"]]
    assert _final("STOPSIGNAL") == ["SIGTERM"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["scripts"]["edge-gateway"] == "gateway.cli:app"
    from gateway.app import SHUTDOWN_GRACE  # noqa: PLC0415 - heavy import, this test only

    assert SHUTDOWN_GRACE < 10  # Docker's default grace before SIGKILL


def test_shipped_models_are_package_data() -> None:
    """The wheel carries the shipped models (the image has no source tree to load them from)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = pyproject["tool"]["setuptools"]["package-data"]
    assert "models/*" in package_data["gateway"]
    assert list((ROOT / "gateway" / "models").glob("*.onnx"))
    assert "models/*" in package_data["sensor_sim.cloud"]  # the image's `sensor-sim cloud`
    assert list((ROOT / "sensor_sim" / "cloud" / "models").glob("*.onnx"))


def _healthcheck_code() -> str:
    (healthcheck,) = _final("HEALTHCHECK")
    match = re.search(r"CMD (\[.*\])$", healthcheck)
    assert match, healthcheck
    argv = json.loads(match.group(1))
    assert argv[:2] == ["python3", "-c"] and len(argv) == 3
    code: str = argv[2]
    return code


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    """A loopback HTTP server answering /healthz with `_Health.status`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        _Health.status = 200


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_asks_healthz(
    health_server: ThreadingHTTPServer, status: int, healthy: bool
) -> None:
    """The HEALTHCHECK's python -c code passes on 200 from /healthz and fails on 503."""
    code = _healthcheck_code()
    assert f"os.environ.get('EGW_HTTP__PORT', '{_section('http').port}')" in code
    _Health.status = status
    env = {**os.environ, "EGW_HTTP__PORT": str(health_server.server_address[1])}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, timeout=30, check=False
    )
    assert (result.returncode == 0) is healthy, result.stderr


def test_every_egw_variable_names_a_setting() -> None:
    """Each EGW_ variable set by the Dockerfile or compose.yaml is a field of Settings."""
    names = {name for stage in _stages() for name in _env(stage) if name.startswith("EGW_")}
    for service in _compose()["services"].values():
        names |= {name for name in service.get("environment", {}) if name.startswith("EGW_")}
    assert {"EGW_DATA_DIR", "EGW_SITE", "EGW_BROKER__URL"} <= names
    assert sorted(name for name in names if not _is_setting(name)) == []


def test_compose_wires_broker_gateway_fleet_and_cloud() -> None:
    """mosquitto, gateway, sensor-sim and cloud exist; the gateway bridges to mosquitto."""
    services = _compose()["services"]
    assert set(services) == {"mosquitto", "gateway", "sensor-sim", "cloud"}
    gateway = services["gateway"]
    assert gateway["environment"]["EGW_BROKER__URL"] == "mqtt://mosquitto:1883"
    assert gateway["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    assert (DOCKER / gateway["build"]["context"] / gateway["build"]["dockerfile"]).is_file()
    assert "gateway-data:/data" in gateway["volumes"]
    published = {port.split(":", 1)[1] for port in gateway["ports"]}
    assert published == set(" ".join(_final("EXPOSE")).split())
    for name in ("sensor-sim", "cloud"):
        assert services[name]["image"] == gateway["image"]
        assert services[name]["healthcheck"] == {"disable": True}


def test_compose_mosquitto_config_allows_anonymous_1883() -> None:
    """The mosquitto service mounts docker/mosquitto.conf: a 1883 listener, anonymous allowed."""
    mosquitto = _compose()["services"]["mosquitto"]
    assert mosquitto["image"].startswith("eclipse-mosquitto:")
    source, target, _mode = mosquitto["volumes"][0].split(":")
    assert target == "/mosquitto/config/mosquitto.conf"
    lines = {
        " ".join(line.split())
        for line in (DOCKER / source).read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"listener 1883", "allow_anonymous true"} <= lines


def test_compose_fleet_command_parses_and_targets_the_gateway() -> None:
    """The sensor-sim service's command is valid for `sensor-sim run` and aims at the gateway."""
    entrypoint = _compose()["services"]["sensor-sim"]["entrypoint"]
    assert entrypoint[0] == "sensor-sim"
    params = _parse_cli(entrypoint[1:])
    assert params["scenario"] in shipped_scenarios()
    assert params["host"] == "gateway"
    assert params["mqttsn_port"] == _section("mqttsn").port
    assert params["coap_port"] == _section("coap").port


def test_compose_cloud_command_parses_and_serves_the_gateway() -> None:
    """The cloud service runs `sensor-sim cloud` on the gateway's broker and request topic."""
    services = _compose()["services"]
    entrypoint = services["cloud"]["entrypoint"]
    assert entrypoint[0] == "sensor-sim"
    params = _parse_cli(entrypoint[1:])
    gateway_env = services["gateway"]["environment"]
    assert gateway_env["EGW_CLOUD__ENABLED"] == "true"
    assert params["broker"] == gateway_env["EGW_BROKER__URL"]
    assert "EGW_CLOUD__REQUEST_TOPIC" not in gateway_env
    assert params["request_topic"] == _section("cloud").request_topic


def test_dockerignore_keeps_what_the_builder_copies() -> None:
    """.dockerignore excludes everything but the files the builder stage COPYs."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    kept = {pattern[1:] for pattern in patterns if pattern.startswith("!")}
    copied = {
        source
        for keyword, args in _stages()[0]
        if keyword == "COPY"
        for source in args.split()[:-1]
    }
    assert copied == kept == {
        "pyproject.toml", "README.md", "gateway", "schemas", "sensor_sim", "setup.py"
    }
