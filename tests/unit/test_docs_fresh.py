"""The committed configuration reference matches the settings model."""

from __future__ import annotations

from pathlib import Path

from gateway.configdoc import REGENERATE_COMMAND, render_configuration_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_reference_is_fresh() -> None:
    """docs/configuration.md equals render_configuration_markdown(); regenerate it when not."""
    expected = render_configuration_markdown()
    assert DOC.is_file(), f"{DOC} is missing; regenerate it with: {REGENERATE_COMMAND}"
    actual = DOC.read_text(encoding="utf-8")
    assert actual == expected, (
        f"{DOC.name} is stale (the settings model changed); regenerate it with: "
        f"{REGENERATE_COMMAND}"
    )


def test_rendering_is_deterministic() -> None:
    """Rendering twice gives the same text, ending in exactly one newline."""
    first = render_configuration_markdown()
    assert first == render_configuration_markdown()
    assert first.endswith("\n") and not first.endswith("\n\n")
