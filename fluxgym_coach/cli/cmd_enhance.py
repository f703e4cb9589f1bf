"""``fluxgym-coach enhance PATHS...``: the seed's enhancement command (seed 003 options).

Upscales image files through a Forge / A1111 server (or the embedded Pillow
backend), colorizing black-and-white ones, with results cached and the job
resumable. Presentation only: the work is
:func:`fluxgym_coach.enhance.enhancer.enhance_files` (files) or
:func:`fluxgym_coach.core.enhance_images` (datasets).

Where results go (nothing is ever written among a dataset's originals, where
the next scan and export would take it for a training image):

* ``-o FILE`` / ``-o FOLDER``: ``<name>_enhanced.<format>`` files there;
* folders without ``-o``: each folder is a dataset; its images (recursively)
  are enhanced into the result cache, recorded as variants and selected for
  export (``pending`` until reviewed), as ``prepare`` and the TUI do;
* files without ``-o``: ``<name>_enhanced.<format>`` next to each file, unless
  the file belongs to a dataset (a folder above it holds ``.fluxgym-coach/``),
  which is refused with the two ways out.
"""

from __future__ import annotations

import glob
import logging
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from .. import imaging
from ..enhance.backends.base import (BACKEND_NAMES, DEFAULT_COLORIZE_NEGATIVE_PROMPT, DEFAULT_COLORIZE_PROMPT,
                                     EnhanceParams)
from ..cache import ImageCache
from ..enhance.enhancer import default_output, enhance_files
from ..statuses import EnhanceStatus
from ..store import Store
from . import options as o
from .common import (esc, EXIT_FAILED, EXIT_OK, EXIT_USAGE, err, fail, out, print_json,
                     progress_sink, report_problems, run_resumable)

#: Store file (job journals of ``enhance``) inside the cache folder.
JOURNAL_NAME = "enhance-jobs.sqlite"


class OutputFormat(str, Enum):
    """Output formats accepted by ``--format``."""

    PNG = "PNG"
    JPEG = "JPEG"
    JPG = "JPG"
    WEBP = "WEBP"


