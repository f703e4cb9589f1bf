"""Audit: quality findings per image, duplicate groups, and kohya bucket placement.

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

Thresholds
----------
Every threshold is a field of :class:`Thresholds`, with its default taken
from published practice (cleanvision, imagededup, fastdup, kohya sd-scripts;
see ``../shared/reference/caption-tools.md``) and checked against the real
photographs of ``../shared/data/real-images`` (figures in each docstring and in
``docs/audit.md``).
"""

from __future__ import annotations

import importlib
import math
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import imaging
from . import keeper
from ..dataset import Dataset
from .duplicates import hex_to_uint64, near_duplicate_groups
from ..events import EventSink, ItemDone, ItemFailed, JobFinished, JobStarted, null_sink
from ..findings import Finding, Severity
from .measures import (MEASURE_VERSION, ExtraMeasures, measure_file, save_measures,  # noqa: F401
                       stored_measures)
from ..store import ImageRecord, Store

#: Severities, most serious first.
ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
SEVERITIES = (ERROR, WARNING, INFO)
_RANK = {ERROR: 0, WARNING: 1, INFO: 2}

#: File formats kohya sd-scripts trains on (``IMAGE_EXTENSIONS`` in ``library/train_util.py``).
KOHYA_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "BMP"})
_EXTENSION_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                      ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF"}

# ---------------------------------------------------------------------------
# thresholds
# ---------------------------------------------------------------------------
@dataclass(slots=True)
class Thresholds:
    """Every audit threshold, with its source.

    * ``blur_variance`` (default 100): an image is blurry when the variance of
      its 4-neighbour Laplacian, measured by the scan on a grayscale copy whose
      long side is 256 px (:data:`fluxgym_coach.imaging.WORK_SIZE`), is below
      this. Published values for the same statistic: 100 (Rosebrock, "Blur
      detection with OpenCV", PyImageSearch 2015) and 150 (fastdup's blur
      flag). On the real images the motion-blurred clock measures 13.3 and the
      sharp photographs 123 (retina, a smooth fundus photo) to 1570
      (motorcycle); 150 would flag the retina, so 100 is kept.
    * ``dark_p99`` (0.32) and ``light_p5`` (0.95): cleanvision's dark/light
      issue. Brightness per pixel is sqrt(0.241 R² + 0.691 G² + 0.068 B²)/255;
      an image is too dark when its 99th percentile is below ``dark_p99``, too
      bright when its 5th percentile is above ``light_p5`` (cleanvision: 1 - p5
      < 0.05). Real images: p99 from 0.54 (Hubble deep field, a dark sky that
      is rightly *not* flagged) to 1.0.
    * ``min_aspect`` (0.35): cleanvision's odd-aspect-ratio issue,
      min(w/h, h/w) < 0.35 (about 1:2.9). kohya's buckets at 64-px steps reach
      1:4 at resolution 1024, but such images lose most of their pixels.
    * ``min_entropy`` (3.0 bits): cleanvision's low-information issue,
      Pillow ``Image.entropy()`` of the RGB image (histogram of all bands) times
      0.1 below 0.3. Real images: 3.17 (horse, a line drawing) to 9.3.
    * ``near_duplicate_distance`` (10 bits of 64): imagededup's default maximum
      Hamming distance for pHash duplicates (cleanvision uses 0, exact hash
      match only). Real images: the motorcycle stereo pair is at 4, unrelated
      photos at 20 or more.
    * ``max_crop`` (0.10): share of the resized image's area that kohya's
      bucket crop may cut before a finding is raised (our choice: Fluxgym
      issues #168/#455 are about centre crops cutting heads off).
    * ``max_upscale`` (4.0): above this upscale factor the finding becomes an
      error: a 4x model (R-ESRGAN 4x+, the seed's default upscaler) invents
      detail beyond that.
    * ``upscale_tolerance`` (1.05): upscaling by at most 5 % is not reported
      (Lanczos handles it without visible loss).
    """

    blur_variance: float = 100.0
    dark_p99: float = 0.32
    light_p5: float = 0.95
    min_aspect: float = 0.35
    min_entropy: float = 3.0
    near_duplicate_distance: int = 10
    max_crop: float = 0.10
    max_upscale: float = 4.0
    upscale_tolerance: float = 1.05

    def to_dict(self) -> dict[str, Any]:
        """The thresholds as a plain dict."""
        return asdict(self)


