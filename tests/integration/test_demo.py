"""`edge-gateway demo`: the gateway and the smart-home fleet in one command."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

LIVE_HEADER = "sensor-sim smart-home · 9 devices ·"


def test_demo_runs_the_fleet_against_the_gateway_and_reports(tmp_path: Path) -> None:
    """The demo exits 0 and its report shows sensors acknowledged and commands delivered."""
    report = tmp_path / "demo.json"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--duration", "4", "--report", str(report)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(report.read_text())
    assert result["sent"] > 0 and result["lost"] == 0
    assert result["acked"] >= result["sent"] - result["unconfirmed"]
    assert result["commands_received"] >= 1
    assert "commands received" in proc.stdout
    assert LIVE_HEADER not in proc.stdout  # not a terminal: no live view


def test_demo_shows_the_live_view_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal the demo redraws the live view while it runs, then prints the report."""
    controller, terminal = pty.openpty()
    errors = tmp_path / "stderr.txt"
    with errors.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo", "--duration", "3"],
            stdin=subprocess.DEVNULL, stdout=terminal, stderr=stderr,
            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
        )
    os.close(terminal)
    output = bytearray()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert proc.wait(timeout=10) == 0, errors.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
    text = output.decode(errors="replace")
    assert text.count(LIVE_HEADER) >= 3  # redrawn about twice a second for three seconds
    assert "running" in text and "commands received" in text
    assert "sensor-sim smart-home: 9 devices" in text  # the final table
