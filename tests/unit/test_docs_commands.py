"""Every command the documentation shows still parses, and every EGW_ variable it names exists.

Commands are taken from fenced ``sh``/``bash``/``console``/``shell`` blocks and from inline code
spans of README.md and docs/*.md. Each ``edge-gateway``/``sensor-sim`` invocation (also through
``python3 -m gateway``/``python3 -m sensor_sim``) is parsed by the real click command chain and
each ``python3 bench/X.py`` line by that script's argparse parser; nothing is executed. Synopsis
brackets (``[--flag VALUE]``) are checked as if given; a command that elides arguments with
``...`` may leave required ones out. A failure names the file and line to fix.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from typer.main import get_command

from gateway.cli import app as gateway_app
from gateway.config import Settings
from sensor_sim.cli import app as sensor_sim_app

try:  # recent typer runs on its own copy of click: its exceptions are the ones raised
    from typer._click import exceptions as cli_errors
except ImportError:  # older typer runs on click itself
    from click import exceptions as cli_errors  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_FENCES = {"sh", "bash", "console", "shell"}
PROGRAMS = {"edge-gateway": gateway_app, "sensor-sim": sensor_sim_app}
PYTHON_MODULES = {"gateway": "edge-gateway", "sensor_sim": "sensor-sim"}
WRAPPERS = {"sudo", "exec", "time", "env"}
WRAPPERS_WITH_ARGUMENT = {"timeout": 1, "nice": 2}  # `timeout 60 ...`, `nice -n 10 ...`
OPERATORS = {"&&", "||", ";", "|", "&"}
ELLIPSES = {"...", "…"}
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w-]*)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
EGW_NAME = re.compile(r"\bEGW_[A-Z0-9_]*\*?")
SMOKE_VARIABLE = re.compile(r"\$\{(EGW_[A-Z0-9_]+)|environ\.get\(\"(EGW_[A-Z0-9_]+)")
BENCH_LINE = re.compile(r"python3?\s+(?:\./)?bench/\w+\.py[^`|\n]*")
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*(\.\w+)?")  # SECONDS, URL, FILE.jsonl


@dataclass(frozen=True)
class DocCommand:
    """One invocation found in a document: which program, its arguments, where it was."""

    where: str  # "docs/x.md:12"
    text: str
    program: str  # "edge-gateway", "sensor-sim" or "bench/X.py"
    args: tuple[str, ...]
    partial: bool  # from prose or a synopsis: required arguments may be left out


def _strip_comment(line: str) -> str:
    """The line without a trailing shell comment (``#`` outside quotes, at a word start)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def _command_lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, command text, inline?) from shell fences and inline code spans."""
    lines = path.read_text(encoding="utf-8").splitlines()
    fence = ""
    language = ""
    pending: tuple[int, str] | None = None
    for number, line in enumerate(lines, start=1):
        match = FENCE.match(line)
        if match and (not fence or match.group(1).startswith(fence)):
            fence, language = ("", "") if fence else (match.group(1), match.group(2).lower())
            continue
        if fence:
            if language not in SHELL_FENCES:
                continue
            text = line.strip()
            if language == "console":
                if pending is None and not text.startswith("$ "):
                    continue  # program output
                text = text.removeprefix("$ ")
            start, joined = pending if pending is not None else (number, "")
            if text.endswith("\\"):
                pending = (start, joined + text[:-1] + " ")
                continue
            pending = None
            yield start, joined + text, False
        else:
            for span in INLINE_CODE.findall(line):
                yield number, span, True


def _unwrap(token: str) -> str:
    """A synopsis token without its optional-group brackets: ``[--flag`` -> ``--flag``."""
    return token.lstrip("[").rstrip("]") if token not in ("[", "]") else ""


def _invocations(where: str, text: str, inline: bool) -> Iterator[DocCommand]:
    """The edge-gateway, sensor-sim and bench invocations in one shell line."""
    try:
        tokens = shlex.split(_strip_comment(text))
    except ValueError:
        return  # not shell (an unbalanced quote in prose)
    segment: list[str] = []
    for token in [*tokens, ";"]:
        if token not in OPERATORS:
            segment.append(token)
            continue
        found = _invocation(where, text, segment, inline)
        if found is not None:
            yield found
        segment = []


def _invocation(where: str, text: str, words: list[str], inline: bool) -> DocCommand | None:
    index = 0
    while index < len(words):
        word = words[index]
        if ASSIGNMENT.match(word) or word in WRAPPERS:
            index += 1
        elif word in WRAPPERS_WITH_ARGUMENT:
            index += 1 + WRAPPERS_WITH_ARGUMENT[word]
        else:
            break
    words = words[index:]
    if not words:
        return None
    program, rest = words[0], words[1:]
    if re.fullmatch(r"python3?(\.\d+)?", program) and rest:
        if rest[0] == "-m" and len(rest) > 1 and rest[1] in PYTHON_MODULES:
            program, rest = PYTHON_MODULES[rest[1]], rest[2:]
        elif re.fullmatch(r"(\./)?bench/\w+\.py", rest[0]):
            program, rest = rest[0].removeprefix("./"), rest[1:]
    if program not in PROGRAMS and not program.startswith("bench/"):
        return None
    if program.startswith("bench/") and words[0] == program:
        return None  # a path in prose, not a command
    args = [_unwrap(word) for word in rest]
    elided = any(word in ELLIPSES for word in args)
    args = [word for word in args if word and word not in ELLIPSES]
    if not args and program in PROGRAMS:
        return None  # the bare program name, as prose
    return DocCommand(where, text.strip(), program, tuple(args), elided or inline)


def _doc_commands() -> list[DocCommand]:
    """Every invocation; bench lines also from plain fences, indented code and table cells."""
    found: dict[tuple[str, str, tuple[str, ...]], DocCommand] = {}
    for path in DOCS:
        relative = path.relative_to(ROOT).as_posix()
        for number, text, inline in _command_lines(path):
            for command in _invocations(f"{relative}:{number}", text, inline):
                found.setdefault((command.where, command.program, command.args), command)
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            for text in BENCH_LINE.findall(line):
                for command in _invocations(f"{relative}:{number}", text, inline=True):
                    found.setdefault((command.where, command.program, command.args), command)
    return list(found.values())


COMMANDS = _doc_commands()
CLI_COMMANDS = [command for command in COMMANDS if command.program in PROGRAMS]
BENCH_COMMANDS = [command for command in COMMANDS if command.program.startswith("bench/")]


def _parse_cli(command: DocCommand) -> dict[str, Any]:
    """Parse the arguments with the real click command chain, without invoking anything."""
    group = get_command(PROGRAMS[command.program])
    current: Any = group
    name = command.program
    args = list(command.args)
    parent: Any = None
    while hasattr(current, "get_command") and args and not args[0].startswith("-"):
        parent = current.context_class(current, info_name=name, parent=parent)
        sub = current.get_command(parent, args[0])
        if sub is None:
            raise cli_errors.UsageError(f"no such command {args[0]!r} in {name!r}")
        name, current, args = args[0], sub, args[1:]
    args, placeholders = _without_placeholders(args)
    options = {opt for param in current.params for opt in (*param.opts, *param.secondary_opts)}
    for option in placeholders:
        if option not in options:
            raise cli_errors.UsageError(f"no such option: {option}")
    try:
        with current.make_context(name, args, parent=parent, resilient_parsing=False) as ctx:
            return dict(ctx.params)
    except typer.Exit as exc:  # --version, --help
        if exc.exit_code != 0:
            raise
        return {}
    except cli_errors.MissingParameter:
        if command.partial or placeholders:
            return {}
        raise


def _without_placeholders(args: list[str]) -> tuple[list[str], list[str]]:
    """(args without ``--option PLACEHOLDER`` pairs, those options): a synopsis value such as
    ``--duration SECONDS`` names the option, it is not a value to convert."""
    kept: list[str] = []
    options: list[str] = []
    index = 0
    while index < len(args):
        word = args[index]
        following = args[index + 1] if index + 1 < len(args) else ""
        if word.startswith("-") and PLACEHOLDER.fullmatch(following):
            options.append(word)
            index += 2
        else:
            kept.append(word)
            index += 1
    return kept, options


class _Parsed(Exception):
    """Raised by the patched ArgumentParser.parse_args to stop a script's main()."""

    def __init__(self, namespace: argparse.Namespace) -> None:
        super().__init__()
        self.namespace = namespace


def _bench_module(script: str) -> ModuleType:
    path = ROOT / script
    assert path.is_file(), f"{script} does not exist"
    name = f"_doc_bench_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _parse_bench(
    command: DocCommand, monkeypatch: pytest.MonkeyPatch
) -> argparse.Namespace:
    """The script's own parse_args(argv), or its main() stopped right after parsing."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the scripts put bench/ on it
    module = _bench_module(command.program)
    parse_args = getattr(module, "parse_args", None)
    if callable(parse_args):
        namespace = parse_args(list(command.args))
        assert isinstance(namespace, argparse.Namespace)
        return namespace
    original = argparse.ArgumentParser.parse_args

    def stop_after_parsing(self: argparse.ArgumentParser, *a: Any, **kw: Any) -> Any:
        raise _Parsed(original(self, *a, **kw))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop_after_parsing)
    monkeypatch.setattr(sys, "argv", [command.program, *command.args])
    try:
        module.main()
    except _Parsed as parsed:
        return parsed.namespace
    raise AssertionError(f"{command.program}: main() returned without parsing arguments")


def _without_egw_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's EGW_ variables must not fill in or break the parsed options."""
    for variable in [name for name in os.environ if name.startswith("EGW_")]:
        monkeypatch.delenv(variable)


