"""Every ``--help`` page of the CLI (groups, commands and sub-commands, the hidden
developer servers included) shows a copy-pasteable example whose command path
really exists and whose options parse, and a one-line summary."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fluxgym_coach.cli import app, command_modules

ROOT_NAME = "fluxgym-coach"
#: ``Example: fluxgym-coach ...`` on one line of the rendered page (a wide terminal keeps it whole).
EXAMPLE = re.compile(r"Example:\s+(fluxgym-coach\b[^\n│]*)")

_root = typer.main.get_command(app)


def _walk(cmd, path: tuple[str, ...], ctx):
    yield path, cmd, ctx
    if hasattr(cmd, "list_commands"):  # a group (Typer vendors click: no isinstance on click.Group)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None, f"{' '.join(path + (name,))} is listed but cannot be loaded"
            yield from _walk(sub, path + (name,), cmd.context_class(sub, parent=ctx, info_name=name))


PAGES = list(_walk(_root, (), _root.context_class(_root, info_name=ROOT_NAME)))
IDS = [" ".join(p) or ROOT_NAME for p, _, _ in PAGES]


def _resolve(words: list[str]):
    """``(path, command, rest)``: the command the leading words name, and the words after it."""
    cmd, ctx, path = _root, _root.context_class(_root, info_name=ROOT_NAME), ()
    while words and hasattr(cmd, "list_commands") and not words[0].startswith("-"):
        sub = cmd.get_command(ctx, words[0])
        if sub is None:
            break
        path, cmd, words = path + (words[0],), sub, words[1:]
        ctx = cmd.context_class(cmd, parent=ctx, info_name=path[-1])
    return path, cmd, ctx, words


def test_the_walk_sees_every_command_and_sub_command():
    """The walk is not vacuous: it reaches the commands of every cmd module and the
    sub-commands of the groups, and lists no name that fails to load."""
    top = {p[0] for p, _, _ in PAGES if p}
    assert set(command_modules()) <= top
    assert {("captions", "lint"), ("tags", "merge"), ("plugins", "run"), ("cache", "clear"),
            ("feedback", "import")} <= {p for p, _, _ in PAGES}
    assert len(PAGES) >= 45


@pytest.mark.parametrize("path,cmd,ctx", PAGES, ids=IDS)
def test_every_help_page_has_a_real_example(path, cmd, ctx):
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    examples = EXAMPLE.findall(result.output)
    assert examples, f"`{' '.join((ROOT_NAME,) + path)} --help` shows no 'Example: fluxgym-coach ...'"
    for example in examples:
        words = shlex.split(example.strip())
        assert words[0] == ROOT_NAME
        found, target, tctx, rest = _resolve(words[1:])
        # this command, or on a group's page one of its sub-commands
        assert found[:len(path)] == path and (found == path or hasattr(cmd, "list_commands")), \
            f"example {example!r} runs {' '.join(found) or 'the root'}, not this page's command"
        if hasattr(target, "list_commands") and not rest:
            continue  # a group named alone shows its own help
        # The options and arguments parse as that command declares them (nothing is run).
        target.make_context(found[-1] if found else ROOT_NAME, list(rest), parent=tctx.parent)


@pytest.mark.parametrize("path,cmd,ctx", [p for p in PAGES if p[0]], ids=IDS[1:])
def test_every_summary_is_one_line(path, cmd, ctx):
    """The first paragraph of each help (what a group's command list shows) is one line."""
    text = (cmd.help or "").strip()
    summary = text.split("\n\n")[0]
    assert summary and "\n" not in summary, f"{' '.join(path)}: summary {summary!r} spans lines"
    assert len(summary) <= 100, f"{' '.join(path)}: summary of {len(summary)} characters"


def test_developer_servers_are_hidden_from_the_root_help():
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert "fake-forge" not in result.output and "fake-openai" not in result.output
    assert "prepare" in result.output and "captions" in result.output
    # only real top-level commands are listed (a sub-group's command is not one)
    listed = set(_root.list_commands(_root.context_class(_root, info_name=ROOT_NAME)))
    assert "lint" not in listed and "trust" not in listed


def test_help_through_python_m_names_the_console_script():
    proc = subprocess.run([sys.executable, "-m", "fluxgym_coach", "scan", "--help"], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).parent.parent,
                          env={"PYTHONPATH": str(Path(__file__).parent.parent), "COLUMNS": "200",
                               "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "Usage: fluxgym-coach scan" in proc.stdout
