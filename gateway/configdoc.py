"""Generate the configuration reference (``docs/configuration.md``) from the settings model.

The text depends only on :class:`gateway.config.Settings` and its section models, so it is the
same on every machine; ``tests/unit/test_docs_fresh.py`` fails when the committed file is stale.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from gateway.config import Settings

__all__ = ["EXAMPLE_TOML", "REGENERATE_COMMAND", "render_configuration_markdown"]

ENV_PREFIX: Final = "EGW_"
ENV_NESTED_DELIMITER: Final = "__"
REGENERATE_COMMAND: Final = "edge-gateway config docs --output docs/configuration.md"

EXAMPLE_TOML: Final = """\
# edge-gateway.toml: every key is optional; omitted keys keep their defaults.
site = "plant7"
data_dir = "/var/lib/edge-gateway"

[mqttsn]
port = 1884
gateway_id = 7
advertise_interval = 900
predefined_topics = { 1 = "sensors/predef", 2 = "sensors/alarm" }

[broker]
url = "mqtt://broker.example:1883"
username = "gateway"
mountpoint = "edge/{site}/"

[log]
format = "json"
level = "info"
"""

EXAMPLE_ENV: Final = """\
export EGW_SITE=plant7
export EGW_MQTTSN__PORT=1885
export EGW_MQTTSN__PREDEFINED_TOPICS='{"1":"sensors/predef"}'
export EGW_BROKER__URL=mqtt://127.0.0.1:1883
export EGW_BROKER__PASSWORD='s3cret'
export EGW_LOG__FORMAT=console
"""


@dataclass(frozen=True)
class _Setting:
    """One leaf setting, as documented."""

    path: tuple[str, ...]
    field: FieldInfo

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + ENV_NESTED_DELIMITER.join(part.upper() for part in self.path)

    @property
    def toml_key(self) -> str:
        if len(self.path) == 1:
            return self.path[0]
        return f"[{'.'.join(self.path[:-1])}] {self.path[-1]}"


def _is_section(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _walk(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[_Setting]:
    """Leaf settings of ``model`` (depth first, in declaration order), sections last."""
    sections: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if _is_section(annotation):
            sections.append((name, typing.cast(type[BaseModel], annotation)))
        else:
            yield _Setting((*prefix, name), field)
    for name, section in sections:
        yield from _walk(section, (*prefix, name))


def _sections(model: type[BaseModel]) -> Iterator[tuple[tuple[str, ...], type[BaseModel]]]:
    """Every nested section model with its path, in declaration order."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if _is_section(annotation):
            section = typing.cast(type[BaseModel], annotation)
            yield (name,), section
            for sub_path, sub in _sections(section):
                yield (name, *sub_path), sub


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{json.dumps(arg)}`" for arg in args)
    if origin is dict:
        key, value = (_type_name(arg) for arg in args)
        return f"table ({key} → {value}); JSON object in the environment"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in args)
    simple: dict[Any, str] = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        Path: "path",
        SecretStr: "string (secret, masked in output)",
        type(None): "none",
    }
    return simple.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _constraints(field: FieldInfo) -> str:
    """Numeric bounds as ``0 ≤ x ≤ 65535``, ``x ≥ 1`` or ``x > 0``; empty when unbounded."""
    lower: tuple[str, object] | None = None  # (operator as seen from x, bound)
    upper: tuple[str, object] | None = None
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            lower = ("≥", item.ge)
        elif isinstance(item, annotated_types.Gt):
            lower = (">", item.gt)
        elif isinstance(item, annotated_types.Le):
            upper = ("≤", item.le)
        elif isinstance(item, annotated_types.Lt):
            upper = ("<", item.lt)
    if lower and upper:
        flipped = "≤" if lower[0] == "≥" else "<"
        return f"{lower[1]} {flipped} x {upper[0]} {upper[1]}"
    bound = lower or upper
    return f"x {bound[0]} {bound[1]}" if bound else ""


def _toml_literal(value: object) -> str:
    """``value`` written as TOML, as it would appear in the configuration file."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        text = value.as_posix()
        if not value.is_absolute() and not text.startswith("."):
            text = f"./{text}"
        return json.dumps(text)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        items = ", ".join(f"{key} = {_toml_literal(item)}" for key, item in value.items())
        return "{ " + items + " }" if items else "{}"
    return json.dumps(value, default=str)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(setting: _Setting) -> str:
    field = setting.field
    type_text = _type_name(field.annotation)
    limits = _constraints(field)
    if limits:
        type_text = f"{type_text}, {limits}"
    default = _toml_literal(field.get_default(call_default_factory=True))
    cells = [
        f"`{setting.env_name}`",
        f"`{setting.toml_key}`",
        _cell(type_text),
        f"`{_cell(default)}`",
        _cell(field.description or ""),
    ]
    return "| " + " | ".join(cells) + " |"


_TABLE_HEAD: Final = (
    "| Environment variable | TOML key | Type | Default | Description |\n"
    "| --- | --- | --- | --- | --- |"
)


def _intro() -> list[str]:
    return [
        "# Configuration reference",
        "",
        f"<!-- Generated from gateway/config.py and schemas/config.py by `{REGENERATE_COMMAND}`;"
        " do not edit by hand. -->",
        "",
        "The gateway reads its settings once, at start-up, from three layers; a later layer wins:",
        "",
        "1. the defaults listed below, which run a fully local gateway (no broker, no cloud);",
        "2. a TOML file, given with `edge-gateway run --config PATH` (or the `EGW_CONFIG`"
        " environment variable);",
        f"3. environment variables prefixed `{ENV_PREFIX}`; a nested setting joins the section"
        f" and the key with `{ENV_NESTED_DELIMITER}`, e.g. `[mqttsn] port` is"
        " `EGW_MQTTSN__PORT`.",
        "",
        "Names are case-insensitive in the environment. Unknown keys in the TOML file, out-of-range"
        " values and malformed values are rejected: `edge-gateway` then prints which setting is"
        " wrong and exits with status 2. A missing `--config` file is an error too."
        " `edge-gateway config show` prints the effective settings as JSON, with the broker"
        " password masked.",
        "",
        "## Example TOML file",
        "",
        "```toml",
        EXAMPLE_TOML.rstrip("\n"),
        "```",
        "",
        "## Example environment",
        "",
        "Table-valued settings such as `predefined_topics` take a JSON object in the environment;"
        " JSON object keys are strings, which are converted to topic ids:",
        "",
        "```sh",
        EXAMPLE_ENV.rstrip("\n"),
        "```",
        "",
    ]


def render_configuration_markdown() -> str:
    """The Markdown configuration reference for every setting of :class:`Settings`."""
    lines = _intro()
    top = [s for s in _walk(Settings) if len(s.path) == 1]
    lines += ["## Top-level settings", "", _TABLE_HEAD, *(_row(s) for s in top), ""]
    leaves = list(_walk(Settings))
    for path, section in _sections(Settings):
        doc = (section.__doc__ or "").strip().splitlines()
        summary = doc[0] if doc else ""
        lines += [f"## `[{'.'.join(path)}]`", ""]
        if summary:
            lines += [summary, ""]
        rows = [_row(s) for s in leaves if s.path[:-1] == path]
        lines += [_TABLE_HEAD, *rows, ""]
    lines += [
        "## Notes",
        "",
        "- `[broker] mountpoint`: `{site}` is replaced by `site`, so the default prefix is"
        " `edge/site1/`.",
        "- `[broker] url` empty means no broker connection: the gateway runs fully local.",
        "- `[mqttsn] predefined_topics`: ids 1..65534; names must not contain the wildcards"
        " `+` or `#`.",
        "",
    ]
    return "\n".join(lines)
