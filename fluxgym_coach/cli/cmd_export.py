"""``fluxgym-coach export DATASET --out DIR --name NAME --trigger WORD``: write a Fluxgym dataset."""

from __future__ import annotations

from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..dataset import Dataset, DatasetError
from ..export import DEFAULT_REPEATS, RESOLUTIONS, ExportError, ExportReport, export_dataset
from ..image_cache import ImageCache
from .common import EXIT_USAGE, fail, out, print_json, progress_sink, report_problems
from .options import CacheDir, Json, Quiet, Strict

OutDir = Annotated[Path, typer.Option(
    "--out", "-o", help="Fluxgym root folder: writes datasets/<name>/ and outputs/<name>/ in it.")]
Trigger = Annotated[str, typer.Option(
    "--trigger", "-t", help="Trigger word: put first in every caption and in dataset.toml.")]
Name = Annotated[Optional[str], typer.Option(
    "--name", "-n", help="LoRA name (default: the dataset folder name); slugged as Fluxgym does.",
    show_default=False)]
Resolution = Annotated[int, typer.Option(
    "--resolution", "-r", help=f"Training resolution ({', '.join(map(str, RESOLUTIONS))}): images "
                               "are resized so their short side equals it.")]
Repeats = Annotated[int, typer.Option("--repeats", min=1, help="num_repeats in dataset.toml.")]


class VramSize(str, Enum):
    """GPU memory for train.sh's optimizer choice (Fluxgym's VRAM setting)."""

    G20 = "20G"
    G16 = "16G"
    G12 = "12G"


Vram = Annotated[VramSize, typer.Option(
    "--vram", help="GPU memory of the training machine: picks train.sh's optimizer as Fluxgym "
                   "does (20G AdamW 8-bit, 16G Adafactor, 12G Adafactor + split mode).")]
Force = Annotated[bool, typer.Option(
    "--force", help="Replace the images, captions and *.npz caches of an existing export.")]


def export_table(report: ExportReport, title: str = "Export") -> Table:
    """A summary table of an export."""
    table = Table(title=title, show_header=False)
    table.add_column(overflow="fold")
    table.add_column(overflow="fold")
    table.add_row("images exported", str(len(report.files)))
    table.add_row("from an enhanced variant", str(sum(1 for f in report.files if f.variant != "original")))
    table.add_row("captions missing (trigger word as placeholder)", str(len(report.placeholders)))
    table.add_row("below the resolution", str(len(report.below_resolution)))
    table.add_row("skipped (unreadable, or excluded in the review)", str(len(report.skipped)))
    table.add_row("failed", str(len(report.failed)))
    table.add_row("images and captions", str(report.dataset_dir))
    table.add_row("dataset.toml", str(report.toml_path))
    if report.train_script is not None:
        where = ("" if report.fluxgym_root else
                 f"  (no sd-scripts/ in {report.root}: run it from a Fluxgym folder holding "
                 "these datasets/ and outputs/)")
        if report.missing_models:
            where = (f"  (models not downloaded yet: {', '.join(report.missing_models)}; "
                     "start one training from Fluxgym's UI, or put the files there)")
        table.add_row("train.sh", f"{report.train_script}{where}")
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


def export(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (scanned first if needed).")],
    out_dir: OutDir,
    trigger: Trigger,
    name: Name = None,
    resolution: Resolution = 1024,
    repeats: Repeats = DEFAULT_REPEATS,
    vram: Vram = VramSize.G20,
    force: Force = False,
    cache_dir: CacheDir = None,
    strict: Strict = False,
    json_out: Json = False,
    quiet: Quiet = False,
) -> None:
    """Export a dataset to the layout Fluxgym and kohya sd-scripts train on.

    Writes DIR/datasets/<name>/ (flat, unique ASCII names, RGB png/jpg, EXIF
    orientation applied, short side = resolution, captions UTF-8 with the
    trigger word first) and DIR/outputs/<name>/ (dataset.toml with
    enable_bucket = true, sample_prompts.txt, manifest.jsonl, and train.sh:
    Fluxgym's training command, to run from DIR when DIR is your Fluxgym
    folder). Images are never upscaled here: use `prepare` to upscale the
    small ones first.

    Example: fluxgym-coach export ./photos -o ~/fluxgym -n "my style" -t ohwx
    """
    try:
        ds = Dataset(dataset)
    except DatasetError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    with ds, progress_sink(quiet or json_out) as sink:
        ds.scan(on_event=sink)
        try:
            report = export_dataset(ds, out_dir, name or ds.root.name, trigger, resolution, repeats,
                                    force, sink, ImageCache(cache_dir), vram=vram.value)
        except ExportError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
    if json_out:
        print_json(export_json(report))
    else:
        out.print(export_table(report))
        report_problems(sink.problems)
        print_next_steps(report, dataset)
    raise typer.Exit(sink.problems.exit_code(strict))


def register(app: typer.Typer) -> None:
    """Add the ``export`` command."""
    app.command("export")(export)
