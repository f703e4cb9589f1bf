"""``fluxgym-coach buckets``: what a trainer's bucketing does to each image."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..audit.buckets import BucketError, BucketSettings, Placement, place_many
from .common import EXIT_USAGE, fail, out, print_json


class Trainer(str, Enum):
    """Trainers named by ``--trainer``."""

    KOHYA = "kohya"
    AITK = "ai-toolkit"
    SIMPLETUNER = "simpletuner"
    DIFFUSION_PIPE = "diffusion-pipe"


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> (w, h); raises ValueError with the expected form."""
    parts = text.strip().lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"{text!r} is not a size: write WIDTHxHEIGHT, e.g. 1024x768")
    w, h = int(parts[0]), int(parts[1])
    if w < 1 or h < 1:
        raise ValueError(f"{text!r}: width and height must be at least 1")
    return w, h


def _inputs(dataset: Optional[Path], sizes: list[str], sizes_from: Optional[Path]) -> list[tuple[str, tuple[int, int]]]:
    items: list[tuple[str, tuple[int, int]]] = []
    try:
        for s in sizes:
            items.append((s, parse_size(s)))
        if sizes_from is not None:
            for n, line in enumerate(sizes_from.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    try:
                        items.append((line.strip(), parse_size(line)))
                    except ValueError as exc:
                        raise ValueError(f"{sizes_from}:{n}: {exc}") from None
    except OSError as exc:
        raise fail(f"cannot read {sizes_from}: {exc.strerror}", EXIT_USAGE) from None
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if dataset is not None:
        from ..dataset import Dataset, DatasetError
        try:
            ds = Dataset(dataset)
        except DatasetError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        with ds:
            ds.scan()
            for rec in ds.store.images():
                if rec.display_size is not None and not rec.error:
                    items.append((rec.relpath, rec.display_size))
    if not items:
        raise fail("nothing to place: pass a DATASET folder, --size WxH or --sizes-from FILE", EXIT_USAGE)
    return items


def _row(name: str, p: Placement | BucketError) -> dict:
    if isinstance(p, BucketError):
        return {"input": name, "error": str(p)}
    return {"input": name, **p.as_json()}


def buckets(
    dataset: Annotated[Optional[Path], typer.Argument(
        help="Dataset folder: each image's display size (EXIF orientation applied).")] = None,
    trainer: Annotated[Trainer, typer.Option("--trainer", help="Whose bucketing to simulate.")] = Trainer.KOHYA,
    resolution: Annotated[int, typer.Option("--resolution", "-r", help="Training resolution (side of the square area).")] = 1024,
    no_bucket: Annotated[bool, typer.Option("--no-bucket", help="enable_bucket off: one square bucket (Fluxgym's default toml; ai-toolkit square_crop).")] = False,
    no_upscale: Annotated[bool, typer.Option("--no-upscale", help="bucket_no_upscale (kohya).")] = False,
    min_bucket_reso: Annotated[int, typer.Option("--min-bucket-reso", help="kohya min_bucket_reso.")] = 256,
    max_bucket_reso: Annotated[int, typer.Option("--max-bucket-reso", help="kohya max_bucket_reso.")] = 1024,
    bucket_reso_steps: Annotated[int, typer.Option("--bucket-reso-steps", help="kohya bucket_reso_steps (ai-toolkit bucket_tolerance, diffusion-pipe's rounding multiple: 16 for most models).")] = 64,
    min_ar: Annotated[float, typer.Option("--min-ar", help="diffusion-pipe min_ar.")] = 0.5,
    max_ar: Annotated[float, typer.Option("--max-ar", help="diffusion-pipe max_ar.")] = 2.0,
    num_ar_buckets: Annotated[int, typer.Option("--num-ar-buckets", help="diffusion-pipe num_ar_buckets.")] = 7,
    resolution_type: Annotated[str, typer.Option("--resolution-type", help="SimpleTuner resolution_type: pixel, or area (resolution² pixels: its pixel_area).")] = "pixel",
    crop: Annotated[bool, typer.Option("--crop/--no-crop", help="SimpleTuner crop.")] = False,
    crop_style: Annotated[str, typer.Option("--crop-style", help="SimpleTuner crop_style: center, corner, random (JSON: crop_offset random, offset_max the range; crop its centre).")] = "random",
    crop_aspect: Annotated[str, typer.Option("--crop-aspect", help="SimpleTuner crop_aspect: square, preserve, closest.")] = "square",
    crop_aspect_buckets: Annotated[Optional[list[float]], typer.Option("--crop-aspect-bucket", help="SimpleTuner crop_aspect_buckets (repeatable; for --crop-aspect closest).")] = None,
    size: Annotated[Optional[list[str]], typer.Option("--size", help="An image size WxH (repeatable); no dataset needed.")] = None,
    sizes_from: Annotated[Optional[Path], typer.Option("--sizes-from", help="A file with one WxH per line.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list, one object per input, in input order.")] = False,
) -> None:
    """Show the bucket, resized size and crop a trainer gives each image.

    Exact for kohya sd-scripts (the sd3 branch Fluxgym installs), ai-toolkit,
    SimpleTuner (--no-bucket is crop with crop_aspect square) and
    diffusion-pipe (images; --no-bucket is its enable_ar_bucket = false):
    the same integers as their own code (see docs/buckets.md). crop is the kept
    window in source pixels [left, top, right, bottom]; crop_fraction the share
    of the resized image cut away; scale > 1 means the trainer upscales.

    Example: fluxgym-coach buckets --size 1536x1024 --size 768x1024 --json
    """
    settings = BucketSettings(trainer.value, resolution, not no_bucket, no_upscale, min_bucket_reso,
                              max_bucket_reso, bucket_reso_steps, min_ar, max_ar, num_ar_buckets,
                              resolution_type=resolution_type, crop=crop, crop_style=crop_style,
                              crop_aspect=crop_aspect, crop_aspect_buckets=tuple(crop_aspect_buckets or ()))
    items = _inputs(dataset, size or [], sizes_from)
    try:
        placed = place_many([s for _, s in items], settings)
    except BucketError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    rows = [_row(name, p) for (name, _), p in zip(items, placed)]
    if json_out:
        print_json(rows)
        return
    table = Table(title=f"{trainer.value} buckets at {resolution}")
    for col in ("image", "size", "bucket", "resized", "crop (source px)", "cut", "scale"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if "error" in r:
            table.add_row(escape(r["input"]), "", "", "", escape(r["error"]), "", "")
            continue
        table.add_row(escape(r["input"]), "x".join(map(str, r["size"])), "x".join(map(str, r["bucket"])),
                      "x".join(map(str, r["resized"])), ", ".join(f"{v:g}" for v in r["crop"]),
                      f"{r['crop_fraction']:.1%}", f"{r['scale']:.3f}")
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``buckets`` command."""
    app.command("buckets")(buckets)
