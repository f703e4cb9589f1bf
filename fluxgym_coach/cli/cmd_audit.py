"""``fluxgym-coach audit DATASET``: quality findings per image, usable as a check in scripts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import core
from ..audit.rules import ERROR, INFO, WARNING, Thresholds
from ..dataset import Dataset, DatasetError
from . import audit_output
from .common import EXIT_USAGE, err, fail, out, progress_sink
from .options import Json, Quiet, Strict, TriggerCheck

_DEFAULTS = Thresholds()


def audit(
    dataset: Annotated[Path, typer.Argument(help="Folder of images with <stem>.txt captions.")],
    resolution: Annotated[Optional[int], typer.Option(
        "--resolution", "-r", min=256, max=4096, show_default=False,
        help="Training resolution (kohya's side length, px). Default: the dataset's saved one "
             "(from `export` or `prepare`), else 1024.")] = None,
    trigger: TriggerCheck = None,
    no_captions: Annotated[bool, typer.Option("--no-captions", help="Skip the caption rules "
                                              "(for a folder not captioned yet).")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List every finding, info included, one "
                                           "line each (through a pager on a terminal). Without "
                                           "it, more than 50 findings are summarised by code.")] = False,
    blur: Annotated[float, typer.Option("--blur-threshold", help="Variance of Laplacian (256 px copy) "
                                        "below which an image is blurry.")] = _DEFAULTS.blur_variance,
    near: Annotated[int, typer.Option("--near-distance", min=0, max=64,
                                      help="Largest pHash Hamming distance (bits) of near "
                                           "duplicates.")] = _DEFAULTS.near_duplicate_distance,
    json_out: Json = False,
    strict: Strict = False,
    quiet: Quiet = False,
) -> None:
    """Audit a dataset: findings per image, with measures and fixes.

    Each finding has the measured value, the threshold and the fix.

    Checks: unreadable files, resolution (how much kohya would upscale, the
    bucket and its crop), blur, exposure, black-and-white, aspect ratio,
    low information, alpha/CMYK/16-bit/animated/EXIF-rotated files, exact and
    near duplicates (with a suggested keeper) and the caption rules. Scans
    first (only changed files are read); a second audit decodes nothing.

    Up to 50 findings print as a table; more are summarised by finding code
    (count, a few names, the fix) with the first duplicate groups; --all
    lists everything, --json streams the full report.

    Exit code: 0 clean, 1 when an image has an error finding (or, with
    --strict, a warning), 2 when the folder cannot be used.

    Example: fluxgym-coach audit ./photos --resolution 1024 --trigger ohwx
    """
    try:
        ds = Dataset(dataset)
    except DatasetError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    th = Thresholds(blur_variance=blur, near_duplicate_distance=near)
    with ds, progress_sink(quiet or json_out) as sink:
        # the core's job: plugins hear of the images the scan indexes; defaults from the settings
        report = asyncio.run(core.audit_dataset(ds, resolution=resolution, thresholds=th, trigger=trigger,
                                                caption_rules=not no_captions, on_event=sink))
    code = report.exit_code(strict)
    if json_out:
        audit_output.stream_json(report, {"dataset": str(ds.root), "exit_code": code})
        raise typer.Exit(code)
    title = f"Audit of {ds.root} at resolution {report.resolution}"
    if show_all:
        audit_output.print_all(report)
    else:
        total = sum(1 for _ in audit_output.rows(report, show_info=False))
        if total <= audit_output.TABLE_ROWS:
            audit_output.print_table(report, title, show_info=False)
            audit_output.print_groups(report, None)
        else:
            audit_output.print_summary(report, title, False, total)
            audit_output.print_groups(report, audit_output.SHOWN_GROUPS)
    c = report.counts()
    (err if show_all else out).print(f"{len(report.images)} images: {c[ERROR]} with errors, {c[WARNING]} with warnings, "
              f"{c[INFO] + c['clean']} fine; {len(report.groups)} duplicate groups; "
              f"{report.measured} measured now, {report.seconds:.2f} s")
    if not report.caption_rules and not no_captions:
        err.print("[yellow]note[/] caption rules unavailable (fluxgym_coach.captions.text missing)")
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command."""
    app.command("audit")(audit)
