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
        example = example.strip()
        # one line of an 80-column help page (78 columns of text, "Example: " included)
        assert len("Example: " + example) <= 78, f"{example!r} wraps on an 80-column terminal"
        words = shlex.split(example)
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


#: Top-level summaries longer than one line of the root help at 80 columns, in files other
#: sessions own; the test fails once one fits, so the list cannot go stale.
LONG_SUMMARIES = {"check", "enhance"}


def test_the_root_help_lists_each_command_on_one_line_at_80_columns():
    result = CliRunner().invoke(app, ["--help"], terminal_width=80)
    for name in _root.list_commands(_root.context_class(_root, info_name=ROOT_NAME)):
        cmd = _root.get_command(_root.context_class(_root, info_name=ROOT_NAME), name)
        if cmd.hidden:
            continue
        summary = (cmd.help or "").strip().split("\n\n")[0]
        fits = len(summary) <= 66  # the root's command table leaves 66 columns for the text
        assert fits != (name in LONG_SUMMARIES), f"{name}: {len(summary)} characters: {summary!r}"
        if fits:
            assert any(line.strip("│ ").startswith(f"{name} ") and summary in line
                       for line in result.output.splitlines()), f"{name}'s summary wraps"


@pytest.mark.parametrize("path,cmd,ctx", [p for p in PAGES if p[0] and hasattr(p[1], "list_commands")],
                         ids=[i for i, p in zip(IDS, PAGES) if p[0] and hasattr(p[1], "list_commands")])
def test_a_groups_commands_are_listed_one_line_each_at_80_columns(path, cmd, ctx):
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=80)
    lines = result.output.splitlines()
    for name in cmd.list_commands(ctx):
        summary = (cmd.get_command(ctx, name).help or "").strip().split("\n\n")[0]
        assert any(summary in line for line in lines), f"{' '.join(path)} {name}: {summary!r} wraps"


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


@pytest.mark.parametrize("path,cmd,ctx", [p for p in PAGES if p[0]], ids=IDS[1:])
def test_every_option_and_argument_says_what_it_is(path, cmd, ctx):
    bare = [p.opts[0] for p in cmd.params if p.name != "help" and not getattr(p, "help", None)]
    assert not bare, f"{' '.join(path)}: no help text for {bare}"


#: Options shared by several commands: each has one declaration (cli/options.py), so the
#: same name means the same thing everywhere. ``{option: {command path: why it differs}}``
#: lists the known exceptions, each owned by another session (see the report).
SHARED = ("--api-url", "--api-auth", "--cache-dir", "--json", "--quiet", "--backend")
KNOWN_DIFFERENT = {
    "--backend": {"caption": "the captioner (draft, forge, openai...), not the enhancement backend",
                  "tags propose": "the captioner that proposes tags"},
    "--api-auth": {"fake-forge": "the fake server's own setting (users it accepts)"},
    "--json": {"buckets": "cmd_buckets.py: its own wording", "check": "cmd_check.py: its own wording"},
}


@pytest.mark.parametrize("option", SHARED)
def test_shared_options_are_declared_once(option):
    seen = {}
    for path, cmd, _ in PAGES:
        for p in cmd.params:
            if option in p.opts:
                seen[" ".join(path)] = (tuple(p.opts), p.multiple, p.envvar, p.help)
    exceptions = KNOWN_DIFFERENT.get(option, {})
    usual = {v for k, v in seen.items() if k not in exceptions}
    assert len(seen) >= 2 and len(usual) == 1, f"{option} declared {len(usual)} ways: {usual}"
    for path in exceptions:  # an exception that became the shared declaration must leave the list
        assert path in seen and seen[path] not in usual, f"{option} on {path} is now shared: drop it"


def test_api_url_values_split_on_commas_and_spaces():
    from fluxgym_coach.cli.options import split_urls

    assert split_urls(["http://a:1,http://b:2", " http://c:3  http://d:4 "]) == [
        "http://a:1", "http://b:2", "http://c:3", "http://d:4"]
    assert split_urls(None) is None and split_urls([" , "]) is None


def test_version_imports_no_command_and_no_core():
    """``--version`` stays fast by importing nothing but the CLI's root (lazy commands)."""
    code = ("import sys\nsys.argv = ['fluxgym-coach', '--version']\nfrom fluxgym_coach.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('fluxgym_coach', 'PIL', 'numpy')))))")
    root = Path(__file__).parent.parent
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    version_line, loaded = proc.stdout.splitlines()
    assert version_line.startswith("fluxgym-coach ")
    assert set(loaded.split()) <= {"fluxgym_coach", "fluxgym_coach.cli"}, loaded
