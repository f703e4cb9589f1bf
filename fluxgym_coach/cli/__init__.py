"""The ``fluxgym-coach`` command (Typer).

Each sub-command lives in a module ``cmd_<name>.py`` of this package that
defines ``register(app: typer.Typer) -> None``; modules are discovered at
start-up, so adding a command never means editing a shared file. Front-end
code only: every command calls the core and presents its result.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from .. import __version__

app = typer.Typer(
    name="fluxgym-coach",
    help=(
        "Prepare image datasets for FLUX LoRA training with Fluxgym / kohya sd-scripts.\n\n"
        "Typical session:  fluxgym-coach prepare ./photos --out ~/fluxgym --trigger ohwx\n\n"
        "That scans the folder, upscales images below the training resolution, puts the "
        "trigger word first in every caption (alone where one is missing: write those with "
        "`tui` or `caption`), and writes datasets/<name>/ and outputs/<name>/ (dataset.toml, "
        "train.sh) where Fluxgym and sd-scripts read them. Originals are never modified.\n\n"
        "Something not working? fluxgym-coach doctor --api-url URL --fluxgym DIR"
    ),
    no_args_is_help=True,
    add_completion=False,
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


def _register_all() -> None:
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not mod.name.startswith("cmd_"):
            continue
        try:
            module = importlib.import_module(f"{__name__}.{mod.name}")
            module.register(app)
        except Exception as exc:  # one broken command must not take the others down
            sys.stderr.write(f"fluxgym-coach: the {mod.name[4:]!r} command is unavailable: "
                             f"{type(exc).__name__}: {exc}\n")


_register_all()


def main() -> None:
    """Entry point of the console script."""
    app()
