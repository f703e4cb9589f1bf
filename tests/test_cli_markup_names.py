"""File names that look like Rich markup print as themselves in every CLI output
(a name like ``[bold red]m[blink] x.png`` used to print as ``m x.png``)."""

import shutil

from typer.testing import CliRunner

from fluxgym_coach.cli import app

runner = CliRunner()
NAME = "[bold red]m[blink] x.png"
BROKEN = "[red]broken[reverse].png"


def _flat(text: str) -> str:
    return " ".join(text.split())


def _hostile_dataset(example_dataset):
    shutil.copy(example_dataset / "horse.png", example_dataset / NAME)
    (example_dataset / BROKEN).write_bytes(b"not an image")
    return example_dataset


def test_scan_audit_export_print_names_as_they_are(example_dataset, tmp_path):
    root = _hostile_dataset(example_dataset)
    r = runner.invoke(app, ["scan", str(root)])
    assert BROKEN in _flat(r.output), r.output  # the unreadable file, by its real name
    r = runner.invoke(app, ["audit", str(root), "--all"])
    # table cells wrap at the space: both halves as typed, and nothing swallowed
    assert "[bold red]m[blink]" in r.output and "[red]broken[reverse]." in r.output, r.output
    r = runner.invoke(app, ["export", str(root), "-o", str(tmp_path / "fg"), "-t", "ohwx"])
    assert NAME in _flat(r.output), r.output  # "below resolution" warning names it
    r = runner.invoke(app, ["captions", "status", str(root)])
    assert NAME in r.output
    r = runner.invoke(app, ["review", str(root)])
    assert NAME in r.output


def test_errors_print_paths_as_they_are(tmp_path):
    missing = tmp_path / "[bold]nothing[/bold]"
    r = runner.invoke(app, ["scan", str(missing)])
    assert r.exit_code == 2 and "[bold]nothing[/bold]" in _flat(r.output)
