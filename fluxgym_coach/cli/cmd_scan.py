"""``fluxgym-coach scan DATASET``: index the images and captions of a folder."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..dataset import Dataset, DatasetError
from ..plugins.loader import scan_with_plugins
from .common import esc, EXIT_USAGE, err, fail, out, print_json, progress_sink
from .options import Json, Quiet, Strict


def scan(
    dataset: Annotated[Path, typer.Argument(help="Folder of images with <stem>.txt captions.")],
    json_out: Json = False,
    strict: Strict = False,
    quiet: Quiet = False,
) -> None:
    """Scan a dataset folder into its store (DATASET/.fluxgym-coach/).

    Reads every png, jpg, jpeg, webp, bmp, tif/tiff and gif (first frame) in
    any letter case, recursively (hidden folders skipped), and records size,
    digest, dimensions, format, EXIF orientation, perceptual hash, grayscale
    flag, sharpness and the caption sidecar. A second scan only re-reads what
    changed, so it is cheap to run again. When the dataset has plugins set up
    (`fluxgym-coach plugins add`), they are told about new and removed images;
    a plugin folder named by the dataset runs only once you trusted it
    (`fluxgym-coach plugins trust FOLDER`). Only regular files are read (a
    FIFO, a device, a link to a folder or a file over 512 MiB named like an
    image is reported by name; a real folder named x.png is scanned as a
    folder); unreadable files found by an earlier scan are reported again on
    every run. Exit code 1 when a file cannot be read (or, with --strict,
    when a caption was not UTF-8).

    Example: fluxgym-coach scan ./photos
    """
    try:
        ds = Dataset(dataset)
    except DatasetError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    with ds, progress_sink(quiet or json_out) as sink:
        report = asyncio.run(scan_with_plugins(ds, sink))
        records = ds.images()
    if json_out:
        print_json({
            "dataset": str(ds.root), "images": report.total, "added": report.added,
            "updated": report.updated, "captions_updated": report.captions_updated,
            "removed": report.removed, "unchanged": report.unchanged, "errors": report.errors,
            "warnings": report.warnings, "seconds": round(report.seconds, 3),
            "captioned": sum(1 for r in records if r.caption and r.caption.strip()),
        })
    else:
        table = Table(title=f"Scan of {esc(ds.root)}", show_header=False)
        table.add_row("images", str(report.total))
        table.add_row("added / updated / removed", f"{len(report.added)} / {len(report.updated)} / "
                                                    f"{len(report.removed)}")
        table.add_row("unchanged (not re-read)", str(report.unchanged))
        table.add_row("with a caption", str(sum(1 for r in records if r.caption and r.caption.strip())))
        table.add_row("black-and-white", str(sum(1 for r in records if r.is_grayscale)))
        table.add_row("unreadable", str(len(report.errors)))
        table.add_row("time", f"{report.seconds:.2f} s")
        out.print(table)
        for rel, reason in report.errors.items():
            err.print(f"[red]unreadable[/] {esc(rel)}: {esc(reason)}")
        for rel, reason in report.warnings.items():
            err.print(f"[yellow]warning[/] {esc(rel)}: {esc(reason)}")
    code = 1 if report.errors or (strict and report.warnings) else 0
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the ``scan`` command."""
    app.command("scan")(scan)