def expand_paths(patterns: list[str]) -> list[Path]:
    """Files, folders (their images, not recursive) and glob patterns -> image paths.

    Outputs of an earlier run (``*_enhanced.*``, ``*_colorized.*``) found in a
    folder or by a pattern are left out; duplicates are removed. Raises
    typer.BadParameter naming the argument that matches nothing."""
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_file():
            found.append(path)
            continue
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.is_file() and imaging.is_image_name(p.name))
        elif any(c in pattern for c in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True)
                             if Path(p).is_file() and imaging.is_image_name(p))
        else:
            raise typer.BadParameter(f"{pattern}: no such file or folder", param_hint="PATHS")
        matches = [p for p in matches if not p.stem.endswith(("_enhanced", "_colorized"))]
        if not matches:
            raise typer.BadParameter(f"{pattern}: no image files there (extensions: "
                                     f"{', '.join(sorted(imaging.IMAGE_EXTENSIONS))})",
                                     param_hint="PATHS")
        found.extend(matches)
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def plan_outputs(inputs: list[Path], output: Path | None, fmt: str) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs: one input and ``--output`` naming a file -> that
    file; otherwise ``<name>_enhanced.<format>`` in ``--output`` (a folder) or
    next to each input. Raises typer.BadParameter when two inputs would share
    an output or an output is one of the inputs."""
    pairs = []
    for src in inputs:
        if output is not None and len(inputs) == 1 and not (output.is_dir() or str(output).endswith("/")):
            dst = output
        else:
            dst = default_output(src, fmt, output)
        pairs.append((src, dst))
    seen: dict[Path, Path] = {}
    inputs_resolved = {p.resolve() for p in inputs}
    for src, dst in pairs:
        key = dst.resolve()
        if key in inputs_resolved:
            raise typer.BadParameter(f"{dst} is an input image: originals are never overwritten; "
                                     f"choose another --output", param_hint="--output")
        if key in seen:
            raise typer.BadParameter(f"{seen[key]} and {src} would both be written to {dst}: "
                                     f"rename one or enhance them separately", param_hint="--output")
        seen[key] = src
    return pairs


def dataset_root_of(path: Path) -> Path | None:
    """The nearest folder at or above ``path``'s folder holding a dataset store
    (``.fluxgym-coach/``), or None."""
    from ..store import STORE_DIRNAME
    folder = path.resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / STORE_DIRNAME).is_dir():
            return candidate
    return None


def check_outside_datasets(pairs: list[tuple[Path, Path]]) -> None:
    """Refuse default outputs that would land inside a dataset (typer.BadParameter
    naming the file, the dataset and the two ways out)."""
    for src, dst in pairs:
        root = dataset_root_of(dst)
        if root is not None:
            raise typer.BadParameter(
                f"{dst} would be written inside the dataset {root}, whose next export would take it "
                f"for a training image. Enhance the dataset instead (`fluxgym-coach enhance {root}`: "
                f"results become variants selected for export), or give --output a folder outside it",
                param_hint="--output")


# -- the options only `enhance` has (shared ones are in cli/options.py) ----------------------------
Paths = Annotated[list[str], typer.Argument(
    help="Image files, folders or glob patterns (quote them: 'images/*.jpg').", show_default=False)]
Output = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Output file (one image) or folder (several). Default: a folder "
                           "argument is a dataset, enhanced into the result cache as variants "
                           "selected for export (no file among its images); a file gets "
                           "<name>_enhanced.<format> next to it, unless it is inside a dataset.",
    show_default=False)]
Scale = Annotated[Optional[int], typer.Option(
    "--scale", min=1, max=4,
    help="Scale factor, 1 to 4, for every image. Default: to the training resolution (the "
         "dataset's resolution setting; 1024 for files): each image gets the scale its training "
         "bucket needs, at most x8, and images already large enough are kept.",
    show_default=False)]
Format = Annotated[Optional[OutputFormat], typer.Option(
    "--format", case_sensitive=False, help="Output format (default PNG, or the --output file's extension).",
    show_default=False)]
ColorizePrompt = Annotated[str, typer.Option(
    "--colorize-prompt", help="Prompt for colorizing black-and-white images.")]
ColorizeNegPrompt = Annotated[str, typer.Option("--colorize-negative-prompt", help="Negative prompt for colorizing.")]
Force = Annotated[bool, typer.Option("--force", help="Process and replace images whose output file already exists.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Detailed logs (retries, requests) on stderr.")]


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """The options that choose and set up the backend (``--backend``, ``--api-url``,
    ``--api-auth``, ``--timeout``, ``--gpu``, ``--models-dir``, and the upscaler
    ``auto`` looks up), given to :func:`fluxgym_coach.cli.options.make_backend`."""

    backend: str
    api_urls: list[str]
    api_auth: str | None
    timeout: float = o.DEFAULT_TIMEOUT
    gpu: str | None = None
    models_dir: Path | None = None
    upscaler: str | None = None

    def make(self):
        """The backend; exits 2 for a bad option, 3 when the engine cannot start."""
        try:
            return o.make_backend(self.backend, self.api_urls or None, self.api_auth, self.timeout,
                                  gpu=self.gpu, upscaler=self.upscaler, models_dir=self.models_dir)
        except (typer.BadParameter, ValueError) as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        # a BackendError (the engine cannot start) exits 3 through the root group


def enhance(
    paths: Paths,
    output: Output = None,
    api_url: o.ApiUrl = None,
    api_auth: o.ApiAuth = None,
    backend: o.Backend = "auto",
    scale: Scale = None,
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
    fmt: Format = None,
    no_colorize: o.NoColorize = False,
    colorize_prompt: ColorizePrompt = DEFAULT_COLORIZE_PROMPT,
    colorize_negative_prompt: ColorizeNegPrompt = DEFAULT_COLORIZE_NEGATIVE_PROMPT,
    no_cache: o.NoCache = False,
    force_reprocess: o.ForceReprocess = False,
    cache_dir: o.CacheDir = None,
    force: Force = False,
    verbose: Verbose = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False) -> None:
    """Upscale images to the training resolution (Forge, Real-ESRGAN or your model), colorizing B&W ones.

    The backend is chosen as `prepare` chooses it (--backend auto): a Forge /
    A1111 server when --api-url (or $FLUXGYM_COACH_API_URL) is given - batches go
    to /sdapi/v1/extra-batch-images, several --api-url values share the work, and
    black-and-white images are colorized with img2img first - else the bundled
    Real-ESRGAN (or your --upscaler model file), else a Pillow resize. Only
    forge colorizes. Results
    are cached: a second run sends nothing. Ctrl-C, then the same command,
    continues where it stopped. Existing outputs are skipped unless --force.

    Sizes: without --scale each image is enlarged as much as its training
    bucket at the dataset's resolution needs (1024 for files), at most x8;
    images already large enough are kept, and the summary counts them. An
    upscale beyond x8, an aspect ratio beyond 8:1 or an output over 64 MP is
    refused by name before anything is sent.

    Without --output, a folder is treated as a dataset: its images (recursively)
    are enhanced into the result cache and selected for export as variants, as
    `prepare` does; nothing is written among the originals. Files get
    <name>_enhanced.<format> beside them, except inside a dataset (refused).

    Exit code: 0 done, 1 some image failed (or was refused), 2 bad arguments,
    3 the server is unreachable or refused the settings (unknown upscaler or
    sampler, auth), or the embedded engine cannot start (--gpu, --models-dir).

    Example: fluxgym-coach enhance ./photos --api-url http://127.0.0.1:7860

    Example: fluxgym-coach enhance old.jpg -o out/ --backend realesrgan --scale 2
    """
    _setup_logging(verbose)
    _check_backend_name(backend)
    fields = dict(scale_factor=float(scale) if scale is not None else None, upscaler=upscaler,
                  denoising_strength=denoising_strength, prompt=prompt, negative_prompt=negative_prompt,
                  steps=steps, cfg_scale=cfg_scale, sampler_name=sampler, scheduler=scheduler,
                  colorize=not no_colorize, colorize_prompt=colorize_prompt,
                  colorize_negative_prompt=colorize_negative_prompt)
    engine = EngineOptions(backend, _urls(api_url), api_auth, timeout, gpu, models_dir, upscaler)
    lookup = not (no_cache or force_reprocess)
    folders = [Path(p).expanduser() for p in paths if Path(p).expanduser().is_dir()]
    if output is None and folders:
        _check_dataset_folders(folders, len(paths))
        params = _params(fields, fmt.value if fmt else "PNG")
        raise typer.Exit(enhance_datasets(folders, engine, params, cache_dir, lookup=lookup,
                                          json_out=json_out, quiet=quiet))
    pairs, params = _plan_files(paths, output, fmt, fields)
    raise typer.Exit(enhance_file_pairs(pairs, engine, params, cache_dir, no_cache=no_cache,
                                        lookup=lookup, force=force, json_out=json_out, quiet=quiet))


def _setup_logging(verbose: bool) -> None:
    """``--verbose``: INFO logs of our modules on stderr (httpx's own stay at WARNING)."""
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)


