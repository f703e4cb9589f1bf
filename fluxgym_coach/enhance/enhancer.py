"""The seed's Python API for enhancing image files: ``ImageEnhancer`` and ``enhance_image``.

Code written against the seed documents (002, 003) runs unchanged::

    from fluxgym_coach.enhance.enhancer import ImageEnhancer
    enhancer = ImageEnhancer(api_url="http://127.0.0.1:7860", cache=ImageCache(), use_cache=True)
    result_path, was_processed = enhancer.upscale_image(image_path=..., output_path=...,
                                                        scale_factor=2, upscaler="R-ESRGAN 4x+")

Everything here is a thin layer over :func:`fluxgym_coach.enhance.job.run_enhance`
(the one implementation of enhancement): it turns file paths into pipeline
sources, runs the job, and writes each result to its output file atomically.
:func:`enhance_files` is the async core that the ``enhance`` CLI command uses
as well.

Behaviour: black-and-white images are colorized automatically (img2img with
the colorize prompts) before upscaling, unless ``auto_colorize=False``;
``was_processed`` is True when the server computed the result now and False
when it came from the :class:`~fluxgym_coach.cache.ImageCache`. An
output file that exists with other content is never replaced unless
``overwrite=True`` (the CLI's ``--force``); one with the same bytes is left
as it is. The default API URL is ``$FLUXGYM_COACH_API_URL`` or
``http://127.0.0.1:7860``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import tempfile
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import FluxgymCoachError
from .. import imaging
from .backends.base import (DEFAULT_COLORIZE_NEGATIVE_PROMPT, DEFAULT_COLORIZE_PROMPT,
                            DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT, DEFAULT_UPSCALER, BackendError,
                            EnhanceBackend, EnhanceParams, get_enhance_backend)
from .backends.forge import DEFAULT_API_URL
from ..events import EventSink, null_sink
from ..fsutil import atomic_write_bytes
from ..cache import ImageCache
from ..statuses import EnhanceStatus
from .job import EnhanceReport, Source, describe_source, run_enhance
from ..store import Store

#: Environment variable read for the API URL when none is given.
API_URL_ENV = "FLUXGYM_COACH_API_URL"

T = TypeVar("T")


class EnhancementError(FluxgymCoachError):
    """Enhancing one or more files failed. ``failures`` maps each input path to the
    reason; ``results`` holds ``(output_path, was_processed)`` of the files that
    did succeed (already written)."""

    def __init__(self, failures: dict[str, str], results: list[tuple[Path, bool]] | None = None):
        lines = [f"{name}: {reason}" for name, reason in failures.items()]
        super().__init__("; ".join(lines) if len(lines) < 4 else
                         f"{len(lines)} images failed, first: {lines[0]}")
        self.failures = failures
        self.results = results or []


@dataclass(slots=True)
class FileResult:
    """What happened to one input file.

    ``status`` (an :class:`EnhanceStatus`): ``ENHANCED`` (computed now), ``CACHED``
    (from the cache or the job journal), ``COPIED`` (nothing to do: the original was
    written to the output in the output format), ``UNCHANGED`` (the output already had
    these bytes), ``CANCELLED`` or ``FAILED`` (``reason`` says why).
    ``size`` is the output's (width, height) in px when known."""

    source: Path
    output: Path
    status: EnhanceStatus
    reason: str = ""
    was_processed: bool = False
    size: tuple[int, int] | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class FilesReport:
    """The pipeline's :class:`~fluxgym_coach.enhance.job.EnhanceReport` plus one
    :class:`FileResult` per input, in input order."""

    report: EnhanceReport
    files: list[FileResult]

    @property
    def failed(self) -> list[FileResult]:
        """The files that failed."""
        return [f for f in self.files if f.status == EnhanceStatus.FAILED]


def default_output(image_path: str | Path, output_format: str = "PNG", folder: str | Path | None = None,
                   suffix: str = "_enhanced") -> Path:
    """The seed's default output name ``<name>_enhanced.<format>``, next to the
    input or in ``folder``. ``JPG`` gives ``.jpg``, ``JPEG`` ``.jpeg``."""
    path = Path(image_path)
    ext = output_format.strip().lower()
    imaging.normalise_format(ext)  # raises ValueError for an unsupported format
    parent = Path(folder) if folder is not None else path.parent
    return parent / f"{path.stem}{suffix}.{ext}"


