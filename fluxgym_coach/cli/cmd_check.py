"""``fluxgym-coach check DIR/outputs/NAME/dataset.toml``: what kohya will train on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..export.preflight import PreflightError, check_dataset_config
from .common import EXIT_FAILED, EXIT_USAGE, err, fail, out, print_json


def check(
    toml: Annotated[Path, typer.Argument(help="The dataset.toml of an export (DIR/outputs/NAME/dataset.toml).")],
    fluxgym: Annotated[Optional[Path], typer.Option(
        "--fluxgym", help="Fluxgym folder (default: two levels above the toml's folder).")] = None,
    simulate: Annotated[bool, typer.Option(
        "--simulate", help="Use fluxgym-coach's simulator even where sd-scripts is installed.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Pre-flight a training run: images, captions, buckets, crops and steps as kohya sees them.

    With Fluxgym's sd-scripts/ and env/ present, runs sd-scripts' own config
    parser, dataset construction and bucketing in that environment (no model
    weights are opened); otherwise says so and uses fluxgym-coach's kohya
    simulator (marked "simulator"). Exits 1 when kohya would find no image.

    Example: fluxgym-coach check ~/fluxgym/outputs/my-style/dataset.toml
    """
    try:
        data = check_dataset_config(toml, fluxgym, use_sd_scripts=not simulate)
    except PreflightError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if json_out:
        print_json(data)
    else:
        if data["engine_note"]:
            err.print(f"[yellow]note[/]: {escape(data['engine_note'])}", highlight=False)
        summary = Table(title=f"kohya pre-flight ({data['engine']})", show_header=False)
        for key in ("images_found", "captions_read", "steps_per_epoch", "epochs", "total_steps"):
            summary.add_row(key.replace("_", " "), str(data[key]))
        summary.add_row("buckets", ", ".join(f"{k}: {v}" for k, v in data["buckets"].items()) or "none")
        out.print(summary)
        # rescaled (resized != size) or cropped (bucket != resized): either changes what trains
        cropped = [im for im in data["images"]
                   if "bucket" in im and (im["bucket"] != im["resized"] or im["resized"] != im["size"])]
        if cropped:
            table = Table(title="cropped or rescaled by kohya")
            for col in ("image", "size", "resized", "bucket"):
                table.add_column(col, overflow="fold")
            for im in cropped:
                table.add_row(escape(Path(im["path"]).name), *("x".join(map(str, im[k])) for k in ("size", "resized", "bucket")))
            out.print(table)
    if data["images_found"] == 0:
        err.print(f"[red]kohya would find no image[/] for {escape(str(toml))}: check image_dir "
                  "(relative to the Fluxgym folder) and export again", highlight=False)
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add the ``check`` command."""
    app.command("check")(check)