def test_the_documents_show_commands_of_every_kind() -> None:
    """The extraction finds the README quick start, sensor-sim, bench and console commands."""
    by_text = {command.text for command in COMMANDS}
    assert "python3 -m pip install -e . && edge-gateway run" in by_text
    assert any(command.program == "sensor-sim" and command.args[:1] == ("run",)
               for command in CLI_COMMANDS)
    assert any(command.args[:2] == ("model", "eval") for command in CLI_COMMANDS)
    assert {"bench/mqttsn_ingest.py", "bench/e2e_latency.py"} <= {
        command.program for command in BENCH_COMMANDS
    }


def _ids(commands: list[DocCommand]) -> list[str]:
    return [f"{c.where} {c.program} {' '.join(c.args)}"[:90] for c in commands]


@pytest.mark.parametrize("command", CLI_COMMANDS, ids=_ids(CLI_COMMANDS))
def test_documented_cli_command_parses(
    command: DocCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edge-gateway/sensor-sim command shown in the docs is accepted by the real CLI."""
    _without_egw_environment(monkeypatch)
    try:
        _parse_cli(command)
    except cli_errors.ClickException as exc:
        pytest.fail(f"{command.where}: `{command.text}`: {exc.format_message()}")


@pytest.mark.parametrize("command", BENCH_COMMANDS, ids=_ids(BENCH_COMMANDS))
def test_documented_bench_command_parses(
    command: DocCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The python3 bench/X.py command shown in the docs is accepted by that script's parser."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            _parse_bench(command, monkeypatch)
    except SystemExit as exc:
        pytest.fail(f"{command.where}: `{command.text}`: exit {exc.code}: {stderr.getvalue()}")


def test_a_removed_flag_or_subcommand_is_caught() -> None:
    """The parser used above rejects an unknown flag, subcommand and bad value."""
    for args in (("demo", "--no-such-flag"), ("no-such-command",), ("demo", "--duration", "x")):
        with pytest.raises(cli_errors.ClickException):
            _parse_cli(DocCommand("t", "", "edge-gateway", args, partial=False))
    parsed = _parse_cli(DocCommand("t", "", "sensor-sim", ("run", "smart-home", "--report",
                                                            "r.json", "--duration", "5"), False))
    assert parsed["duration"] == 5.0
    with pytest.raises(cli_errors.MissingParameter):
        _parse_cli(DocCommand("t", "", "sensor-sim", ("run", "smart-home"), partial=False))


def test_a_bad_bench_flag_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A script's parse_args and a parser built inside main() both reject an unknown flag."""
    good = _parse_bench(DocCommand("t", "", "bench/outage.py", ("--outage", "5"), False),
                        monkeypatch)
    assert good.outage == 5.0
    assert _parse_bench(DocCommand("t", "", "bench/mqtt_client_libs.py", ("--link",), False),
                        monkeypatch).link is True
    for script in ("bench/outage.py", "bench/mqtt_client_libs.py"):
        with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
            _parse_bench(DocCommand("t", "", script, ("--no-such-flag",), False), monkeypatch)


def test_extraction_reads_prompts_continuations_comments_and_synopses(tmp_path: Path) -> None:
    """Console prompts, backslash continuations, comments, brackets and `...` are understood."""
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Run `edge-gateway demo [--duration SECONDS]` or `sensor-sim run smart-home ...`.\n"
        "```console\n$ EGW_LOG__LEVEL=debug edge-gateway recognize \\\n"
        "    'lights on'   # a comment\n{\"name\": \"iot_hue_lighton\"}\n```\n"
        "```sh\nnice -n 10 python3 bench/outage.py --rate 10 && mosquitto_sub -t 'edge/#'\n```\n"
        "```json\n{\"edge-gateway\": 1}\n```\n",
        encoding="utf-8",
    )
    found = [
        (number, command.program, command.args, command.partial)
        for number, text, inline in _command_lines(doc)
        for command in _invocations("", text, inline)
    ]
    assert found == [
        (1, "edge-gateway", ("demo", "--duration", "SECONDS"), True),
        (1, "sensor-sim", ("run", "smart-home"), True),
        (3, "edge-gateway", ("recognize", "lights on"), False),
        (8, "bench/outage.py", ("--rate", "10"), False),
    ]


