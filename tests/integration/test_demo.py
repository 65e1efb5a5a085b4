"""`edge-gateway demo`: the gateway and the smart-home fleet in one command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


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