def _params(fields: dict, format_name: str) -> EnhanceParams:
    """The enhancement parameters of this run; exits 2 when they are invalid."""
    try:
        return EnhanceParams(output_format=format_name, **fields)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from None


def _file_format(fmt: OutputFormat | None, output: Path | None, inputs: list[Path]) -> str:
    """``--format``, else the extension of a single ``--output`` file, else PNG."""
    if fmt is not None:
        return fmt.value
    if output is not None and len(inputs) == 1 and output.suffix and not output.is_dir():
        return output.suffix.lstrip(".").upper()
    return "PNG"


def _plan_files(paths: list[str], output: Path | None, fmt: OutputFormat | None,
                fields: dict) -> tuple[list[tuple[Path, Path]], EnhanceParams]:
    """File mode: the ``(input, output)`` pairs and the parameters (their format
    follows the output); exits 2 for a bad path, output or format."""
    try:
        inputs = expand_paths(paths)
        format_name = _file_format(fmt, output, inputs)
        params = EnhanceParams(output_format=format_name, **fields)
        pairs = plan_outputs(inputs, output, format_name)
        if output is None:
            check_outside_datasets(pairs)
    except (typer.BadParameter, ValueError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    return pairs, params


def _check_dataset_folders(folders: list[Path], n_paths: int) -> None:
    """Dataset mode needs folders only, each holding an image (else exit 2 with the reason)."""
    if len(folders) != n_paths:
        raise fail("without --output, give dataset folders or image files, not both "
                   "(folders are enhanced into the cache as variants)", EXIT_USAGE)
    for folder in folders:
        if not any(imaging.is_image_name(f.name) and not any(x.startswith(".") for x in f.relative_to(folder).parts)
                   for f in folder.rglob("*")):
            raise fail(f"{folder}: no image files there (extensions: "
                       f"{', '.join(sorted(imaging.IMAGE_EXTENSIONS))})", EXIT_USAGE)


def enhance_file_pairs(pairs: list[tuple[Path, Path]], options: EngineOptions, params: EnhanceParams,
                       cache_dir: Path | None, *, no_cache: bool, lookup: bool, force: bool,
                       json_out: bool, quiet: bool) -> int:
    """``enhance`` of files into ``(input, output)`` pairs: existing outputs skipped unless
    ``force``; results cached (a throw-away cache with ``no_cache``) and journaled in the
    cache folder. Prints one line per file (or JSON); returns the exit code."""
    existing = [(s, d) for s, d in pairs if d.exists()]
    todo = pairs if force else [(s, d) for s, d in pairs if not d.exists()]
    rows: list[dict] = [{"source": str(s), "output": str(d), "status": EnhanceStatus.EXISTS,
                         "reason": "output exists (use --force to replace it)", "processed": False}
                        for s, d in existing if not force]
    code = EXIT_OK
    summary: list[str] = []
    if todo:
        engine = options.make()
        tmp = tempfile.TemporaryDirectory(prefix="fluxgym-coach-nocache-") if no_cache else None
        cache = ImageCache(tmp.name if tmp else cache_dir)
        store = None if no_cache else Store(cache.root / JOURNAL_NAME)
        try:
            with progress_sink(quiet or json_out) as sink:
                files = run_resumable(_run(todo, engine, params, cache, store, sink,
                                           lookup=lookup, overwrite=force), sink)
        finally:
            if store:
                store.close()
            cache.close()
            if tmp:
                tmp.cleanup()
        for warning in engine.warnings:
            err.print(f"[yellow]warning[/] {esc(warning)}")
        for f in files.files:
            rows.append({"source": str(f.source), "output": str(f.output), "status": f.status,
                         "reason": f.reason, "processed": f.was_processed,
                         "size": list(f.size) if f.size else None, "warnings": f.warnings})
        if files.failed:
            code = EXIT_FAILED
        summary = files.report.summary_lines()
        if not json_out:
            report_problems(sink.problems)
    if json_out:
        print_json({"results": rows, "summary": summary, "exit_code": code})
        return code
    for row in rows:
        size = f" ({row['size'][0]}x{row['size'][1]})" if row.get("size") else ""
        if row["status"] == EnhanceStatus.FAILED:
            continue  # already reported with its reason
        note = f"  [dim]{esc(row['reason'])}[/]" if row["status"] in (EnhanceStatus.EXISTS, EnhanceStatus.COPIED) else ""
        out.print(f"{row['status']:<9} {esc(row['source'])} -> {esc(row['output'])}{size}{note}")
    _print_counts(rows, summary)
    return code


def _print_counts(rows: list[dict], summary: list[str] = ()) -> None:
    """The count of each status on one line, then the job's summary sentences
    (:meth:`~fluxgym_coach.enhance.results.EnhanceReport.summary_lines`)."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    out.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    for line in summary:
        out.print(esc(line))


def _urls(api_url: list[str] | None) -> list[str]:
    return [u.strip() for value in (api_url or []) for u in value.replace(",", " ").split() if u.strip()]


def _check_backend_name(backend: str) -> None:
    if backend not in BACKEND_NAMES:
        raise fail(f"unknown backend {backend!r}: use {', '.join(BACKEND_NAMES)}", EXIT_USAGE)


def enhance_datasets(folders: list[Path], options: EngineOptions, params: EnhanceParams,
                     cache_dir: Path | None, *, lookup: bool, json_out: bool, quiet: bool) -> int:
    """``enhance FOLDER...`` without ``--output``: scan each folder as a dataset and run
    :func:`fluxgym_coach.core.enhance_images` on all its readable images (results in
    the cache, variants selected for export). Prints one line per image (or JSON)
    and returns the exit code (1 when an image failed, 3 when the backend is unusable)."""
    from .. import core
    from ..dataset import Dataset

    engine = options.make()
    rows: list[dict] = []
    summary: list[str] = []

    async def go(sink) -> None:
        try:
            for folder in folders:
                with Dataset(folder) as ds:
                    await core.scan(ds, sink)
                    report = await core.enhance_images(ds, None, engine, params, cache=cache, lookup=lookup,
                                                       on_event=sink)
                summary.extend(report.summary_lines())
                for o_ in report.outcomes.values():
                    rows.append({"dataset": str(ds.root), "source": o_.name, "status": o_.status,
                                 "reason": o_.reason, "variant": o_.entry.key if o_.entry else None,
                                 "kind": o_.kind, "output": str(o_.entry.path) if o_.entry else None,
                                 "size": list(o_.size) if o_.size else None, "warnings": o_.warnings})
        finally:
            await engine.aclose()

    cache = ImageCache(cache_dir)
    try:
        with progress_sink(quiet or json_out) as sink:
            run_resumable(go(sink), sink)
    finally:
        cache.close()
    code = EXIT_FAILED if any(r["status"] == EnhanceStatus.FAILED for r in rows) else EXIT_OK
    if json_out:
        print_json({"results": rows, "summary": summary, "exit_code": code})
        return code
    report_problems(sink.problems)
    for row in rows:
        if row["status"] == EnhanceStatus.FAILED:
            continue
        size = f" ({row['size'][0]}x{row['size'][1]})" if row.get("size") else ""
        target = f"variant {row['kind'] or 'enhanced'}{size}" if row["variant"] else row["reason"]
        out.print(escape(f"{row['status']:<9} {row['source']} -> {target}"))
    _print_counts(rows, summary)
    for folder in folders:
        out.print(escape(f"results are in the cache, selected for export of {folder} (pending until "
                         f"reviewed: fluxgym-coach tui {folder}); nothing was written among its images. "
                         f"For files, run again with -o FOLDER outside the dataset."))
    return code


async def _run(pairs, engine, params, cache, store, sink, *, lookup: bool, overwrite: bool):
    try:
        return await enhance_files(pairs, engine, params, cache, lookup=lookup, overwrite=overwrite,
                                   store=store, on_event=sink)
    finally:
        await engine.aclose()


def register(app: typer.Typer) -> None:
    """Add the ``enhance`` command to the CLI."""
    app.command("enhance")(enhance)