def _setting_names() -> tuple[set[str], set[str]]:
    """(leaf setting variables, section prefixes) of the settings model, e.g. EGW_COAP__PORT."""
    leaves: set[str] = set()
    sections: set[str] = set()
    todo: list[tuple[type[BaseModel], str]] = [(Settings, "EGW_")]
    while todo:
        model, prefix = todo.pop()
        for field, info in model.model_fields.items():
            name = prefix + field.upper()
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                sections.add(name)
                todo.append((annotation, name + "__"))
            else:
                leaves.add(name)
    return leaves, sections


def _cli_envvars() -> set[str]:
    """Environment variables declared by options of edge-gateway and sensor-sim."""
    found: set[str] = set()
    todo: list[Any] = [get_command(app) for app in PROGRAMS.values()]
    while todo:
        command = todo.pop()
        todo.extend(getattr(command, "commands", {}).values())
        for param in command.params:
            envvar = param.envvar
            found.update([envvar] if isinstance(envvar, str) else envvar or [])
    return found


def _unknown_egw_names(text: str, known: set[str], sections: set[str]) -> list[str]:
    unknown: list[str] = []
    for name in EGW_NAME.findall(text):
        if name.endswith("*") or name.endswith("__"):  # EGW_COAP__*, EGW_SPOOL__: a section
            stem = name.rstrip("*").rstrip("_")
            if stem != "EGW" and stem not in sections:
                unknown.append(name)
        elif name != "EGW_" and name not in known:
            unknown.append(name)
    return unknown


