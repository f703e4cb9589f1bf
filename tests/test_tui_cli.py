"""The ``tui`` command's argument checks (the app itself is driven by the Pilot tests)."""

from __future__ import annotations

from typer.testing import CliRunner

from fluxgym_coach.cli import app


def test_tui_rejects_unknown_preview(tui_dataset):
    result = CliRunner().invoke(app, ["tui", str(tui_dataset), "--preview", "ascii-art"])
    assert result.exit_code == 2
    assert "--preview" in result.output and "halfcell" in result.output


def test_tui_preview_env_override_is_checked(tui_dataset, monkeypatch):
    monkeypatch.setenv("FLUXGYM_COACH_PREVIEW", "nonsense")
    result = CliRunner().invoke(app, ["tui", str(tui_dataset)])
    assert result.exit_code == 2 and "nonsense" in result.output


def test_tui_missing_dataset(tmp_path):
    result = CliRunner().invoke(app, ["tui", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "not a folder" in result.output


def test_tui_without_a_terminal_says_so(tui_dataset):
    result = CliRunner().invoke(app, ["tui", str(tui_dataset), "--preview", "off"])
    assert result.exit_code == 2
    assert "needs a terminal" in result.output and "ssh -t" in result.output
