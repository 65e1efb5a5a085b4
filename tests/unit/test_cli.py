"""The edge-gateway command line: config show/docs, run wiring, errors and --version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import gateway
from gateway.cli import app
from gateway.config import Settings
from gateway.configdoc import render_configuration_markdown
from gateway.logconfig import reset_logging

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Drop EGW_ variables of the developer's shell and undo any logging set-up afterwards."""
    for name in list(os.environ):
        if name.upper().startswith("EGW_"):
            monkeypatch.delenv(name)
    yield
    reset_logging()


def test_config_show_prints_effective_settings_with_env_override() -> None:
    """config show reflects an EGW_ override and prints valid JSON."""
    result = runner.invoke(app, ["config", "show"], env={"EGW_MQTTSN__PORT": "1999"})
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["mqttsn"]["port"] == 1999
    assert shown["site"] == "site1"
    assert shown["broker"]["mountpoint"] == "edge/{site}/"


def test_config_show_masks_the_password() -> None:
    """config show never prints the broker password itself."""
    result = runner.invoke(
        app,
        ["config", "show"],
        env={"EGW_BROKER__PASSWORD": "hunter2", "EGW_BROKER__USERNAME": "gw"},
    )
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    shown = json.loads(result.stdout)
    assert shown["broker"]["username"] == "gw"
    assert shown["broker"]["password"] == "**********"


def test_config_show_reads_the_toml_file(tmp_path: Path) -> None:
    """config show --config PATH uses the file, and the environment still wins over it."""
    path = tmp_path / "gw.toml"
    path.write_text('site = "north"\n[mqttsn]\nport = 2000\ngateway_id = 9\n', encoding="utf-8")
    result = runner.invoke(
        app, ["config", "show", "--config", str(path)], env={"EGW_MQTTSN__PORT": "3000"}
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["site"], shown["mqttsn"]["port"], shown["mqttsn"]["gateway_id"]) == (
        "north",
        3000,
        9,
    )


def test_config_docs_prints_the_generated_reference() -> None:
    """config docs writes exactly render_configuration_markdown() to stdout."""
    result = runner.invoke(app, ["config", "docs"])
    assert result.exit_code == 0, result.output
    assert result.stdout == render_configuration_markdown()


def test_config_docs_writes_the_output_file(tmp_path: Path) -> None:
    """config docs --output PATH writes the reference to that file."""
    target = tmp_path / "docs" / "configuration.md"
    result = runner.invoke(app, ["config", "docs", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == render_configuration_markdown()


def test_invalid_env_exits_2_with_a_readable_message() -> None:
    """An invalid EGW_ value gives exit code 2 and a one-paragraph message naming the variable."""
    result = runner.invoke(
        app, ["config", "show"], env={"EGW_MQTTSN__PORT": "70000", "EGW_BROKER__URL": "http://x"}
    )
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "\n" not in message
    assert "invalid configuration (2 errors)" in message
    assert "EGW_MQTTSN__PORT" in message
    assert "70000" in message
    assert "EGW_BROKER__URL" in message
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_malformed_json_env_exits_2() -> None:
    """A dict-valued variable that is not JSON gives exit code 2 and a hint, not a traceback."""
    result = runner.invoke(
        app, ["config", "show"], env={"EGW_MQTTSN__PREDEFINED_TOPICS": "1=sensors/predef"}
    )
    assert result.exit_code == 2
    assert "JSON object" in result.stderr
    assert "Traceback" not in result.output


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    """A --config path that does not exist gives exit code 2 and names the path."""
    missing = tmp_path / "missing.toml"
    result = runner.invoke(app, ["config", "show", "--config", str(missing)])
    assert result.exit_code == 2
    assert "missing.toml" in result.stderr


def test_invalid_toml_syntax_exits_2(tmp_path: Path) -> None:
    """A config file that is not TOML gives exit code 2."""
    path = tmp_path / "broken.toml"
    path.write_text("[mqttsn\nport = \n", encoding="utf-8")
    result = runner.invoke(app, ["config", "show", "--config", str(path)])
    assert result.exit_code == 2
    assert "not valid TOML" in result.stderr


def test_version_option() -> None:
    """--version prints the package version and exits 0."""
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"edge-gateway {gateway.__version__}"


def test_no_subcommand_shows_help() -> None:
    """Running with no arguments shows the usage and the available commands."""
    result = runner.invoke(app, [])
    assert "Usage" in result.output
    assert "run" in result.output
    assert "config" in result.output


def test_run_loads_settings_once_and_returns_serve_exit_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """run passes the loaded settings to gateway.app.serve and exits with its return value."""
    received: list[Settings] = []

    def serve(settings: Settings) -> int:
        received.append(settings)
        return 3

    fake = types.ModuleType("gateway.app")
    fake.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.app", fake)
    result = runner.invoke(app, ["run"], env={"EGW_SITE": "plant7", "EGW_LOG__LEVEL": "error"})
    assert result.exit_code == 3, result.output
    assert len(received) == 1
    assert received[0].site == "plant7"


def test_run_with_invalid_settings_exits_2_without_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """run stops with exit code 2 before serving when the settings are invalid."""
    called: list[Settings] = []
    fake = types.ModuleType("gateway.app")
    fake.serve = called.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.app", fake)
    result = runner.invoke(app, ["run"], env={"EGW_MQTTSN__GATEWAY_ID": "300"})
    assert result.exit_code == 2
    assert "EGW_MQTTSN__GATEWAY_ID" in result.stderr
    assert called == []


def test_python_dash_m_gateway_runs_the_cli() -> None:
    """python -m gateway is the same command line as edge-gateway."""
    completed = subprocess.run(
        [sys.executable, "-m", "gateway", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"edge-gateway {gateway.__version__}"
