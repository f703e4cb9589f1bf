"""``fluxgym-coach report DATASET --out report.html``: a self-contained HTML audit report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..dataset import Dataset, DatasetError
from ..audit.report import write_report
from .common import esc, EXIT_FAILED, EXIT_OK, EXIT_USAGE, err, fail, out, print_json, progress_sink
from .options import Json, Quiet, TrainResolution, TriggerCheck


def report(
    dataset: Annotated[Path, typer.Argument(help="Folder of images with <stem>.txt captions.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("report.html"),
    resolution: TrainResolution = 1024,
    trigger: TriggerCheck = None,
    max_thumbnails: Annotated[int, typer.Option("--max-thumbnails", min=0,
                                                help="Most thumbnails embedded (flagged images first).")] = 2000,
    json_out: Json = False,
    quiet: Quiet = False,
) -> None:
    """Write one HTML page: findings, duplicates, captions, readiness.

    One page with the findings, duplicate groups side by side, caption
    statistics and the export readiness; thumbnails are embedded, so the file
    can be copied off a headless box and opened anywhere.

    Exit code: 0 when the dataset is ready to export, 1 when a blocking check
    fails (the report is written either way), 2 when the folder or the output
    path cannot be used.

    Example: fluxgym-coach report ./photos --out report.html --trigger ohwx
    """
    try:
        ds = Dataset(dataset)
    except DatasetError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    try:
        with ds, progress_sink(quiet or json_out) as sink:
            result = write_report(ds, out_path, resolution=resolution, trigger=trigger,
                                  max_thumbnails=max_thumbnails, on_event=sink)
    except OSError as exc:
        raise fail(f"{out_path}: cannot write the report ({exc.strerror or exc})", EXIT_USAGE) from None
    code = EXIT_OK if result.ready else EXIT_FAILED
    if json_out:
        print_json({"report": str(result.path.resolve()), "ready": result.ready,
                    "thumbnails": result.thumbnails, "counts": result.audit.counts(),
                    "checks": [{"name": c.name, "ok": c.ok, "blocking": c.blocking, "detail": c.detail}
                               for c in result.checks]})
        raise typer.Exit(code)
    out.print(f"report written: {esc(result.path.resolve())} ({result.thumbnails} thumbnails)")
    for c in result.checks:
        if not c.ok:
            err.print(f"[{'red' if c.blocking else 'yellow'}]{esc(c.name)}[/]: {esc(c.detail)}")
    out.print("ready to export" if result.ready else "not ready to export")
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the ``report`` command."""
    app.command("report")(report)
