"""Audit: quality findings per image, duplicate groups, trainer buckets; the whole audit.

:func:`audit_dataset` is the one audit every front end uses (CLI ``audit``,
the TUI's review queue, the HTML report). For every image it returns
:class:`Finding` objects, each with a ``code``, a ``severity`` (``"error"``:
the image would break or silently drop out of training; ``"warning"``: it
hurts the LoRA; ``"info"``: worth knowing, handled by export), the measured
``value``, the ``threshold`` it was compared with and a suggested ``fix``.

Measurements and where they come from
-------------------------------------
The scan (:mod:`fluxgym_coach.dataset`) already stores, per image, the size,
format, mode, EXIF orientation, frame count, pHash, grayscale flag and
sharpness. The audit reuses them as they are. What the scan does not measure
(brightness percentiles, entropy, flatness, transparency, bit depth) is
measured once per image *content* by :func:`measure_extra` and stored in this
module's schema component ``audit`` (table ``audit_measures``) keyed by the
image digest, so a warm audit of an unchanged dataset decodes nothing, and a
renamed or copied file is not measured again.

Where the rules live
--------------------
Per-image rules are in :mod:`fluxgym_coach.audit.image_rules` (file,
resolution, quality), caption rules in :mod:`fluxgym_coach.audit.caption_rules`,
trainer-profile rules (faces cut, upscales, small buckets; the bucket
simulator of :mod:`fluxgym_coach.audit.buckets`) in
:mod:`fluxgym_coach.audit.trainer_rules`. Their public names stay importable
from here.

Thresholds
----------
Every threshold is a field of :class:`Thresholds`, with its default taken
from published practice (cleanvision, imagededup, fastdup, kohya sd-scripts;
see ``../shared/reference/caption-tools.md``) and checked against the real
photographs of ``../shared/data/real-images`` (figures in each docstring and in
``docs/audit.md``).
"""


from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import imaging
from . import keeper
from ..dataset import Dataset
from .duplicates import hex_to_uint64, near_duplicate_groups
from ..events import EventSink, ItemDone, ItemFailed, JobFinished, JobStarted, null_sink
from ..findings import Finding, Severity, severity_rank
from ..statuses import JobStatus
from .caption_rules import caption_findings, no_caption_finding  # noqa: F401  (public here)
from .image_rules import (CODES, KOHYA_FORMATS, Bucket, Thresholds, category_of,  # noqa: F401
                          file_findings, image_findings, kohya_bucket, quality_findings,
                          resolution_findings)
from .measures import (MEASURE_VERSION, ExtraMeasures, measure_file, save_measures,  # noqa: F401
                       stored_measures)
from . import trainer_rules
from .exported import exported_records
from ..store import ImageRecord, Store

#: Severities, most serious first.
ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
SEVERITIES = (ERROR, WARNING, INFO)


# ---------------------------------------------------------------------------
# extra measurements (stored by digest)
# ---------------------------------------------------------------------------
def measure_extra(path: str | Path) -> ExtraMeasures:
    """Measure brightness, entropy, flatness, transparency and bit depth of one file.

    One read and one decode at reduced size (JPEG draft mode), long side
    :data:`fluxgym_coach.imaging.WORK_SIZE` px (:func:`fluxgym_coach.audit.measures.measure_file`).
    The scan already takes these measures from its own decode; this is for files
    outside a scan. Never raises for bad images: the reason goes to ``error``.
    """
    return measure_file(path)