def test_every_egw_variable_in_the_docs_exists() -> None:
    """Each EGW_ name in README/docs is a setting, a CLI option's variable or one that
    docker/smoke-test.sh, .ci/run or setup.py (the build) reads."""
    leaves, sections = _setting_names()
    smoke = {
        shell or python
        for script in ("docker/smoke-test.sh", ".ci/run", "setup.py")
        for shell, python in SMOKE_VARIABLE.findall((ROOT / script).read_text("utf-8"))
    }
    known = leaves | _cli_envvars() | set(smoke)
    assert {"EGW_BROKER__URL", "EGW_HTTP__HOST", "EGW_DATA_DIR", "EGW_CONFIG"} <= known
    problems = [
        f"{path.relative_to(ROOT).as_posix()}:{number}: {name}"
        for path in DOCS
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for name in _unknown_egw_names(line, known, sections)
    ]
    assert problems == [], "EGW_ names that are not settings:\n" + "\n".join(problems)


def test_an_unknown_egw_name_is_caught() -> None:
    """A misspelt setting or section is reported; real ones and section wildcards are not."""
    leaves, sections = _setting_names()
    text = "EGW_MQTTSN__PORT EGW_COAP__* EGW_* EGW_ EGW_MQTTSN__PORTS EGW_NOPE__*"
    assert _unknown_egw_names(text, leaves, sections) == ["EGW_MQTTSN__PORTS", "EGW_NOPE__*"]
