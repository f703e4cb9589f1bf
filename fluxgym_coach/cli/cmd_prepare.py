"""``fluxgym-coach prepare DATASET --out DIR --trigger WORD``: the main job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .. import core
from ..enhance.backends.base import EnhanceBackend, EnhanceParams
from ..dataset import Dataset
from ..export.fluxgym import DEFAULT_REPEATS
from ..export.prepare import PrepareReport
from ..statuses import EnhanceStatus
from . import options as o
from .cmd_export import (Crop, CropMode, Force, Name, OutDir, Repeats, Resolution, Trigger, Vram, VramSize, export_json,
                         export_table, print_next_steps)
from .common import (esc, EXIT_FAILED, EXIT_USAGE, EventProgress, err, fail, out, print_json,
                     progress_sink, report_problems, run_resumable)


def _summary(report: PrepareReport, engine_label: str) -> Table:
    table = Table(title="prepare: summary", show_header=False)
    table.add_row("upscaler", esc(engine_label))
    scan = report.scan
    table.add_row("images found", str(scan.total))
    table.add_row("unreadable (skipped)", str(len(scan.errors)))
    table.add_row("already large enough (kept)", str(len(report.large_enough)))
    if report.enhance is not None:
        e = report.enhance
        table.add_row("enhanced now", str(len(e.by_status(EnhanceStatus.ENHANCED))))
        table.add_row("enhanced, from cache", str(len(e.by_status(EnhanceStatus.CACHED))))
        table.add_row("enhancement not needed", str(len(e.by_status(EnhanceStatus.SKIPPED))))
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
    """Scan, upscale what is too small, export a ready-to-train dataset.

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
    with _open(dataset) as ds:  # closed on every exit, a refused option included
        params = _enhance_params(ctx, ds, learned_defaults, quiet or json_out)
        engine = _backend(backend, api_url, api_auth, timeout, gpu, upscaler, models_dir)
        cache = core.result_cache(ds, cache_dir, private=no_cache)
        with progress_sink(quiet or json_out) as sink:
            report = _run(ds, engine, sink, out_dir, name, trigger, params=params,
                          resolution=resolution, repeats=repeats, cache=cache,
                          lookup=not (no_cache or force_reprocess), force=force, vram=vram.value,
                          crop_mode=crop_mode.value)
    for rel, reason in report.scan.errors.items():  # found now or by an earlier scan: same exit code
        sink.problems.failures.setdefault(rel, reason)
    _show(report, engine, sink, dataset, json_out)
    raise typer.Exit(sink.problems.exit_code(strict) if report.export is not None else EXIT_FAILED)


def _open(path: Path) -> Dataset:
    """The dataset at ``path`` (a DatasetError exits 2 with the reason through the root group)."""
    return Dataset(path)


#: Command options that are :class:`EnhanceParams` fields under another name.
_PARAM_OPTIONS = {"upscaler": "upscaler", "denoising_strength": "denoising_strength", "prompt": "prompt",
                  "negative_prompt": "negative_prompt", "steps": "steps", "cfg_scale": "cfg_scale",
                  "sampler": "sampler_name", "scheduler": "scheduler", "sharpen": "sharpen"}


def _enhance_params(ctx: typer.Context, ds: Dataset, learned_defaults: bool, quiet: bool) -> EnhanceParams:
    """The enhancement settings of this run: the options given, over the learned
    defaults with --learned-defaults (:func:`fluxgym_coach.core.learned_params`), over
    the shipped defaults. Exits 2 for values EnhanceParams refuses."""
    values = {field: ctx.params[option] for option, field in _PARAM_OPTIONS.items()}
    try:
        params = EnhanceParams(colorize=not ctx.params["no_colorize"], **values)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if not learned_defaults:
        return params
    # Typer vendors its own click, so compare the source by name
    explicit = {{"no_colorize": "colorize", **_PARAM_OPTIONS}.get(k, k) for k in ctx.params
                if getattr(ctx.get_parameter_source(k), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")}
    params, changes, learned = core.learned_params(ds, params, keep=explicit)
    if not quiet:
        err.print("learned defaults: " + esc(", ".join(f"{k}={v}" for k, v in changes.items())
                                          or f"not enough reviews yet ({learned.decisions} judged; "
                                             f"{learned.min_count} per setting needed)"))
    return params


def _backend(backend: str, api_url: list[str] | None, api_auth: str | None, timeout: float,
             gpu: str | None, upscaler: str, models_dir: Path | None) -> EnhanceBackend:
    """The enhancement backend of the options (a BackendError exits 3 with the reason it
    cannot start, through the root group: :class:`fluxgym_coach.cli.LazyCommands`)."""
    return o.make_backend(backend, api_url, api_auth, timeout, gpu=gpu, upscaler=upscaler,
                          models_dir=models_dir)


def _run(ds: Dataset, engine: EnhanceBackend, sink: EventProgress, out_dir: Path, name: str | None,
         trigger: str, **options: Any) -> PrepareReport:
    """Run :func:`fluxgym_coach.core.prepare_dataset` to the end (the backend closed after);
    exit 2 for an unusable export target, 3 for a backend failing, 130 on Ctrl-C."""
    async def run() -> PrepareReport:
        try:
            return await core.prepare_dataset(ds, out_dir, name, trigger, engine, on_event=sink, **options)
        finally:
            await engine.aclose()

    return run_resumable(run(), sink)


def _json(report: PrepareReport, engine: EnhanceBackend) -> dict[str, Any]:
    """The ``--json`` document of a prepare run."""
    e = report.enhance
    return {
        "scan": {"images": report.scan.total, "errors": report.scan.errors,
                 "warnings": report.scan.warnings},
        "upscaler": getattr(engine, "label", engine.name),
        "enhance": None if e is None else {
            s.value: [x.name for x in e.by_status(s)]
            for s in (EnhanceStatus.ENHANCED, EnhanceStatus.CACHED, EnhanceStatus.SKIPPED, EnhanceStatus.FAILED)},
        "large_enough": report.large_enough,
        "enhance_reasons": None if e is None else {
            x.name: x.reason or "; ".join(x.warnings) for x in e.outcomes.values()
            if x.reason or x.warnings},
        "export": export_json(report.export) if report.export else None,
    }


def _show(report: PrepareReport, engine: EnhanceBackend, sink: EventProgress, dataset: Path,
          json_out: bool) -> None:
    """Print the run's result: the JSON document, or the summary and export tables, the
    problems by file and the next steps."""
    if json_out:
        print_json(_json(report, engine))
        return
    out.print(_summary(report, getattr(engine, "label", engine.name)))
    for warning in engine.warnings:
        err.print(f"[yellow]warning[/] {esc(warning)}")
    if report.export is not None:
        out.print(export_table(report.export, title="prepare: export"))
    report_problems(sink.problems)
    if report.export is not None:
        print_next_steps(report.export, dataset)


def register(app: typer.Typer) -> None:
    """Add the ``prepare`` command."""
    app.command("prepare")(prepare)
