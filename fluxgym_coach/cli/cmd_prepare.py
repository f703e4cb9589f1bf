"""``fluxgym-coach prepare DATASET --out DIR --trigger WORD``: the main job."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..enhance.backends.base import BackendError, EnhanceParams
from ..dataset import Dataset, DatasetError
from ..export.fluxgym import DEFAULT_REPEATS, ExportError
from ..cache import ImageCache
from ..export.prepare import PrepareReport, prepare_dataset
from . import options as o
from .cmd_export import (Crop, CropMode, Force, Name, OutDir, Repeats, Resolution, Trigger, Vram, VramSize, export_json,
                         export_table, print_next_steps)
from .common import esc, EXIT_BACKEND, EXIT_FAILED, EXIT_USAGE, err, fail, out, print_json, progress_sink, report_problems


def _summary(report: PrepareReport, engine_label: str) -> Table:
    table = Table(title="prepare: summary", show_header=False)
    table.add_row("upscaler", esc(engine_label))
    scan = report.scan
    table.add_row("images found", str(scan.total))
    table.add_row("unreadable (skipped)", str(len(scan.errors)))
    table.add_row("already large enough (kept)", str(len(report.large_enough)))
    if report.enhance is not None:
        e = report.enhance
        table.add_row("enhanced now", str(len(e.by_status("enhanced"))))
        table.add_row("enhanced, from cache", str(len(e.by_status("cached"))))
        table.add_row("enhancement not needed", str(len(e.by_status("skipped"))))
        table.add_row("enhancement failed", str(len(e.failed)))
    else:
        table.add_row("enhanced", "0 (all images at or above the resolution)")
    return table


def prepare(
    ctx: typer.Context,
    dataset: Annotated[Path, typer.Argument(help="Folder of images with <stem>.txt captions.")],
    out_dir: OutDir,
    trigger: Trigger,
    name: Name = None,
    resolution: Resolution = 1024,
    repeats: Repeats = DEFAULT_REPEATS,
    backend: o.Backend = "auto",
    api_url: o.ApiUrl = None,
    api_auth: o.ApiAuth = None,
    upscaler: o.Upscaler = o.DEFAULTS.upscaler,
    gpu: o.Gpu = None,
    models_dir: o.ModelsDir = None,
    denoising_strength: o.Denoise = o.DEFAULTS.denoising_strength,
    prompt: o.Prompt = o.DEFAULTS.prompt,
    negative_prompt: o.NegPrompt = o.DEFAULTS.negative_prompt,
    steps: o.Steps = o.DEFAULTS.steps,
    cfg_scale: o.Cfg = o.DEFAULTS.cfg_scale,
    sampler: o.Sampler = o.DEFAULTS.sampler_name,
    scheduler: o.Scheduler = None,
    timeout: o.Timeout = o.DEFAULT_TIMEOUT,
    no_colorize: o.NoColorize = False,
    sharpen: o.Sharpen = 0.0,
    no_cache: o.NoCache = False,
    force_reprocess: o.ForceReprocess = False,
    cache_dir: o.CacheDir = None,
    vram: Vram = VramSize.G20,
    crop_mode: Crop = CropMode.ZERO,
    force: Force = False,
    learned_defaults: Annotated[bool, typer.Option(
        "--learned-defaults", help="Start from the enhancement settings your reviews accepted most "
                                   "(see `fluxgym-coach feedback suggest`); options you pass still win.")] = False,
    strict: o.Strict = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Scan, upscale what is too small, and export a ready-to-train Fluxgym dataset.

    1. scan DATASET (only changed files are re-read);
    2. upscale every image whose short side is below --resolution (a bundled
       Real-ESRGAN model on the GPU or the CPU, your own model with
       --upscaler FILE.pth, a Pillow resize when neither can run, or a
       Forge / A1111 server with --api-url, which also colorizes
       black-and-white images); results are cached, and an
       interrupted run resumes where it stopped;
    3. export to DIR/datasets/<name>/ and DIR/outputs/<name>/ (dataset.toml,
       train.sh), captions with the trigger word first (the trigger word
       alone, marked "needs caption", where an image has no caption yet).
       With DIR your Fluxgym folder, bash DIR/outputs/<name>/train.sh trains.

    Originals are never modified. Exit code 0 when everything was exported,
    1 when an image failed (or warned, with --strict), 2 for bad arguments,
    3 when the server is unreachable.

    Example: fluxgym-coach prepare ./photos --out ~/fluxgym --trigger ohwx
    """
    try:
        ds = Dataset(dataset)
    except DatasetError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    try:
        params = EnhanceParams(upscaler=upscaler, denoising_strength=denoising_strength, prompt=prompt,
                               negative_prompt=negative_prompt, steps=steps, cfg_scale=cfg_scale,
                               sampler_name=sampler, scheduler=scheduler, colorize=not no_colorize, sharpen=sharpen)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if learned_defaults:
        from ..feedback import learn_defaults

        learned = learn_defaults(ds.store, base=params)
        option_field = {"sampler": "sampler_name"}
        # Typer vendors its own click, so compare the source by name
        explicit = {option_field.get(k, k) for k in ctx.params
                    if getattr(ctx.get_parameter_source(k), "name", "DEFAULT")
                    not in ("DEFAULT", "DEFAULT_MAP")}
        changes = {k: v for k, v in learned.changes.items() if k not in explicit}
        params = params.with_(**changes)
        if not (quiet or json_out):
            err.print("learned defaults: " + esc(", ".join(f"{k}={v}" for k, v in changes.items())
                                              or f"not enough reviews yet ({learned.decisions} judged; "
                                                 f"{learned.min_count} per setting needed)"))
    try:
        engine = o.make_backend(backend, api_url, api_auth, timeout, gpu=gpu, upscaler=upscaler,
                                models_dir=models_dir)
    except BackendError as exc:
        raise fail(exc.reason, EXIT_BACKEND) from None
    cache = ImageCache(ds.store.path.parent / "nocache-results") if no_cache else ImageCache(cache_dir)

    async def run() -> PrepareReport:
        try:
            return await prepare_dataset(ds, out_dir, name or ds.root.name, trigger, engine, params,
                                         resolution, repeats, cache,
                                         lookup=not (no_cache or force_reprocess), force=force,
                                         on_event=sink, vram=vram.value, crop_mode=crop_mode.value)
        finally:
            await engine.aclose()

    with ds, progress_sink(quiet or json_out) as sink:
        try:
            report = asyncio.run(run())
        except ExportError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        except BackendError as exc:
            raise fail(exc.reason, EXIT_BACKEND) from None
        except KeyboardInterrupt:
            sink.progress.stop()  # the bars' last frame first, then the message
            err.print("[yellow]interrupted[/]: finished images are kept; run the same command "
                      "again to resume")
            raise typer.Exit(130) from None
    if json_out:
        e = report.enhance
        print_json({
            "scan": {"images": report.scan.total, "errors": report.scan.errors,
                     "warnings": report.scan.warnings},
            "upscaler": getattr(engine, "label", engine.name),
            "enhance": None if e is None else {
                s: [x.name for x in e.by_status(s)] for s in ("enhanced", "cached", "skipped", "failed")},
            "large_enough": report.large_enough,
            "enhance_reasons": None if e is None else {
                x.name: x.reason or "; ".join(x.warnings) for x in e.outcomes.values()
                if x.reason or x.warnings},
            "export": export_json(report.export) if report.export else None,
        })
    else:
        out.print(_summary(report, getattr(engine, "label", engine.name)))
        for warning in engine.warnings:
            err.print(f"[yellow]warning[/] {esc(warning)}")
        if report.export is not None:
            out.print(export_table(report.export, title="prepare: export"))
        report_problems(sink.problems)
        if report.export is not None:
            print_next_steps(report.export, dataset)
    raise typer.Exit(sink.problems.exit_code(strict) if report.export is not None else EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add the ``prepare`` command."""
    app.command("prepare")(prepare)
