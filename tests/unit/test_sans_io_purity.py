"""The MQTT-SN core is sans-IO: nothing in gateway/mqttsn/ may import I/O, clocks or logging.

The check is static (ast), so it needs no import of the modules and sees imports inside
functions, `if TYPE_CHECKING:` blocks and try/except alike. It discovers modules by globbing the
package directory, so new modules (session.py, core.py, topics.py, ...) are covered as soon as
they exist. It also follows absolute and relative imports of other `gateway.*` modules, because
importing an impure helper would make the core impure too. (The parent package
`gateway/__init__.py`, which Python runs implicitly, is not followed.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gateway
import gateway.mqttsn

FORBIDDEN = frozenset(
    {
        "asyncio",
        "socket",
        "time",
        "logging",
        "structlog",
        "threading",
        "select",
        "selectors",
        "datetime",
    }
)
PACKAGE_DIR = Path(gateway.mqttsn.__file__).resolve().parent
GATEWAY_DIR = Path(gateway.__file__).resolve().parent
PACKAGE = "gateway.mqttsn"
MODULES = sorted(PACKAGE_DIR.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.resolve().relative_to(GATEWAY_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _dynamic_import_target(node: ast.Call) -> str | None:
    """The module named by `__import__("x")` or `importlib.import_module("x")`, if literal."""
    func = node.func
    named = (isinstance(func, ast.Name) and func.id in {"__import__", "import_module"}) or (
        isinstance(func, ast.Attribute) and func.attr == "import_module"
    )
    if named and node.args and isinstance(node.args[0], ast.Constant):
        value = node.args[0].value
        return value if isinstance(value, str) else None
    return None


def imported_modules(source: str, module: str = "", is_package: bool = False) -> set[str]:
    """Absolute names of every module `source` imports (relative imports resolved)."""
    names: set[str] = set()
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                keep = len(package_parts) - (node.level - 1)
                base = ".".join(package_parts[: max(keep, 0)])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names.add(target)
            # `from pkg import sub` may import the submodule pkg.sub.
            names.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call):
            target_name = _dynamic_import_target(node)
            if target_name is not None:
                names.add(target_name)
    return {name for name in names if name}


def forbidden_imports(source: str, module: str = "", is_package: bool = False) -> set[str]:
    """The forbidden top-level modules among those `source` imports."""
    return {
        name
        for name in imported_modules(source, module, is_package)
        if name.split(".")[0] in FORBIDDEN
    }


def _gateway_file(module: str) -> Path | None:
    """The source file of a `gateway.*` module, or None if `module` is not one (e.g. a name)."""
    parts = module.split(".")
    if parts[0] != "gateway" or len(parts) < 2:
        return None
    base = GATEWAY_DIR.parent.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def impure_imports_reachable_from(path: Path) -> dict[str, set[str]]:
    """Forbidden imports of `path` and of every `gateway.*` module it imports, transitively."""
    found: dict[str, set[str]] = {}
    seen: set[Path] = set()
    pending = [path.resolve()]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        source = current.read_text(encoding="utf-8")
        module = _module_name(current)
        bad = forbidden_imports(source, module, _is_package(current))
        if bad:
            found[module] = bad
        for name in imported_modules(source, module, _is_package(current)):
            target = _gateway_file(name)
            if target is not None and target.resolve() != GATEWAY_DIR / "__init__.py":
                pending.append(target.resolve())
    return found


def test_package_modules_are_discovered() -> None:
    """The glob finds the codec's modules, so an empty parametrization cannot pass silently."""
    names = {path.name for path in MODULES}
    assert {"__init__.py", "constants.py", "packets.py", "codec.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE_DIR)) for p in MODULES])
def test_module_imports_no_io(path: Path) -> None:
    """This gateway/mqttsn module and the gateway modules it imports avoid I/O, clocks and logs."""
    assert impure_imports_reachable_from(path) == {}


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import asyncio.events",
        "import os, socket",
        "import time as clock",
        "from time import monotonic",
        "from datetime import datetime as dt",
        "from logging.handlers import RotatingFileHandler",
        "import structlog",
        "from threading import Lock",
        "import select",
        "from selectors import DefaultSelector",
        "def f():\n    import asyncio\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from asyncio import Future\n",
        "try:\n    import uvloop\nexcept ImportError:\n    import asyncio\n",
        "__import__('socket')",
        "import importlib\nimportlib.import_module('time')",
    ],
)
def test_checker_catches_every_import_form(source: str) -> None:
    """The checker flags forbidden modules in every import form, nested or dynamic."""
    assert forbidden_imports(source, "gateway.mqttsn.session")


@pytest.mark.parametrize(
    "source",
    [
        "import timeit",
        "import socketserver_like",
        "from gateway.mqttsn import codec",
        "from . import codec",
        "from .time import something",
        "from gateway.errors import GatewayError",
        "import dataclasses, enum, struct, collections.abc",
        "x = 'import asyncio'",
    ],
)
def test_checker_allows_lookalikes(source: str) -> None:
    """Names that merely resemble a forbidden module, or relative package modules, are allowed."""
    assert forbidden_imports(source, "gateway.mqttsn.session") == set()


def test_checker_resolves_relative_imports() -> None:
    """Relative imports are resolved against the importing module's package."""
    names = imported_modules(
        "from .packets import Publish\nfrom .. import errors", "gateway.mqttsn.codec"
    )
    assert {
        "gateway.mqttsn.packets",
        "gateway.mqttsn.packets.Publish",
        "gateway",
        "gateway.errors",
    } <= names