def check_input(image_path: str | Path) -> Path:
    """Validate an input file: exists, has an image extension, is readable.

    Raises FileNotFoundError, ValueError (unsupported extension) or
    PermissionError, each naming the file and what to do."""
    path = Path(image_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file (check the path)")
    if not imaging.is_image_name(path.name):
        raise ValueError(f"{path}: unsupported file type {path.suffix or '(none)'}; use one of "
                         f"{', '.join(sorted(imaging.IMAGE_EXTENSIONS))}")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{path}: permission denied (make it readable: chmod u+r)")
    return path


def _write_output(output: Path, data: bytes, overwrite: bool) -> bool:
    """Write ``data`` to ``output`` atomically; returns False when it already held ``data``.
    Raises FileExistsError when another file is there and ``overwrite`` is False."""
    if output.exists():
        if output.is_file() and output.read_bytes() == data:
            return False
        if not overwrite:
            raise FileExistsError(f"{output} already exists: use --force (overwrite=True) to "
                                  f"replace it, or choose another output")
    atomic_write_bytes(output, data)
    return True


def _copy_as(source: Path, output_format: str) -> bytes:
    data = source.read_bytes()
    im = imaging.open_image(data, source)
    if (im.format or "").upper() == imaging.normalise_format(output_format) and \
            imaging.probe(im).orientation == 1:
        return data
    return imaging.encode(imaging.load_upright_rgb(data), output_format)


async def enhance_files(
    pairs: Sequence[tuple[Path, Path]],
    backend: EnhanceBackend,
    params: EnhanceParams,
    cache: ImageCache,
    *,
    lookup: bool = True,
    overwrite: bool = False,
    store: Store | None = None,
    on_event: EventSink = null_sink,
    cancel: asyncio.Event | None = None,
    force_colorize: bool = False,
) -> FilesReport:
    """Enhance each ``(input, output)`` pair with :func:`~fluxgym_coach.enhance.job.run_enhance`
    and write the results to the outputs (atomic; see the module docstring for
    the overwrite rule). ``force_colorize`` treats every input as black and
    white (``colorize_image``). Inputs are named by their path in events and
    the report. Per-file problems are :class:`FileResult` entries; raises
    BackendError only when the backend's pre-flight check fails."""
    sources = [Source(str(src), src) for src, _ in pairs]
    if force_colorize:
        described = []
        for s in sources:
            try:
                d = await asyncio.to_thread(describe_source, s)
                d.is_grayscale = True
                described.append(d)
            except (imaging.ImageReadError, OSError):
                described.append(s)  # the pipeline reports the error
        sources = described
    report = await run_enhance(sources, backend, params, cache, lookup=lookup, store=store,
                               on_event=on_event, cancel=cancel)

    def write_all() -> list[FileResult]:
        results = []
        for src, out in pairs:
            o = report.outcomes[str(src)]
            res = FileResult(src, out, o.status, o.reason, o.status == EnhanceStatus.ENHANCED,
                             warnings=list(o.warnings))
            try:
                if o.status in (EnhanceStatus.ENHANCED, EnhanceStatus.CACHED) and o.entry is not None:
                    data = o.entry.path.read_bytes()
                    res.size = o.size
                elif o.status == EnhanceStatus.SKIPPED and not report.cancelled:
                    data = _copy_as(src, params.output_format)
                    res.status, res.reason = EnhanceStatus.COPIED, o.reason
                elif o.status == EnhanceStatus.SKIPPED:
                    res.status = EnhanceStatus.CANCELLED
                    results.append(res)
                    continue
                else:
                    results.append(res)
                    continue
                if not _write_output(out, data, overwrite) and res.status == EnhanceStatus.CACHED:
                    res.status = EnhanceStatus.UNCHANGED
            except (FileExistsError, OSError, imaging.ImageReadError) as exc:
                res.status, res.was_processed = EnhanceStatus.FAILED, False
                res.reason = getattr(exc, "reason", None) or str(exc)
            results.append(res)
        return results

    return FilesReport(report, await asyncio.to_thread(write_all))


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end from sync code, also when an event loop is running
    in this thread (Jupyter): then it runs in a worker thread with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class ImageEnhancer:
    """Enhance image files through a Forge/A1111 server (or the embedded backend).

    ``api_url``: server URL, or several for a pool (default
    ``$FLUXGYM_COACH_API_URL`` or ``http://127.0.0.1:7860``). ``cache``: the
    :class:`ImageCache` (default: the user cache dir). ``use_cache=False``
    recomputes everything and keeps nothing (a throw-away cache per call).
    ``api_auth``: ``"user:pass"``. ``backend``: ``"forge"`` (default),
    ``"local"``, or a callable taking no argument that returns an
    :class:`~fluxgym_coach.enhance.backends.base.EnhanceBackend` (one per call; it is
    closed after the call). ``auto_colorize``:
    colorize black-and-white inputs. ``force_reprocess``: ignore cached
    results (they are still stored). ``overwrite``: replace existing output
    files with other content. ``store``: a :class:`Store` for a resumable job
    journal. ``on_event``: progress events. ``backend_options``: tuning passed
    to the backend (``max_batch``, ``timeout``, ``retries``...).
    """

    def __init__(self, api_url: str | Sequence[str] | None = None, cache: ImageCache | None = None,
                 use_cache: bool = True, *, api_auth: str | None = None, backend: Any = "forge",
                 auto_colorize: bool = True, force_reprocess: bool = False, overwrite: bool = False,
                 store: Store | None = None, on_event: EventSink = null_sink, **backend_options: Any):
        self.api_url = api_url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL
        self.api_auth = api_auth
        self.cache = cache if cache is not None else ImageCache()
        self.use_cache = use_cache
        self.backend = backend
        self.auto_colorize = auto_colorize
        self.force_reprocess = force_reprocess
        self.overwrite = overwrite
        self.store = store
        self.on_event = on_event
        self.backend_options = backend_options
        #: Warnings of the last call (server names corrected, servers dropped...).
        self.warnings: list[str] = []

    def _make_backend(self) -> EnhanceBackend:
        if callable(self.backend):
            return self.backend()
        if self.backend == "forge":
            return get_enhance_backend("forge", api_url=self.api_url, api_auth=self.api_auth,
                                       **self.backend_options)
        return get_enhance_backend(self.backend, **self.backend_options)

    async def aenhance(self, pairs: Sequence[tuple[Path, Path]], params: EnhanceParams, *,
                       force_colorize: bool = False) -> FilesReport:
        """Async core of every method: :func:`enhance_files` with this enhancer's settings."""
        backend = self._make_backend()
        tmp = None if self.use_cache else tempfile.TemporaryDirectory(prefix="fluxgym-coach-nocache-")
        try:
            cache = ImageCache(tmp.name) if tmp else self.cache
            result = await enhance_files(pairs, backend, params, cache,
                                         lookup=self.use_cache and not self.force_reprocess,
                                         overwrite=self.overwrite,
                                         store=self.store if self.use_cache else None,
                                         on_event=self.on_event, force_colorize=force_colorize)
            if tmp:
                cache.close()
            return result
        finally:
            self.warnings = list(backend.warnings)
            await backend.aclose()
            if tmp:
                tmp.cleanup()

    def _params(self, scale_factor: float, upscaler: str, denoising_strength: float, prompt: str,
                negative_prompt: str, steps: int, cfg_scale: float, sampler_name: str,
                output_format: str, colorize: bool | None, **more: Any) -> EnhanceParams:
        return EnhanceParams(scale_factor=float(scale_factor), upscaler=upscaler,
                             denoising_strength=denoising_strength, prompt=prompt,
                             negative_prompt=negative_prompt, steps=int(steps),
                             cfg_scale=float(cfg_scale), sampler_name=sampler_name,
                             output_format=output_format,
                             colorize=self.auto_colorize if colorize is None else colorize, **more)

    def _results(self, files: FilesReport) -> list[tuple[Path, bool]]:
        stopped = (EnhanceStatus.FAILED, EnhanceStatus.CANCELLED)
        failures = {str(f.source): f.reason for f in files.files if f.status in stopped}
        results = [(f.output, f.was_processed) for f in files.files if f.status not in stopped]
        if failures:
            raise EnhancementError(failures, results)
        return results

    def upscale_image(self, image_path: str | Path, output_path: str | Path | None = None,
                      scale_factor: float = 2, upscaler: str = DEFAULT_UPSCALER,
                      denoising_strength: float = 0.5, prompt: str = DEFAULT_PROMPT,
                      negative_prompt: str = DEFAULT_NEGATIVE_PROMPT, steps: int = 20,
                      cfg_scale: float = 7.0, sampler_name: str = "Euler a",
                      output_format: str = "PNG", colorize: bool | None = None) -> tuple[Path, bool]:
        """Upscale one image by ``scale_factor`` with ``upscaler`` (colorizing it
        first when it is black and white, unless ``colorize=False`` or
        ``auto_colorize=False``) and write it to ``output_path`` (default
        ``<name>_enhanced.<format>`` next to the input).

        ``denoising_strength`` (0..1), ``prompt``, ``negative_prompt``, ``steps``,
        ``cfg_scale`` and ``sampler_name`` drive the img2img colorization.
        Returns ``(output_path, was_processed)``; ``was_processed`` is False when
        the result came from the cache. Raises FileNotFoundError/ValueError/
        PermissionError for a bad input, BackendError when the server is
        unreachable or refuses the settings, EnhancementError when this image failed.
        """
        src = check_input(image_path)
        out = Path(output_path) if output_path is not None else default_output(src, output_format)
        params = self._params(scale_factor, upscaler, denoising_strength, prompt, negative_prompt,
                              steps, cfg_scale, sampler_name, output_format, colorize)
        return self._results(_run_sync(self.aenhance([(src, out)], params)))[0]

    def upscale_batch(self, image_paths: Sequence[str | Path], output_dir: str | Path | None = None,
                      scale_factor: float = 2, upscaler: str = DEFAULT_UPSCALER,
                      denoising_strength: float = 0.5, prompt: str = DEFAULT_PROMPT,
                      negative_prompt: str = DEFAULT_NEGATIVE_PROMPT, steps: int = 20,
                      cfg_scale: float = 7.0, sampler_name: str = "Euler a",
                      output_format: str = "PNG", colorize: bool | None = None) -> list[tuple[Path, bool]]:
        """Upscale many images in batched requests (``/extra-batch-images``), cached
        ones skipped. Outputs are ``<name>_enhanced.<format>`` in ``output_dir``
        (default: next to each input). Returns ``[(output_path, was_processed)]``
        in input order. Raises EnhancementError (after writing the successes,
        which it carries in ``results``) when any image failed, and the errors of
        :meth:`upscale_image` for bad inputs or an unusable server."""
        srcs = [check_input(p) for p in image_paths]
        pairs = [(s, default_output(s, output_format, output_dir)) for s in srcs]
        outs = [p[1] for p in pairs]
        if len(set(outs)) != len(outs):
            dup = next(o for o in outs if outs.count(o) > 1)
            raise ValueError(f"two inputs would both be written to {dup}: rename one of them or "
                             f"enhance them into different folders")
        params = self._params(scale_factor, upscaler, denoising_strength, prompt, negative_prompt,
                              steps, cfg_scale, sampler_name, output_format, colorize)
        return self._results(_run_sync(self.aenhance(pairs, params)))

    def colorize_image(self, image_path: str | Path, output_path: str | Path | None = None,
                       prompt: str = DEFAULT_COLORIZE_PROMPT,
                       negative_prompt: str = DEFAULT_COLORIZE_NEGATIVE_PROMPT,
                       denoising_strength: float = 0.5, steps: int = 20, cfg_scale: float = 7.0,
                       sampler_name: str = "Euler a", output_format: str = "PNG") -> tuple[Path, bool]:
        """Colorize one (black-and-white) image with img2img at its own size
        (rounded to multiples of 8 for the server, resized back) and write it
        to ``output_path`` (default ``<name>_colorized.<format>``). Returns
        ``(output_path, was_processed)``; raises like :meth:`upscale_image`.
        Needs a Forge backend."""
        src = check_input(image_path)
        out = Path(output_path) if output_path is not None else default_output(
            src, output_format, suffix="_colorized")
        params = EnhanceParams(scale_factor=1.0, denoising_strength=denoising_strength,
                               steps=int(steps), cfg_scale=float(cfg_scale), sampler_name=sampler_name,
                               output_format=output_format, colorize=True, colorize_prompt=prompt,
                               colorize_negative_prompt=negative_prompt)
        return self._results(_run_sync(self.aenhance([(src, out)], params, force_colorize=True)))[0]


def enhance_image(image_path: str | Path | Sequence[str | Path], output_path: str | Path | None = None,
                  *, api_url: str | Sequence[str] | None = None, api_auth: str | None = None,
                  cache: ImageCache | None = None, use_cache: bool = True,
                  force_reprocess: bool = False, overwrite: bool = False, auto_colorize: bool = True,
                  **options: Any) -> tuple[Path, bool] | list[tuple[Path, bool]]:
    """Enhance one image or many: the seed's helper.

    One path: :meth:`ImageEnhancer.upscale_image` with ``output_path`` as the
    output file; a list of paths: :meth:`ImageEnhancer.upscale_batch` with
    ``output_path`` as the output folder. ``options`` are those methods'
    keyword arguments (``scale_factor``, ``upscaler``, ``output_format``...).
    Returns ``(path, was_processed)`` or a list of them; raises as those methods do.
    """
    enhancer = ImageEnhancer(api_url=api_url, cache=cache, use_cache=use_cache, api_auth=api_auth,
                             auto_colorize=auto_colorize, force_reprocess=force_reprocess,
                             overwrite=overwrite)
    if isinstance(image_path, (str, Path)):
        return enhancer.upscale_image(image_path, output_path, **options)
    return enhancer.upscale_batch(list(image_path), output_path, **options)


__all__ = ["ImageEnhancer", "EnhancementError", "FileResult", "FilesReport", "enhance_image",
           "enhance_files", "default_output", "check_input", "BackendError", "ImageCache"]