def ensure_measures(dataset: Dataset, records: list[ImageRecord], on_event: EventSink = null_sink,
                    workers: int | None = None, job: str | None = None,
                    more: int = 0) -> tuple[dict[str, ExtraMeasures], int]:
    """Stored extra measures for every readable record, measuring the missing ones.

    Missing digests are measured in a thread pool (``workers`` threads,
    default up to 8), one :class:`~fluxgym_coach.events.ItemDone` each, and
    stored. A front end cancels by raising from ``on_event``: queued images
    are dropped, the measures already taken are stored, the exception
    propagates. ``more``: items of the same job that come after (the audit's face
    detections), counted in its announced total. Returns ``({digest: measures},
    number measured now)``.
    """
    store = dataset.store
    digests = {r.digest for r in records if r.digest and not r.error}
    known = stored_measures(store, digests)
    todo: dict[str, ImageRecord] = {}
    for r in records:
        if r.digest in digests and r.digest not in known and r.digest not in todo:
            todo[r.digest] = r
    job = job or f"audit-{uuid.uuid4().hex[:8]}"
    on_event(JobStarted(job, "audit", len(todo) + more))
    if todo:
        n_workers = workers or min(8, os.cpu_count() or 2)
        items = list(todo.items())
        done: list[tuple[str, ExtraMeasures]] = []
        pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="audit")
        try:
            paths = [dataset.image_path(r.relpath) for _, r in items]
            for (digest, rec), m in zip(items, pool.map(measure_extra, paths)):
                done.append((digest, m))
                known[digest] = m
                if m.error:
                    on_event(ItemFailed(job, rec.relpath, m.error))
                else:
                    on_event(ItemDone(job, rec.relpath))
                if len(done) >= 256:
                    save_measures(store, done)
                    done = []
        finally:
            # On cancellation (a sink raising) or any error: drop queued work, keep what finished.
            pool.shutdown(wait=True, cancel_futures=True)
            save_measures(store, done)
    return known, len(todo)


# ---------------------------------------------------------------------------
# the audit
# ---------------------------------------------------------------------------
@dataclass(slots=True)
class DuplicateGroup:
    """Images that are the same (``kind`` ``"exact"``: same digest) or look the
    same (``"near"``: pHash within the threshold, grouped transitively).
    ``members`` are relpaths, best first; ``keeper`` the suggested one to keep;
    ``max_distance`` the largest pHash distance from the keeper (bits);
    ``reasons`` says, for every other member, why the keeper beat it
    (:func:`fluxgym_coach.audit.keeper.reason`)."""

    kind: str
    members: list[str]
    keeper: str
    max_distance: int = 0
    reasons: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(slots=True)
class ImageAudit:
    """The audit of one image: its ``relpath``, ``digest``, the ``bucket`` it
    lands in at the target resolution (None when unreadable), the ``category``
    used by the learning loop, and its ``findings`` (most serious first)."""

    relpath: str
    digest: str | None
    bucket: Bucket | None
    category: str | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def worst(self) -> str | None:
        """The most serious severity among the findings, or None when clean."""
        return min((f.severity for f in self.findings), key=severity_rank, default=None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"relpath": self.relpath, "digest": self.digest, "category": self.category,
                "bucket": None if self.bucket is None else asdict(self.bucket),
                "worst": self.worst, "findings": [f.to_dict() for f in self.findings]}


