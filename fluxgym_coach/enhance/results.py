"""What an enhancement job works on and what it reports: sources, outcomes, reports.

:class:`Source` is an input image, :class:`Outcome` what happened to it,
:class:`EnhanceReport` all outcomes of a job (see :mod:`fluxgym_coach.enhance.job`
for the job itself); :func:`describe_source` measures what a job needs of a
file and :func:`record_variants` records a job's results in a dataset store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import imaging
from ..cache import CacheEntry
from ..statuses import EnhanceStatus
from ..store import Store, VariantRecord

COLORIZE_SKIPPED = "black-and-white image not colorized: colorization needs a Forge backend"
#: Threads that read and measure source images while a job is planned.
DESCRIBE_THREADS = 4


@dataclass(slots=True)
class Source:
    """An input image: ``name`` (relpath in a dataset, or the file name), its
    ``path``, and what is known of it already (``digest``, upright ``width`` and
    ``height``, ``is_grayscale``); unknown values are measured when planning."""

    name: str
    path: Path
    digest: str | None = None
    width: int | None = None
    height: int | None = None
    is_grayscale: bool | None = None


@dataclass(slots=True)
class Outcome:
    """What happened to one source. ``status`` (an :class:`EnhanceStatus`): ``PENDING``
    (not reached yet), ``ENHANCED`` (computed now), ``CACHED`` (found in the cache or
    the journal), ``SKIPPED`` (nothing to do, ``reason`` says why) or ``FAILED``
    (``reason`` says why). ``entry``
    is the cached result for enhanced/cached; ``kind`` the operations done
    (``"upscale"``, ``"colorize"``, ``"colorize+upscale"``); ``params`` the
    cache parameters of the final step; ``warnings`` non-fatal notes."""

    name: str
    status: EnhanceStatus
    reason: str = ""
    entry: CacheEntry | None = None
    kind: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, int] | None = None
    warnings: list[str] = field(default_factory=list)
    digest: str | None = None


@dataclass(slots=True)
class EnhanceReport:
    """All outcomes of a job, by source name, plus the job id and whether it was cancelled."""

    job_id: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    cancelled: bool = False
    seconds: float = 0.0
    backend_requests: int = 0

    def by_status(self, status: EnhanceStatus) -> list[Outcome]:
        """Outcomes with the given status, in source order."""
        return [o for o in self.outcomes.values() if o.status == status]

    @property
    def failed(self) -> list[Outcome]:
        """Outcomes that failed."""
        return self.by_status(EnhanceStatus.FAILED)

    @property
    def large_enough(self) -> list[Outcome]:
        """Images kept as they are because they already fill their training bucket
        (:data:`~fluxgym_coach.enhance.sizing.LARGE_ENOUGH`), in source order."""
        from .sizing import LARGE_ENOUGH

        return [o for o in self.by_status(EnhanceStatus.SKIPPED) if o.reason.startswith(LARGE_ENOUGH)]

    def summary_lines(self) -> list[str]:
        """What a front end says after the per-image lines, one sentence each:
        images kept because they are large enough, images enlarged less than
        needed (capped at the limit) and images refused by the resize limits
        (``["3 images already large enough: kept (not enlarged)"]``)."""
        from .. import imaging
        from .sizing import CAPPED, REFUSED

        def n(items: list[Outcome]) -> str:
            return f"{len(items)} image{'s' if len(items) != 1 else ''}"

        lines = []
        if kept := self.large_enough:
            lines.append(f"{n(kept)} already large enough: kept (not enlarged)")
        capped = [o for o in self.outcomes.values() if any(CAPPED in w for w in o.warnings)]
        if capped:
            lines.append(f"{n(capped)} enlarged only x{imaging.MAX_UPSCALE:g} (the limit), still below "
                         f"the resolution: {', '.join(o.name for o in capped[:5])}"
                         f"{' ...' if len(capped) > 5 else ''}")
        refused = [o for o in self.failed if o.reason.startswith(REFUSED)]
        if refused:
            lines.append(f"{n(refused)} refused by the resize limits (x{imaging.MAX_UPSCALE:g}, "
                         f"{imaging.MAX_ASPECT:g}:1): {', '.join(o.name for o in refused[:5])}"
                         f"{' ...' if len(refused) > 5 else ''}")
        return lines


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def describe_source(source: Source) -> Source:
    """Fill in the digest, upright size (px) and grayscale flag of a source.

    Returns ``source`` itself when all are known; otherwise reads the file
    (blocking: call it in a thread). Raises
    :class:`~fluxgym_coach.imaging.ImageReadError` or OSError."""
    if source.digest and source.width and source.height and source.is_grayscale is not None:
        return source
    data = source.path.read_bytes()
    im = imaging.open_image(data, source.path)
    info = imaging.probe(im)
    m = imaging.measure(im)
    w, h = (info.height, info.width) if info.orientation in (5, 6, 7, 8) else (info.width, info.height)
    return Source(source.name, source.path, imaging.digest_bytes(data), w, h, m.is_grayscale)


def record_variants(store: Store, report: EnhanceReport, backend_identity: str) -> list[VariantRecord]:
    """Record every enhanced/cached result of ``report`` as a variant in the dataset store."""
    recorded = []
    for o in report.outcomes.values():
        if o.entry is None or o.status not in (EnhanceStatus.ENHANCED, EnhanceStatus.CACHED):
            continue
        size = o.size or (None, None)
        v = VariantRecord(relpath=o.name, cache_key=o.entry.key, digest=o.digest or "",
                          kind=o.kind, params=o.params, backend=backend_identity, path=str(o.entry.path),
                          width=size[0] if size else None, height=size[1] if size and len(size) > 1 else None)
        store.add_variant(v)
        recorded.append(v)
    return recorded
