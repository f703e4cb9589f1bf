"""``fluxgym-coach export DATASET --out DIR --name NAME --trigger WORD``: write a Fluxgym dataset."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .. import core
from ..dataset import Dataset, DatasetError
from ..export.fluxgym import DEFAULT_REPEATS, RESOLUTIONS, ExportError, ExportReport
from ..cache import ImageCache
from .common import esc, EXIT_USAGE, fail, out, print_json, progress_sink, report_problems
from .options import CacheDir, Json, Quiet, Strict

OutDir = Annotated[Path, typer.Option(
    "--out", "-o", help="Fluxgym root folder: writes datasets/<name>/ and outputs/<name>/ in it.")]
Trigger = Annotated[str, typer.Option(
    "--trigger", "-t", help="Trigger word: put first in every caption and in dataset.toml.")]
Name = Annotated[Optional[str], typer.Option(
    "--name", "-n", help="LoRA name (default: the name of the dataset's last export, else its folder "
                         "name); slugged as Fluxgym does.",
    show_default=False)]
Resolution = Annotated[int, typer.Option(
    "--resolution", "-r", help=f"Training resolution ({', '.join(map(str, RESOLUTIONS))}): each image "
                               "is written at a bucket size of up to resolution^2 pixels.")]
Repeats = Annotated[int, typer.Option("--repeats", min=1, help="num_repeats in dataset.toml.")]


class VramSize(str, Enum):
    """GPU memory for train.sh's optimizer choice (Fluxgym's VRAM setting)."""

    G20 = "20G"
    G16 = "16G"
    G12 = "12G"


Vram = Annotated[VramSize, typer.Option(
    "--vram", help="GPU memory of the training machine: picks train.sh's optimizer as Fluxgym "
                   "does (20G AdamW 8-bit, 16G Adafactor, 12G Adafactor + split mode).")]
class CropMode(str, Enum):
    """How images are framed for kohya (see fluxgym_coach.export.fluxgym)."""

    ZERO = "zero"
    KOHYA = "kohya"


Crop = Annotated[CropMode, typer.Option(
    "--crop-mode", help="zero: write each image at exactly a bucket size kohya keeps unchanged "
                        "(nothing rescaled or cropped after us; the few pixels the 64-px grid drops "
                        "are chosen faces first); kohya: the old way, short side = resolution and "
                        "kohya's own bucketing rescales and centre-crops.")]
Force = Annotated[bool, typer.Option(
    "--force", help="Replace the images, captions and *.npz caches of an existing export.")]


def export_table(report: ExportReport, title: str = "Export") -> Table:
    """A summary table of an export."""
    table = Table(title=esc(title), show_header=False)
    table.add_column(overflow="fold")
    table.add_column(overflow="fold")
    table.add_row("images exported", str(len(report.files)))
    table.add_row("from an enhanced variant", str(sum(1 for f in report.files if f.variant != "original")))
    table.add_row("captions missing (trigger word as placeholder)", str(len(report.placeholders)))
    table.add_row("below the resolution", str(len(report.below_resolution)))
    table.add_row("skipped (unreadable, or excluded in the review)", str(len(report.skipped)))
    table.add_row("failed", str(len(report.failed)))
    table.add_row("images and captions", esc(report.dataset_dir))
    table.add_row("dataset.toml", esc(report.toml_path))
    if report.train_script is not None:
        where = ("" if report.fluxgym_root else
                 f"  (no sd-scripts/ in {report.root}: run it from a Fluxgym folder holding "
                 "these datasets/ and outputs/)")
        if report.missing_models:
            where = (f"  (models not downloaded yet: {', '.join(report.missing_models)}; "
                     "start one training from Fluxgym's UI, or put the files there)")
        table.add_row("train.sh", esc(f"{report.train_script}{where}"))
    return table


def next_steps(report: ExportReport, dataset: Path) -> list[str]:
    """What to do after an export, as command lines to copy (shown after the tables)."""
    steps = []
    if report.placeholders:
        steps.append(f"write the {len(report.placeholders)} missing captions: fluxgym-coach tui "
                     f"{dataset}  (or: fluxgym-coach caption {dataset} --trigger WORD --backend "
                     "forge|openai|florence2|draft), then run this command again with --force")
    script = report.train_script
    if script is not None:
        if report.fluxgym_root and not report.missing_models:
            steps.append(f"train: bash {script}")
        elif report.fluxgym_root:
            steps.append(f"train: bash {script}  (once Fluxgym has downloaded its models)")
        else:
            steps.append(f"train: copy {report.root / 'datasets'} and {report.root / 'outputs'} into "
                         f"your Fluxgym folder, then bash outputs/{script.parent.name}/train.sh there "
                         "(or export with --out YOUR_FLUXGYM_FOLDER)")
    return steps


def print_next_steps(report: ExportReport, dataset: Path) -> None:
    """Print :func:`next_steps` on stdout."""
    for step in next_steps(report, dataset):
        out.print(f"[bold]next[/]: {escape(step)}", highlight=False)


def export_json(report: ExportReport) -> dict:
    """A JSON-ready dict of an export report."""
    return {"dataset_dir": str(report.dataset_dir), "outputs_dir": str(report.outputs_dir),
            "toml": str(report.toml_path),
            "train_script": str(report.train_script) if report.train_script else None,
            "fluxgym_root": report.fluxgym_root, "missing_models": report.missing_models, "files": [asdict(f) for f in report.files],
            "skipped": report.skipped, "failed": report.failed, "warnings": report.warnings,
            "removed_stale": report.removed_stale}


def run_preflight(report: ExportReport) -> dict | None:
    """In a Fluxgym folder, :func:`~fluxgym_coach.export.preflight.check_dataset_config` on
    the export (sd-scripts' own code when installed); None elsewhere. A failure
    of sd-scripts itself is returned as ``{"error": ...}``."""
    if not report.fluxgym_root:
        return None
    from ..export.preflight import PreflightError, check_dataset_config
    try:
        data = check_dataset_config(report.toml_path, report.root)
    except PreflightError as exc:
        return {"error": str(exc)}
    return {k: data[k] for k in ("engine", "engine_note", "images_found", "captions_read", "buckets",
                                 "steps_per_epoch", "total_steps")}


def export(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (scanned first if needed).")],
    out_dir: OutDir,
    trigger: Trigger,
    name: Name = None,
    resolution: Resolution = 1024,
    repeats: Repeats = DEFAULT_REPEATS,
    vram: Vram = VramSize.G20,
    crop_mode: Crop = CropMode.ZERO,
    force: Force = False,
    cache_dir: CacheDir = None,
    strict: Strict = False,
    json_out: Json = False,
    quiet: Quiet = False,
) -> None:
    """Export a dataset in the layout Fluxgym and kohya train on.

    Writes DIR/datasets/<name>/ (flat, unique ASCII names, RGB png/jpg, EXIF
    orientation applied, each image at exactly a bucket size kohya keeps as it
    is, captions UTF-8 with the trigger word first) and DIR/outputs/<name>/
    (dataset.toml with enable_bucket and bucket_no_upscale, image_dir relative
    to DIR, sample_prompts.txt, manifest.jsonl, and train.sh: Fluxgym's
    training command, to run from DIR when DIR is your Fluxgym folder). The
    export appears all at once (built beside the target, then swapped in).
    Images are never upscaled here: use `prepare` to upscale the small ones.

    Example: fluxgym-coach export ./photos -o ~/fluxgym -n "my style" -t ohwx
    """
    try:
        ds = Dataset(dataset)
    except DatasetError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    with ds, progress_sink(quiet or json_out) as sink:
        scan = core.scan_blocking(ds, sink)  # plugins hear of the images it indexes
        for rel, reason in scan.errors.items():  # found now or by an earlier scan: same exit code
            sink.problems.failures.setdefault(rel, reason)
        try:
            report = asyncio.run(core.export_dataset(
                ds, out_dir, name, trigger, resolution=resolution, repeats=repeats, rescan=False,
                force=force, on_event=sink, cache=ImageCache(cache_dir), vram=vram.value,
                crop_mode=crop_mode.value))
        except ExportError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
    preflight = run_preflight(report)
    if json_out:
        print_json(export_json(report) | {"preflight": preflight})
    else:
        out.print(export_table(report))
        report_problems(sink.problems)
        print_next_steps(report, dataset)
    if preflight is not None and preflight.get("images_found") == 0:
        raise fail(f"kohya would find no image in {escape(str(report.dataset_dir))} ({preflight['engine']} "
                   "pre-flight): nothing was exported; see the failures above", 1)
    raise typer.Exit(sink.problems.exit_code(strict))


def register(app: typer.Typer) -> None:
    """Add the ``export`` command."""
    app.command("export")(export)