@dataclass(slots=True)
class AuditReport:
    """The audit of a dataset.

    ``images``: ``{relpath: ImageAudit}`` in relpath order; ``groups``:
    duplicate groups; ``resolution``: the target resolution (px);
    ``thresholds`` used; ``measured``: image contents (digests) measured for
    the first time by this audit or its scan (0 when warm); ``caption_rules``:
    whether the caption lint ran; ``seconds``.
    """

    images: dict[str, ImageAudit]
    groups: list[DuplicateGroup]
    resolution: int
    thresholds: Thresholds
    measured: int = 0
    caption_rules: bool = False
    seconds: float = 0.0

    def findings(self, relpath: str) -> list[Finding]:
        """The findings of one image (empty list when clean or unknown)."""
        a = self.images.get(relpath)
        return list(a.findings) if a else []

    def by_code(self) -> dict[str, list[str]]:
        """``{code: [relpaths]}`` for every code found."""
        out: dict[str, list[str]] = {}
        for rel, a in self.images.items():
            for f in a.findings:
                out.setdefault(f.code, []).append(rel)
        return dict(sorted(out.items()))

    def counts(self) -> dict[str, int]:
        """Number of images whose worst finding is each severity, plus ``"clean"``."""
        c = {ERROR: 0, WARNING: 0, INFO: 0, "clean": 0}
        for a in self.images.values():
            c[a.worst or "clean"] += 1
        return c

    def flagged(self, min_severity: str = WARNING) -> list[str]:
        """Relpaths with at least one finding of ``min_severity`` or worse."""
        limit = severity_rank(min_severity)
        return [rel for rel, a in self.images.items()
                if any(severity_rank(f.severity) <= limit for f in a.findings)]

    def exit_code(self, strict: bool = False) -> int:
        """1 when any image has an error finding (or a warning under ``strict``), else 0."""
        return 1 if self.flagged(WARNING if strict else ERROR) else 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (what ``audit --json`` prints)."""
        return {"resolution": self.resolution, "thresholds": self.thresholds.to_dict(),
                "measured": self.measured, "caption_rules": self.caption_rules,
                "seconds": round(self.seconds, 3), "counts": self.counts(),
                "by_code": {k: len(v) for k, v in self.by_code().items()},
                "groups": [g.to_dict() for g in self.groups],
                "images": [a.to_dict() for a in self.images.values()]}


def duplicate_groups(records: list[ImageRecord], max_distance: int,
                     extras: dict[str, ExtraMeasures] | None = None) -> list[DuplicateGroup]:
    """Exact groups (same digest) and near groups (pHash within ``max_distance``, transitive).

    Near groups are connected components (union-find) of the graph whose
    edges join images at most ``max_distance`` bits apart, so A~B and B~C put
    A, B and C in one group. A near group made only of copies of one digest
    is reported as exact only. Members are sorted best first by
    :func:`fluxgym_coach.audit.keeper.rank` (more pixels, higher bit depth and
    lossless, no transparency, original name, then colour, sharpness, caption,
    name; ``extras`` give bit depth and transparency); the first is the
    suggested keeper, and ``reasons`` say why it beat each other member.
    """
    readable = [r for r in records if r.digest and not r.error]
    groups: list[DuplicateGroup] = []
    by_digest: dict[str, list[ImageRecord]] = {}
    for r in readable:
        by_digest.setdefault(r.digest, []).append(r)

    def ordered(members: list[ImageRecord]) -> list[ImageRecord]:
        return keeper.rank(members, extras)

    def why(m: list[ImageRecord]) -> dict[str, str]:
        return {r.relpath: keeper.reason(m[0], r, extras) for r in m[1:]}

    for digest, members in by_digest.items():
        if len(members) > 1:
            m = ordered(members)
            groups.append(DuplicateGroup("exact", [r.relpath for r in m], m[0].relpath, 0, why(m)))
    hashed = [r for r in readable if r.phash]
    for indices in near_duplicate_groups(hex_to_uint64([r.phash for r in hashed]), max_distance):
        members = [hashed[i] for i in indices]
        if len({r.digest for r in members}) < 2:
            continue
        m = ordered(members)
        far = max(imaging.hamming(m[0].phash, r.phash) for r in m[1:])
        groups.append(DuplicateGroup("near", [r.relpath for r in m], m[0].relpath, far, why(m)))
    groups.sort(key=lambda g: (g.kind, g.members[0]))
    return groups


#: Store setting holding the parameters of the last audit (what :func:`stored_findings` reuses).
SETTINGS_KEY = "audit"


def saved_trigger(dataset: Dataset) -> str | None:
    """The dataset's trigger word (:attr:`~fluxgym_coach.settings.DatasetSettings.trigger`), or None."""
    from ..settings import load_settings

    return load_settings(dataset.store).trigger


