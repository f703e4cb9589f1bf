"""The ``fluxgym-coach`` command (Typer).

Each sub-command lives in a module ``cmd_<name>.py`` of this package that
defines ``register(app: typer.Typer) -> None``; adding a command never means
editing a shared file. Modules are imported lazily (:class:`LazyCommands`):
``fluxgym-coach scan`` imports ``cmd_scan`` alone, ``--version`` imports no
command, and only the top-level ``--help`` imports them all. Front-end code
only: every command calls the core and presents its result.
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from typer.core import TyperGroup

from .. import __version__

if TYPE_CHECKING:  # annotations only: Typer may vendor its own click, so none is imported at run time
    import click

#: ``app.command("name")`` and ``app.add_typer(..., name="name")`` in a cmd module's source
#: (``app`` alone: a sub-group's ``tags_app.command("list")`` is not a top-level command).
_REGISTERS = re.compile(r'(?<![\w.])app\.command\(\s*"([\w-]+)"'
                        r'|(?<![\w.])app\.add_typer\([^)]*?name\s*=\s*"([\w-]+)"')


@functools.cache
def command_modules() -> dict[str, str]:
    """``{command name: module name}`` read from the source of ``cmd_*.py`` (nothing imported)."""
    found: dict[str, str] = {}
    for path in sorted(Path(__file__).parent.glob("cmd_*.py")):
        names = [a or b for a, b in _REGISTERS.findall(path.read_text(encoding="utf-8"))]
        for name in names or [path.stem[4:].replace("_", "-")]:
            found.setdefault(name, path.stem)
    return found


@functools.cache
def _load(module_name: str) -> dict[str, click.Command]:
    """The click commands that ``cmd_<...>.register`` adds, or {} (error on stderr) when the
    module fails: one broken command must not take the others down."""
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
        holder = typer.Typer()
        holder.callback()(lambda: None)  # a group even for a single command
        module.register(holder)
        group = typer.main.get_group(holder)
        return dict(group.commands)
    except Exception as exc:  # noqa: BLE001 - reported, the other commands still work
        sys.stderr.write(f"fluxgym-coach: the {module_name[4:]!r} command is unavailable: "
                         f"{type(exc).__name__}: {exc}\n")
        return {}


class LazyCommands(TyperGroup):
    """The root group: commands are found by :func:`command_modules` and imported on use.

    It is also the one place where an error a command does not handle itself becomes
    an exit code: a :class:`~fluxgym_coach.errors.FluxgymCoachError` that reaches it is
    printed as ``error: <message>`` on stderr and exits with
    :func:`~fluxgym_coach.cli.common.exit_code_for`'s code (2 for bad input, 3 for a
    backend, 1 for images that failed), never as a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        from ..errors import FluxgymCoachError

        try:
            return super().invoke(ctx)
        except FluxgymCoachError as exc:
            from .common import exit_code_for, fail

            raise fail(str(exc), exit_code_for(exc)) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(command_modules()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = command_modules().get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            for name, command in _load(module).items():
                self.commands.setdefault(name, command)
        return super().get_command(ctx, cmd_name)

app = typer.Typer(
    name="fluxgym-coach",
    help=(
        "Prepare image datasets for FLUX LoRA training with Fluxgym / kohya sd-scripts.\n\n"
        "Example: fluxgym-coach prepare ./photos --out ~/fluxgym --trigger ohwx\n\n"
        "That scans the folder, upscales images below the training resolution, puts the "
        "trigger word first in every caption (alone where one is missing: write those with "
        "`tui` or `caption`), and writes datasets/<name>/ and outputs/<name>/ (dataset.toml, "
        "train.sh) where Fluxgym and sd-scripts read them. Originals are never modified.\n\n"
        "Something not working? fluxgym-coach doctor --api-url URL --fluxgym DIR"
    ),
    no_args_is_help=True,
    add_completion=False,
    cls=LazyCommands,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fluxgym-coach {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Prepare image datasets for FLUX LoRA training."""


def main() -> None:
    """Entry point of the console script (and of ``python -m fluxgym_coach``: the usage
    lines of ``--help`` name ``fluxgym-coach`` either way, so examples copy as they are)."""
    app(prog_name="fluxgym-coach")
