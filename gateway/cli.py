"""The ``edge-gateway`` command line (also ``python -m gateway``).

Commands are grouped in typer sub-apps (``config`` now; ``demo``, ``recognize`` and
``model train|eval`` are meant to be added the same way with ``app.add_typer``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import SettingsError

import gateway
from gateway.cli_model import model_app, recognize
from gateway.config import Settings, load_settings
from gateway.configdoc import render_configuration_markdown
from gateway.logconfig import configure_logging

__all__ = ["app", "config_app"]

EXIT_CONFIG_ERROR = 2

app = typer.Typer(
    name="edge-gateway",
    help="Asyncio edge IoT gateway: MQTT-SN front-end, local intent recognition, MQTT bridge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold the broker password
)
config_app = typer.Typer(
    help="Inspect the effective configuration and its reference.", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(model_app, name="model")
app.command("recognize")(recognize)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="EGW_CONFIG",
        help="TOML settings file; EGW_* environment variables override it.",
        dir_okay=False,
        show_default=False,
    ),
]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edge-gateway {gateway.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Show the version and exit.",
        ),
    ] = False,
) -> None:
    """Asyncio edge IoT gateway: MQTT-SN front-end, local intent recognition, MQTT bridge."""


def _setting_at(loc: tuple[int | str, ...]) -> tuple[str | None, bool]:
    """The EGW_ variable of the setting at ``loc`` (a validation error's path) and its secrecy."""
    model: type[BaseModel] = Settings
    parts: list[str] = []
    for item in loc:
        if not isinstance(item, str) or item not in model.model_fields:
            break
        parts.append(item.upper())
        annotation = model.model_fields[item].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return "EGW_" + "__".join(parts), annotation is SecretStr
        model = annotation
    return None, False  # an unknown key or a whole section: no single variable to name


def _describe_errors(exc: ValidationError) -> str:
    """One paragraph naming each bad setting, its value, the reason and its variable."""
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        env, secret = _setting_at(loc)
        text = f"{'.'.join(str(part) for part in loc) or 'settings'}: {error['msg']}"
        value = error.get("input")
        if not secret and error["type"] != "missing" and not isinstance(value, dict):
            text += f" (got {value!r})"
        if env is not None:
            text += f" [{env}]"
        problems.append(text)
    count = len(problems)
    return (
        f"edge-gateway: invalid configuration ({count} error{'s' if count != 1 else ''}): "
        + "; ".join(problems)
        + ". Fix the TOML file given with --config or the EGW_ environment variable named in"
        " brackets; see docs/configuration.md."
    )


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(EXIT_CONFIG_ERROR)


def _load(config: Path | None) -> Settings:
    """Load the settings once, turning every configuration mistake into exit status 2."""
    try:
        return load_settings(config)
    except ValidationError as exc:
        _fail(_describe_errors(exc))
    except FileNotFoundError as exc:
        _fail(f"edge-gateway: {exc}.")
    except tomllib.TOMLDecodeError as exc:
        _fail(f"edge-gateway: the config file {config} is not valid TOML: {exc}.")
    except SettingsError as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
        _fail(
            f"edge-gateway: invalid configuration: {exc}{cause}. Table-valued settings take a"
            """ JSON object in the environment, e.g. EGW_MQTTSN__PREDEFINED_TOPICS='{"1":"a/b"}'."""
        )


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run the gateway until SIGINT/SIGTERM (defaults: local only, data in ./data)."""
    settings = _load(config)
    configure_logging(settings.log)
    # Imported late so that the other commands work without the runtime's dependencies loaded.
    serve: Callable[[Settings], int] = importlib.import_module("gateway.app").serve
    raise typer.Exit(serve(settings))


@app.command()
def demo(
    duration: Annotated[float, typer.Option(min=1.0, help="Seconds the fleet runs.")] = 20.0,
    broker: Annotated[str, typer.Option(help="Also bridge to this broker (mqtt://...).")] = "",
    report: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
) -> None:
    """Run the gateway (local defaults, temporary data) with a simulated smart home."""
    configure_logging(Settings(log={"level": "warning", "format": "console"}).log)
    run_demo = importlib.import_module("gateway.demo").run_demo
    sim_cli = importlib.import_module("sensor_sim.cli")
    result = asyncio.run(run_demo(duration, broker))
    if report is not None:
        report.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    sim_cli.Console().print(sim_cli.summary_table(result))


def settings_as_json(settings: Settings) -> str:
    """The effective settings as indented JSON; secrets are masked."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    return json.dumps(data, indent=2)


@config_app.command("show")
def config_show(config: ConfigOption = None) -> None:
    """Print the effective settings (defaults < TOML file < EGW_ environment) as JSON."""
    typer.echo(settings_as_json(_load(config)))


@config_app.command("docs")
def config_docs(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the Markdown here instead of standard output.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print or write the configuration reference (docs/configuration.md)."""
    text = render_configuration_markdown()
    if output is None:
        typer.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}", err=True)