def build_report(records: list[ImageRecord], extras: dict[str, ExtraMeasures], *,
                 resolution: int, thresholds: Thresholds, trigger: str | None = None,
                 caption_rules: bool = True, measured: int = 0,
                 buckets: dict[str, trainer_rules.BucketInput] | None = None,
                 exported: Sequence[ImageRecord] | None = None) -> AuditReport:
    """Assemble the audit from image records and their extra measures (no I/O).

    Per-image findings (:func:`image_findings`), caption rules
    (:func:`caption_findings`), trainer-profile findings for the images in
    ``buckets`` (:func:`fluxgym_coach.audit.trainer_rules.bucket_inputs`: size the
    trainer reads, stored faces; none when None), then duplicate groups
    (:func:`duplicate_groups`) whose findings go on every member: a warning
    naming the keeper on the others, an info on the keeper. ``exported``: the
    same records as the export writes them
    (:func:`fluxgym_coach.audit.exported.exported_records`: a selected enhanced
    variant's size), on which the per-image rules judge; default ``records``.
    """
    started = time.perf_counter()
    th = thresholds
    captions = caption_findings(records, trigger) if caption_rules else None
    images: dict[str, ImageAudit] = {}
    for rec, shown in zip(records, exported if exported is not None else records, strict=True):
        extra = extras.get(rec.digest) if rec.digest else None
        findings, bucket = image_findings(shown, extra, resolution, th)
        readable = bucket is not None
        if readable and captions is not None:
            findings.extend(captions.get(rec.relpath, []))
        elif readable and (missing := no_caption_finding(rec)) is not None:
            findings.append(missing)
        inp = (buckets or {}).get(rec.relpath) if readable else None
        if inp is not None:
            findings.extend(_trainer_findings(rec.relpath, inp, findings, resolution, th))
        images[rec.relpath] = ImageAudit(rec.relpath, rec.digest, bucket,
                                         category_of(shown, extra) if readable else None, findings)
    groups = duplicate_groups(records, th.near_duplicate_distance, extras)
    for g in groups:
        _add_duplicate_findings(images, g, th)
    for a in images.values():
        a.findings.sort(key=lambda f: (severity_rank(f.severity), f.category, f.code))
    return AuditReport(images=images, groups=groups, resolution=resolution, thresholds=th,
                       measured=measured, caption_rules=captions is not None,
                       seconds=time.perf_counter() - started)


def _trainer_findings(relpath: str, inp: trainer_rules.BucketInput, found: list[Finding],
                      resolution: int, th: Thresholds) -> list[Finding]:
    """Trainer-profile findings of one image; an upscale is left to ``low_resolution``
    when the image has no enhanced variant and that finding is already there."""
    said = any(f.code == "low_resolution" for f in found)
    raw = trainer_rules.profile_findings(relpath, inp.size, resolution, inp.faces)
    return trainer_rules.trainer_findings(raw, upscale_tolerance=th.upscale_tolerance,
                                          report_upscale=inp.enhanced or not said)


def _add_duplicate_findings(images: dict[str, ImageAudit], g: DuplicateGroup, th: Thresholds) -> None:
    """Put group ``g``'s finding on each member: info on the keeper, a warning on the others."""
    code = "exact_duplicate" if g.kind == "exact" else "near_duplicate"
    what = "identical file" if g.kind == "exact" else "looks the same"
    runner_up = g.reasons.get(g.members[1], "") if len(g.members) > 1 else ""
    for rel in g.members:
        others = [m for m in g.members if m != rel]
        is_keeper = rel == g.keeper
        images[rel].findings.append(Finding(
            code, INFO if is_keeper else WARNING,
            f"{what} as {', '.join(others[:3])}{' ...' if len(others) > 3 else ''}"
            + (f" (suggested keeper: {runner_up})" if is_keeper
               else f"; keep {g.keeper} ({g.reasons.get(rel, '')})"),
            value=g.max_distance if g.kind == "near" else 0,
            threshold=th.near_duplicate_distance if g.kind == "near" else 0,
            fix="keep it; reject the others" if is_keeper else f"reject it and keep {g.keeper}",
            category="duplicate", detail={"group": g.members, "keeper": g.keeper,
                                          "why": g.reasons.get(rel) if not is_keeper else runner_up}))