# ---------------------------------------------------------------------------
# kohya buckets
# ---------------------------------------------------------------------------
@dataclass(slots=True, frozen=True)
class Bucket:
    """Where kohya puts an image: ``size`` = the bucket (w, h) in px,
    ``resized`` = the image size after scaling to cover the bucket, ``scale``
    = that scaling factor (> 1 means upscaled), ``crop`` = share of the
    resized area cut off (0..1)."""

    size: tuple[int, int]
    resized: tuple[int, int]
    scale: float
    crop: float


def bucket_resolutions(resolution: int, min_size: int = 256, max_size: int = 1024,
                       step: int = 64) -> list[tuple[int, int]]:
    """The bucket sizes kohya sd-scripts makes for ``resolution`` (square area).

    Same algorithm as ``make_bucket_resolutions`` in sd-scripts
    ``library/model_util.py``: the square ``floor(sqrt(area)/step)*step``,
    then for every width from ``min_size`` to ``max_size`` in ``step``
    increments the largest multiple of ``step`` height within the area and
    ``max_size`` (and the transposed pair). Defaults are sd-scripts'
    ``--min_bucket_reso 256 --max_bucket_reso 1024 --bucket_reso_steps 64``;
    ``max_size`` is raised to ``resolution`` when smaller, as sd-scripts asserts.
    """
    max_size = max(max_size, resolution)
    area = resolution * resolution
    resos = {(int(math.sqrt(area) // step) * step,) * 2}
    width = min_size
    while width <= max_size:
        height = min(max_size, int((area // width) // step) * step)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
        width += step
    return sorted(resos)


_BUCKETS: dict[int, tuple[list[tuple[int, int]], np.ndarray]] = {}
_SELECTED: dict[tuple[int, int, int], "Bucket"] = {}


def select_bucket(width: int, height: int, resolution: int) -> Bucket:
    """The bucket kohya picks for an upright ``width`` x ``height`` image.

    ``BucketManager.select_bucket`` of sd-scripts (upscaling allowed): the
    bucket whose aspect ratio is nearest, the image scaled to cover it, the
    excess centre-cropped. Raises ValueError for non-positive sizes.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    memo = _SELECTED.get((width, height, resolution))
    if memo is not None:  # datasets repeat sizes: camera formats, exports
        return memo
    cached = _BUCKETS.get(resolution)
    if cached is None:
        resos = bucket_resolutions(resolution)
        cached = (resos, np.array([w / h for w, h in resos]))
        _BUCKETS[resolution] = cached
    resos, ratios = cached
    aspect = width / height
    if (width, height) in resos:
        reso = (width, height)
    else:
        reso = resos[int(np.abs(ratios - aspect).argmin())]
    if aspect > reso[0] / reso[1]:
        scale = reso[1] / height
    else:
        scale = reso[0] / width
    resized = (int(width * scale + 0.5), int(height * scale + 0.5))
    crop = 1.0 - (reso[0] * reso[1]) / max(1, resized[0] * resized[1])
    bucket = Bucket(size=reso, resized=resized, scale=scale, crop=max(0.0, crop))
    if len(_SELECTED) < 65536:
        _SELECTED[(width, height, resolution)] = bucket
    return bucket


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
                    workers: int | None = None, job: str | None = None) -> tuple[dict[str, ExtraMeasures], int]:
    """Stored extra measures for every readable record, measuring the missing ones.

    Missing digests are measured in a thread pool (``workers`` threads,
    default up to 8), one :class:`~fluxgym_coach.events.ItemDone` each, and
    stored. A front end cancels by raising from ``on_event``: queued images
    are dropped, the measures already taken are stored, the exception
    propagates. Returns ``({digest: measures}, number measured now)``.
    """
    store = dataset.store
    digests = {r.digest for r in records if r.digest and not r.error}
    known = stored_measures(store, digests)
    todo: dict[str, ImageRecord] = {}
    for r in records:
        if r.digest in digests and r.digest not in known and r.digest not in todo:
            todo[r.digest] = r
    job = job or f"audit-{uuid.uuid4().hex[:8]}"
    on_event(JobStarted(job, "audit", len(todo)))
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
# findings
# ---------------------------------------------------------------------------
#: Every finding code this module emits, with its category (caption rule codes come in addition).
CODES = {
    "unreadable": "file", "animated": "file", "cmyk": "file", "high_bit_depth": "file",
    "alpha": "file", "exif_rotated": "file", "format_not_trained": "file",
    "extension_mismatch": "file",
    "low_resolution": "resolution", "bucket_crop": "resolution", "odd_aspect": "resolution",
    "blurry": "quality", "too_dark": "quality", "too_bright": "quality", "grayscale": "quality",
    "low_information": "quality",
    "exact_duplicate": "duplicate", "near_duplicate": "duplicate",
    "no_caption": "caption",
}
# Caption rule codes are those of fluxgym_coach.captions.text with a "caption-" prefix.


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
        return min((f.severity for f in self.findings), key=_RANK.__getitem__, default=None)

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
        limit = _RANK[min_severity]
        return [rel for rel, a in self.images.items()
                if any(_RANK[f.severity] <= limit for f in a.findings)]

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


def category_of(rec: ImageRecord, extra: ExtraMeasures | None, small_below: int = 1024) -> str:
    """The learning-loop category of an image: ``"<bw|colour>/<small|large>/<photo|drawing>"``.

    ``small`` when the upright shorter side is below ``small_below`` px (1024,
    the resolution FLUX LoRAs are usually trained at); ``drawing`` per
    :attr:`ExtraMeasures.is_drawing` (``photo`` when not measured).
    """
    tone = "bw" if rec.is_grayscale else "colour"
    short = rec.short_side or 0
    size = "small" if short < small_below else "large"
    kind = "drawing" if extra is not None and extra.is_drawing else "photo"
    return f"{tone}/{size}/{kind}"


def _pct(x: float) -> str:
    p = x * 100
    return f"{p:.0f} %" if p >= 1 or p == 0 else f"{p:.2g} %"


def image_findings(rec: ImageRecord, extra: ExtraMeasures | None, resolution: int,
                   th: Thresholds) -> tuple[list[Finding], Bucket | None]:
    """Findings of one image from its stored record and extra measures (no I/O).

    Returns ``(findings, bucket)``; duplicates and caption rules are added by
    :func:`audit_dataset`, which sees the whole dataset.
    """
    out: list[Finding] = []
    error = rec.error or (extra.error if extra else None)
    if error or not rec.width or not rec.height:
        out.append(Finding("unreadable", ERROR, f"cannot be read as an image: {error or 'no size'}",
                           value=error, fix="re-copy or re-export the file, or remove it",
                           category="file"))
        return out, None
    w, h = rec.display_size or (rec.width, rec.height)
    name = rec.relpath.rpartition("/")[2]
    ext = "." + name.rpartition(".")[2].lower() if "." in name.lstrip(".") else ""
    # -- file --------------------------------------------------------------
    if (rec.n_frames or 1) > 1:
        out.append(Finding("animated", WARNING, f"animated image with {rec.n_frames} frames: only the "
                           "first frame is used", value=rec.n_frames, threshold=1,
                           fix="export a still of the frame you want", category="file"))
    if rec.mode == "CMYK":
        out.append(Finding("cmyk", WARNING, "CMYK image: colours shift when converted to RGB without "
                           "its colour profile", value=rec.mode, threshold="RGB",
                           fix="convert to sRGB in an image editor that applies the ICC profile",
                           category="file"))
    if extra is not None and (extra.bit_depth or 8) > 8:
        out.append(Finding("high_bit_depth", INFO, f"{extra.bit_depth}-bit image: export writes 8 bits "
                           "per channel", value=extra.bit_depth, threshold=8,
                           fix="nothing to do unless the tones matter; export converts it",
                           category="file"))
    if extra is not None and extra.alpha_fraction is not None:
        if extra.alpha_fraction > 0:
            out.append(Finding("alpha", WARNING, f"{_pct(extra.alpha_fraction)} of the pixels are "
                               "transparent: they will be flattened onto white (RGBA crashes Fluxgym "
                               "when saved as JPEG, issue #109)", value=round(extra.alpha_fraction, 4),
                               threshold=0.0, fix="check the image on white, or give it a background",
                               category="file"))
        else:
            out.append(Finding("alpha", INFO, "alpha channel present but fully opaque: export drops it",
                               value=0.0, threshold=0.0, fix="nothing to do", category="file"))
    if rec.orientation not in (None, 1):
        out.append(Finding("exif_rotated", INFO, f"EXIF orientation {rec.orientation}: Fluxgym's resize "
                           "drops EXIF and would train it sideways", value=rec.orientation, threshold=1,
                           fix="export applies the rotation; nothing to do", category="file"))
    if rec.format and rec.format not in KOHYA_FORMATS:
        out.append(Finding("format_not_trained", INFO, f"{rec.format} is silently ignored by kohya "
                           "sd-scripts", value=rec.format, threshold=sorted(KOHYA_FORMATS),
                           fix="export converts it to PNG", category="file"))
    expected = _EXTENSION_FORMATS.get(ext)
    if expected and rec.format and rec.format != expected:
        out.append(Finding("extension_mismatch", WARNING, f"the file is {rec.format} but named {ext}",
                           value=rec.format, threshold=expected,
                           fix="rename it with the right extension; export writes the real format",
                           category="file"))
    # -- resolution --------------------------------------------------------
    bucket = select_bucket(w, h, resolution)
    if bucket.scale > th.upscale_tolerance:
        factor = imaging.ceil_scale(bucket.scale)
        sev = ERROR if bucket.scale > th.max_upscale else WARNING
        out.append(Finding("low_resolution", sev, f"{w}x{h} is below resolution {resolution}: kohya would "
                           f"stretch it x{bucket.scale:.2f} to fill its {bucket.size[0]}x{bucket.size[1]} "
                           "bucket", value=round(bucket.scale, 3), threshold=th.upscale_tolerance,
                           fix=(f"upscale x{factor:g} before training (enhance or prepare does it)"
                                if sev == WARNING else
                                f"find a larger source: x{bucket.scale:.1f} exceeds what a 4x upscaler "
                                "restores" + (f" (beyond x{imaging.MAX_UPSCALE:g} fluxgym-coach refuses "
                                              "to resize it)" if bucket.scale > imaging.MAX_UPSCALE
                                              else "")),
                           category="resolution",
                           detail={"short_side": min(w, h), "scale_factor": factor}))
    if bucket.crop > th.max_crop:
        out.append(Finding("bucket_crop", WARNING, f"the {bucket.size[0]}x{bucket.size[1]} bucket crops "
                           f"{_pct(bucket.crop)} of the image", value=round(bucket.crop, 4),
                           threshold=th.max_crop, fix="crop it yourself to keep what matters",
                           category="resolution", detail={"bucket": list(bucket.size)}))
    aspect = min(w / h, h / w)
    if aspect < 1 / imaging.MAX_ASPECT:
        out.append(Finding("odd_aspect", ERROR, f"extreme aspect ratio 1:{1 / aspect:.1f}: beyond "
                           f"{imaging.MAX_ASPECT:g}:1 fluxgym-coach refuses to resize it",
                           value=round(aspect, 3), threshold=round(1 / imaging.MAX_ASPECT, 3),
                           fix="crop it to a ratio between 1:2.9 and 2.9:1, or remove it",
                           category="resolution"))
    elif aspect < th.min_aspect:
        out.append(Finding("odd_aspect", WARNING, f"unusual aspect ratio 1:{1 / aspect:.1f}",
                           value=round(aspect, 3), threshold=th.min_aspect,
                           fix="crop to a ratio between 1:2.9 and 2.9:1", category="resolution"))
    # -- quality -----------------------------------------------------------
    if extra is not None and extra.bright_p99 is not None:
        if extra.bright_p99 < th.dark_p99:
            out.append(Finding("too_dark", WARNING, "99 % of the pixels are below "
                               f"{_pct(extra.bright_p99)} brightness", value=extra.bright_p99,
                               threshold=th.dark_p99, fix="brighten it (levels/curves) or reject it",
                               category="quality"))
        elif extra.bright_p5 is not None and extra.bright_p5 > th.light_p5:
            out.append(Finding("too_bright", WARNING, "95 % of the pixels are above "
                               f"{_pct(extra.bright_p5)} brightness", value=extra.bright_p5,
                               threshold=th.light_p5, fix="darken it (levels/curves) or reject it",
                               category="quality"))
    if rec.is_grayscale:
        out.append(Finding("grayscale", WARNING, "black-and-white image: the LoRA learns to draw in "
                           "black and white", value=True, threshold=False,
                           fix="colorize it (enhance with a Forge backend), or keep it if black and "
                               "white is the style", category="quality"))
    if extra is not None and extra.entropy is not None and extra.entropy < th.min_entropy:
        out.append(Finding("low_information", WARNING, f"entropy {extra.entropy:.2f} bits: "
                           "nearly blank or flat",
                           value=extra.entropy, threshold=th.min_entropy,
                           fix="check it is not blank or a flat placeholder", category="quality"))
    if rec.sharpness is not None and rec.sharpness < th.blur_variance:
        # The variance of the Laplacian scales with contrast: on a dark, washed-out or
        # flat image it is low whatever the focus, so the finding drops to info there.
        low_contrast = any(f.code in ("too_dark", "too_bright", "low_information") for f in out)
        out.append(Finding("blurry", INFO if low_contrast else WARNING,
                           f"variance of the Laplacian {rec.sharpness:.1f} (256-px copy): "
                           + ("low, but so is the contrast; fix the exposure first" if low_contrast
                              else "soft or motion-blurred"),
                           value=rec.sharpness, threshold=th.blur_variance,
                           fix="replace with a sharper shot, or reject it", category="quality"))
    return out, bucket


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


def _caption_rules() -> tuple[Any, Any]:
    """``(lint_many, lint)`` from :mod:`fluxgym_coach.captions.text` when present (imported
    lazily, so the audit works without it); each None when missing."""
    try:
        mod = importlib.import_module("fluxgym_coach.captions.text")
    except ModuleNotFoundError as exc:
        if exc.name == "fluxgym_coach.captions.text":
            return None, None
        raise
    return getattr(mod, "lint_many", None), getattr(mod, "lint", None)


def caption_findings(records: list[ImageRecord], trigger: str | None) -> dict[str, list[Finding]] | None:
    """Caption rule findings per relpath, or None when the caption rules are not installed.

    Uses ``captions.lint_many`` (per-caption rules plus dataset-wide ones:
    duplicate captions, length outliers) or else ``captions.lint`` per
    caption; their codes get a ``"caption-"`` prefix (``"caption-missing"``,
    ``"caption-trigger-missing"``...), their severities are kept.
    """
    lint_many, lint = _caption_rules()
    texts = {r.relpath: r.caption for r in records if not r.error}
    if lint_many is not None:
        encodings = {r.relpath: r.caption_encoding for r in records if not r.error}
        raw = lint_many(texts, trigger, encodings=encodings)
    elif lint is not None:
        raw = {rel: lint(text, trigger) for rel, text in texts.items()}
    else:
        return None
    return {rel: [_convert_caption_finding(f) for f in fs] for rel, fs in raw.items()}


def _convert_caption_finding(f: Finding) -> Finding:
    """A caption rule's finding as an audit finding: its code gets the ``caption-`` prefix."""
    return Finding(f"caption-{f.code}", f.severity, f.message, value=f.value, threshold=f.threshold,
                   fix=f.fix, category="caption", detail=dict(f.detail))


#: Store setting holding the parameters of the last audit (what :func:`stored_findings` reuses).
SETTINGS_KEY = "audit"


def saved_trigger(dataset: Dataset) -> str | None:
    """The dataset's trigger word (:attr:`~fluxgym_coach.settings.DatasetSettings.trigger`), or None."""
    from ..settings import load_settings

    return load_settings(dataset.store).trigger


def build_report(records: list[ImageRecord], extras: dict[str, ExtraMeasures], *,
                 resolution: int, thresholds: Thresholds, trigger: str | None = None,
                 caption_rules: bool = True, measured: int = 0) -> AuditReport:
    """Assemble the audit from image records and their extra measures (no I/O).

    Per-image findings (:func:`image_findings`), caption rules
    (:func:`caption_findings`), then duplicate groups
    (:func:`duplicate_groups`) whose findings go on every member: a warning
    naming the keeper on the others, an info on the keeper.
    """
    started = time.perf_counter()
    th = thresholds
    captions = caption_findings(records, trigger) if caption_rules else None
    images: dict[str, ImageAudit] = {}
    for rec in records:
        extra = extras.get(rec.digest) if rec.digest else None
        findings, bucket = image_findings(rec, extra, resolution, th)
        readable = bucket is not None
        if readable and captions is not None:
            findings.extend(captions.get(rec.relpath, []))
        elif readable and not (rec.caption or "").strip():
            findings.append(Finding("no_caption", WARNING if rec.caption is not None else INFO,
                                    "empty caption sidecar: kohya refuses empty captions"
                                    if rec.caption is not None else "no caption sidecar",
                                    value=rec.caption, threshold="non-empty text",
                                    fix="caption it (fluxgym-coach caption) or let prepare draft one",
                                    category="caption"))
        images[rec.relpath] = ImageAudit(rec.relpath, rec.digest, bucket,
                                         category_of(rec, extra) if readable else None, findings)
    groups = duplicate_groups(records, th.near_duplicate_distance, extras)
    for g in groups:
        code = "exact_duplicate" if g.kind == "exact" else "near_duplicate"
        what = "identical file" if g.kind == "exact" else "looks the same"
        for rel in g.members:
            others = [m for m in g.members if m != rel]
            is_keeper = rel == g.keeper
            runner_up = g.reasons.get(g.members[1], "") if len(g.members) > 1 else ""
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
    for a in images.values():
        a.findings.sort(key=lambda f: (_RANK[f.severity], f.category, f.code))
    return AuditReport(images=images, groups=groups, resolution=resolution, thresholds=th,
                       measured=measured, caption_rules=captions is not None,
                       seconds=time.perf_counter() - started)


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
    extras, measured = ensure_measures(dataset, records, on_event=on_event, workers=workers, job=job)
    measured += scanned
    report = build_report(records, extras, resolution=resolution, thresholds=th,
                          trigger=trigger, caption_rules=caption_rules, measured=measured)
    report.seconds = time.perf_counter() - started
    dataset.store.set_setting(SETTINGS_KEY, {"resolution": resolution,
                                             "caption_rules": caption_rules,
                                             "thresholds": th.to_dict()})
    flagged = sum(1 for a in report.images.values() if a.worst in (ERROR, WARNING))
    on_event(JobFinished(job, "audit", "done", len(report.images), 0,
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
    return build_report(store.images(), stored_measures(store),
                        resolution=resolution or int(saved.get("resolution") or 1024),
                        thresholds=thresholds,
                        trigger=trigger if trigger is not None else _settings_trigger(store),
                        caption_rules=bool(saved.get("caption_rules", True)))


def _settings_trigger(store: Store) -> str | None:
    from ..settings import load_settings

    return load_settings(store).trigger


def stored_findings(store: Store) -> dict[str, list[Finding]]:
    """``{relpath: findings}`` of every image with at least one finding, from the store
    alone (see :func:`stored_report`): what the TUI shows next to each image."""
    report = stored_report(store)
    return {rel: a.findings for rel, a in report.images.items() if a.findings}
