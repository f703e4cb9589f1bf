"""``fluxgym-coach audit DATASET``: quality findings per image, usable as a check in scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..audit import ERROR, INFO, WARNING, Thresholds, audit_dataset
from ..dataset import Dataset, DatasetError
from .common import esc, EXIT_USAGE, err, fail, out, print_json, progress_sink
from .options import Json, Quiet, Strict

_DEFAULTS = Thresholds()
_STYLE = {ERROR: "bold red", WARNING: "yellow", INFO: "dim"}


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def audit(
    dataset: Annotated[Path, typer.Argument(help="Folder of images with <stem>.txt captions.")],
    resolution: Annotated[int, typer.Option("--resolution", min=256, max=4096,
                                            help="Training resolution (kohya's side length, px).")] = 1024,
    trigger: Annotated[Optional[str], typer.Option("--trigger", help="Trigger word the captions must "
                                                   "start with (default: the one `caption --trigger` "
                                                   "saved).", show_default=False)] = None,
    no_captions: Annotated[bool, typer.Option("--no-captions", help="Skip the caption rules "
                                              "(for a folder not captioned yet).")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List info findings too.")] = False,
    blur: Annotated[float, typer.Option("--blur-threshold", help="Variance of Laplacian (256 px copy) "
                                        "below which an image is blurry.")] = _DEFAULTS.blur_variance,
    near: Annotated[int, typer.Option("--near-distance", min=0, max=64,
                                      help="Largest pHash Hamming distance (bits) of near "
                                           "duplicates.")] = _DEFAULTS.near_duplicate_distance,
    json_out: Json = False,
    strict: Strict = False,
    quiet: Quiet = False,
) -> None:
    """Audit a dataset: findings per image with the measured value, threshold and fix.

    Checks: unreadable files, resolution (how much kohya would upscale, the
    bucket and its crop), blur, exposure, black-and-white, aspect ratio,
    low information, alpha/CMYK/16-bit/animated/EXIF-rotated files, exact and
    near duplicates (with a suggested keeper) and the caption rules. Scans
    first (only changed files are read); a second audit decodes nothing.

    Exit code: 0 clean, 1 when an image has an error finding (or, with
    --strict, a warning), 2 when the folder cannot be used.
    """
    try:
        ds = Dataset(dataset)
    except DatasetError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    th = Thresholds(blur_variance=blur, near_duplicate_distance=near)
    with ds, progress_sink(quiet or json_out) as sink:
        report = audit_dataset(ds, resolution=resolution, thresholds=th, trigger=trigger,
                               caption_rules=not no_captions, on_event=sink)
    code = report.exit_code(strict)
    if json_out:
        data = report.to_dict()
        data["dataset"] = str(ds.root)
        data["exit_code"] = code
        print_json(data)
        raise typer.Exit(code)
    limit = INFO if show_all else WARNING
    table = Table(title=f"Audit of {esc(ds.root)} at resolution {resolution}")
    for col in ("image", "severity", "finding", "value", "threshold", "fix"):
        table.add_column(col, overflow="fold")
    shown = 0
    for rel in report.flagged(limit):
        for f in report.images[rel].findings:
            if show_all or f.severity != INFO:
                table.add_row(esc(rel), f"[{_STYLE[f.severity]}]{f.severity}[/]", esc(f"{f.code}: {f.message}"),
                              esc(_fmt(f.value)), esc(_fmt(f.threshold)), esc(f.fix))
                shown += 1
    if shown:
        out.print(table)
    for g in report.groups:
        out.print(f"[bold]{g.kind} duplicates[/] (keep {esc(g.keeper)}): {esc(', '.join(g.members))}")
    c = report.counts()
    out.print(f"{len(report.images)} images: {c[ERROR]} with errors, {c[WARNING]} with warnings, "
              f"{c[INFO] + c['clean']} fine; {len(report.groups)} duplicate groups; "
              f"{report.measured} measured now, {report.seconds:.2f} s")
    if not report.caption_rules and not no_captions:
        err.print("[yellow]note[/] caption rules unavailable (fluxgym_coach.captions missing)")
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command."""
    app.command("audit")(audit)