def audit_dataset(dataset: Dataset, *, resolution: int = 1024, thresholds: Thresholds | None = None,
                  trigger: str | None = None, caption_rules: bool = True, scan: bool = True,
                  on_event: EventSink = null_sink, workers: int | None = None) -> AuditReport:
    """Audit every image of ``dataset`` at the target ``resolution`` (kohya's side length, px).

    With ``scan`` (default) the dataset is scanned first (incremental: only
    changed files are read). Extra measures missing from the store are taken
    in threads (events of kind ``"audit"`` report progress); everything else
    comes from the store, so a second audit of an unchanged dataset decodes
    nothing. With ``caption_rules`` the caption rules of
    :mod:`fluxgym_coach.captions.text` run too (see :func:`caption_findings`;
    ``trigger`` is passed to them, default: the dataset's saved trigger word,
    :func:`saved_trigger`); without them, or when that module is absent, only
    a ``no_caption`` finding marks images without a caption.
    The parameters are saved in the store (:data:`SETTINGS_KEY`) for
    :func:`stored_findings`. Raises ValueError for a resolution below 256 px.
    """
    if resolution < 256:
        raise ValueError(f"resolution must be at least 256 px, got {resolution}")
    th = thresholds or Thresholds()
    started = time.perf_counter()
    if trigger is None:
        trigger = saved_trigger(dataset)
    scanned = 0
    if scan:
        from ..core import scan_blocking  # plugins hear of the images it indexes

        scanned = scan_blocking(dataset, on_event).measured
    records = dataset.images()
    job = f"audit-{uuid.uuid4().hex[:8]}"
    inputs = trainer_rules.bucket_inputs(dataset.store, records)
    faces = trainer_rules.face_jobs(dataset, records, resolution, inputs)  # one bar: measures, faces
    extras, measured = ensure_measures(dataset, records, on_event=on_event, workers=workers, job=job,
                                       more=len(faces))
    measured += scanned
    buckets = trainer_rules.audit_bucket_inputs(dataset, records, resolution, workers, jobs=faces,
                                                inputs=inputs, on_event=on_event, job=job)
    report = build_report(records, extras, resolution=resolution, thresholds=th,
                          trigger=trigger, caption_rules=caption_rules, measured=measured,
                          buckets=buckets,
                          exported=exported_records(dataset.store, records))
    report.seconds = time.perf_counter() - started
    dataset.store.set_setting(SETTINGS_KEY, {"resolution": resolution,
                                             "caption_rules": caption_rules,
                                             "thresholds": th.to_dict()})
    flagged = sum(1 for a in report.images.values() if a.worst in (ERROR, WARNING))
    on_event(JobFinished(job, "audit", JobStatus.DONE, len(report.images), 0,
                         {"measured": measured, "flagged": flagged, "groups": len(report.groups)}))
    return report


def stored_report(store: Store, *, resolution: int | None = None, trigger: str | None = None,
                  thresholds: Thresholds | None = None) -> AuditReport:
    """The audit rebuilt from the store alone: no scan, no decode (fast enough for a UI).

    Parameters left None come from the last :func:`audit_dataset` run
    (resolution 1024 and default thresholds if there was none). Images whose
    extra measures were never taken get only the findings the scan's
    measurements allow (no exposure, entropy or alpha findings).
    """
    saved = store.get_setting(SETTINGS_KEY, {}) or {}
    if thresholds is None:
        known = {k: v for k, v in (saved.get("thresholds") or {}).items()
                 if k in Thresholds.__dataclass_fields__}
        thresholds = Thresholds(**known)
    records = store.images()
    return build_report(records, stored_measures(store),
                        resolution=resolution or int(saved.get("resolution") or 1024),
                        thresholds=thresholds,
                        trigger=trigger if trigger is not None else _settings_trigger(store),
                        caption_rules=bool(saved.get("caption_rules", True)),
                        buckets=trainer_rules.bucket_inputs(store, records),
                        exported=exported_records(store, records))


def _settings_trigger(store: Store) -> str | None:
    from ..settings import load_settings

    return load_settings(store).trigger


def stored_findings(store: Store) -> dict[str, list[Finding]]:
    """``{relpath: findings}`` of every image with at least one finding, from the store
    alone (see :func:`stored_report`): what the TUI shows next to each image."""
    report = stored_report(store)
    return {rel: a.findings for rel, a in report.images.items() if a.findings}
