"""The main job: scan -> enhance what is too small (or black-and-white) -> export.

``prepare_dataset`` is what ``fluxgym-coach prepare`` runs; the TUI and the
built-in plugin call the same function. Enhanced results are selected for
export automatically (status ``"pending"`` until reviewed) unless the user
already decided otherwise for that image in a review (accepted another
variant, or rejected the enhancement).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from ..enhance.backends.base import EnhanceBackend, EnhanceParams
from ..dataset import Dataset, ScanReport
from ..events import EventSink, null_sink
from .fluxgym import ExportReport, check_target, export_dataset
from ..cache import ImageCache
from ..enhance.job import EnhanceReport, Source, record_variants, run_enhance
from ..statuses import EnhanceStatus, ReviewStatus
from ..store import ImageRecord


@dataclass(slots=True)
class PrepareReport:
    """The reports of the three steps (``enhance`` is None when nothing needed it), and
    ``large_enough``: the readable images not enhanced because they already fill
    the training resolution (:mod:`fluxgym_coach.enhance.sizing`), by relpath."""

    scan: ScanReport
    enhance: EnhanceReport | None
    export: ExportReport | None
    large_enough: list[str] = field(default_factory=list)


def enhancement_candidates(records: list[ImageRecord], resolution: int, colorize: bool,
                           params: EnhanceParams | None = None) -> list[ImageRecord]:
    """Readable images too small for ``resolution`` by the enhancement's own size rule
    (:meth:`EnhanceParams.decide`, :mod:`fluxgym_coach.enhance.sizing`: enlarged,
    capped or refused), plus black-and-white ones when ``colorize`` is set (the
    backend decides whether it can)."""
    params = params or EnhanceParams(resolution=resolution)
    out = []
    for rec in records:
        size = rec.display_size
        if rec.error or size is None or not all(size):
            continue
        if params.decide(*size).scale > 1.0 or (colorize and rec.is_grayscale):
            out.append(rec)
    return out


def source_of(dataset: Dataset, rec: ImageRecord) -> Source:
    """A pipeline :class:`~fluxgym_coach.enhance.job.Source` from a store record."""
    w, h = rec.display_size or (None, None)
    return Source(rec.relpath, dataset.image_path(rec.relpath), rec.digest, w, h, rec.is_grayscale)


def select_new_variants(dataset: Dataset, report: EnhanceReport, backend_identity: str) -> int:
    """Record variants and select them for export where the user has not decided.

    Returns how many images got a new selection.
    """
    record_variants(dataset.store, report, backend_identity)
    selection = dataset.store.selection()
    changed = 0
    for o in report.outcomes.values():
        if o.entry is None or o.status not in (EnhanceStatus.ENHANCED, EnhanceStatus.CACHED):
            continue
        current = selection.get(o.name)
        if current is None or current[1] == ReviewStatus.PENDING:
            if current is None or current[0] != o.entry.key:
                dataset.store.select_variant(o.name, o.entry.key, ReviewStatus.PENDING)
                changed += 1
    return changed


async def prepare_dataset(
    dataset: Dataset,
    out_dir: str | Path,
    name: str,
    trigger: str,
    backend: EnhanceBackend,
    params: EnhanceParams | None = None,
    resolution: int = 1024,
    repeats: int = 10,
    cache: ImageCache | None = None,
    lookup: bool = True,
    force: bool = False,
    on_event: EventSink = null_sink,
    cancel: asyncio.Event | None = None,
    vram: str = "20G",
    crop_mode: str = "zero",
) -> PrepareReport:
    """Scan, enhance and export ``dataset`` (see the module docstring).

    ``params`` are the enhancement settings; images are enlarged to
    ``resolution`` by the default size rule (:mod:`fluxgym_coach.enhance.sizing`:
    ``scale_factor`` and ``target_short_side`` are cleared, an image that fills
    its training bucket is not enlarged); ``vram`` picks train.sh's optimizer (see
    :mod:`~fluxgym_coach.export.train_script`). Raises :class:`~fluxgym_coach.export.fluxgym.ExportError`
    (before any work) when the export target is unusable, and
    :class:`~fluxgym_coach.enhance.backends.base.BackendError` when the backend's
    pre-flight check fails. Per-image problems are in the reports.
    """
    check_target(dataset, out_dir, name, trigger, resolution, repeats, force)  # fail before long work
    cache = cache or ImageCache()
    params = (params or EnhanceParams()).with_(scale_factor=None, target_short_side=None,
                                               resolution=resolution)
    from ..plugins.loader import scan_with_plugins  # plugins fire their scan events, if any

    scan = await scan_with_plugins(dataset, on_event)
    records = dataset.store.images()
    candidates = enhancement_candidates(records, resolution, params.colorize, params)
    chosen = {r.relpath for r in candidates}
    large_enough = [r.relpath for r in records if not r.error and r.relpath not in chosen
                    and r.display_size and all(r.display_size) and params.decide(*r.display_size).kept]
    enhance = None
    if candidates:
        sources = [source_of(dataset, r) for r in candidates]
        enhance = await run_enhance(sources, backend, params, cache, lookup=lookup,
                                    store=dataset.store, on_event=on_event, cancel=cancel)
        select_new_variants(dataset, enhance, backend.identity)
        if enhance.cancelled:
            return PrepareReport(scan, enhance, None, large_enough)
    export = await asyncio.to_thread(
        export_dataset, dataset, out_dir, name, trigger, resolution, repeats, force, on_event, cache,
        vram=vram, crop_mode=crop_mode)
    return PrepareReport(scan, enhance, export, large_enough)
