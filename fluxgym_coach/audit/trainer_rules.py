"""Trainer findings: what each trainer profile would do to an image, as audit findings.

The audit's one bucket rule. For every image it places the size the trainer
would read (the selected enhanced variant when there is one, else the upright
original) with the simulator of :mod:`fluxgym_coach.audit.buckets` under each
profile of :data:`AUDIT_PROFILES`, and reports (issue 12, item 5):

* ``trainer_face_cut`` (warning): a face box stored by
  :mod:`fluxgym_coach.audit.faces` is not inside the window the trainer keeps;
* ``trainer_upscale`` (warning): the trainer scales the image up past its
  pixels (past the enhancer's result when there is one) by more than
  :attr:`~fluxgym_coach.audit.image_rules.Thresholds.upscale_tolerance`;
* ``trainer_small_area`` (info): the bucket is below :data:`MIN_AREA_SHARE`
  of ``resolution``^2 (kohya's bucket list caps the long side at
  ``max_bucket_reso`` 1024, so a 3:2 photo trains on 1024x704, 69 %).

One finding per kind and image; ``detail["profiles"]`` lists each profile's
own finding. Faces come from the store; the audit first detects them
(:func:`audit_bucket_inputs`) for the images some profile crops.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Callable

from ..findings import Finding, Severity
from ..store import ImageRecord, Store
from .buckets import BucketError, BucketSettings, Placement, area_fraction, placer

#: The trainer set-ups an audit checks: Fluxgym's own toml (one square bucket),
#: kohya with bucketing at its defaults, ai-toolkit's defaults, and SimpleTuner as
#: its FLUX quickstart sets it (``resolution_type`` pixel_area, ``crop`` off; with its
#: default random crop offset, a face counts as cut when any offset it may draw cuts it).
AUDIT_PROFILES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("kohya (Fluxgym default, no buckets)", dict(trainer="kohya", enable_bucket=False)),
    ("kohya (enable_bucket)", dict(trainer="kohya", enable_bucket=True)),
    ("ai-toolkit", dict(trainer="ai-toolkit", enable_bucket=True)),
    ("simpletuner (FLUX quickstart)", dict(trainer="simpletuner", resolution_type="area")),
)
#: A bucket smaller than this share of ``resolution``^2 is reported.
MIN_AREA_SHARE = 0.8

#: Audit finding code of each :attr:`BucketFinding.kind`.
TRAINER_CODES = {"face-cut": "trainer_face_cut", "upscale": "trainer_upscale",
                 "small-area": "trainer_small_area"}

_FIX_EXPORT = "export with `fluxgym-coach export` (zero-crop: kohya keeps each image as written)"
_FIX_ENLARGE = "enlarge it: fluxgym-coach enhance (or prepare)"


@dataclass(frozen=True, slots=True)
class BucketFinding:
    """One problem a trainer profile causes for one image.

    ``kind`` is ``"face-cut"``, ``"upscale"`` or ``"small-area"``; ``value`` the
    number of faces cut, the scale factor, or the bucket's share of
    ``resolution``^2; ``bucket`` the bucket (w, h) or None when the profile
    cannot bucket the size; ``message`` says what and ``fix`` what to do."""

    relpath: str
    profile: str
    kind: str
    message: str
    fix: str
    value: float = 0.0
    bucket: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class BucketInput:
    """What the trainer reads of one image: ``size`` (w, h, upright), the face
    boxes in those pixels, and whether the size is an enhanced variant's."""

    size: tuple[int, int]
    faces: tuple[tuple[float, float, float, float], ...] = ()
    enhanced: bool = False


@lru_cache(maxsize=32)
def _placers(resolution: int, profiles: tuple) -> tuple[tuple[str, BucketSettings, Callable[[int, int], Placement]], ...]:
    out = []
    for name, items in profiles:
        # kohya asserts max_bucket_reso >= resolution: above 1024 the profiles raise it as a user must
        kw = {"max_bucket_reso": max(1024, resolution)} | dict(items)
        s = BucketSettings(resolution=resolution, **kw)
        out.append((name, s, placer(s)))
    return tuple(out)


def _key(profiles) -> tuple:
    return tuple((name, tuple(sorted(kw.items()))) for name, kw in profiles)


def _cuts(crop: tuple[float, float, float, float], box: tuple[float, float, float, float]) -> bool:
    """True when ``box`` is not inside the crop window (1 px slack)."""
    return not (box[0] >= crop[0] - 1 and box[1] >= crop[1] - 1 and box[2] <= crop[2] + 1
                and box[3] <= crop[3] + 1)


def profile_findings(relpath: str, size: tuple[int, int], resolution: int,
                     faces=None, profiles=AUDIT_PROFILES) -> list[BucketFinding]:
    """Findings for one image of ``size`` (w, h; upright, the enhancer's result when
    there is one) under each profile ``(name, BucketSettings fields)``: face boxes
    (source pixels, left, top, right, bottom) the crop cuts, a scale above 1 (the
    trainer upscales past our pixels), a bucket area below :data:`MIN_AREA_SHARE`
    of ``resolution``^2. A size a profile cannot bucket is ``small-area`` with
    value 0. Raises :class:`~fluxgym_coach.audit.buckets.BucketError` for a
    profile whose settings the trainer rejects."""
    out: list[BucketFinding] = []
    w, h = size
    for name, s, fn in _placers(resolution, _key(profiles)):
        try:
            if w < 1 or h < 1:
                raise BucketError(f"image size {w}x{h} is empty")
            p = fn(w, h)
        except BucketError as exc:
            out.append(BucketFinding(relpath, name, "small-area", f"{name}: {exc}", _FIX_ENLARGE))
            continue
        bucket = f"{p.bucket[0]}x{p.bucket[1]}"
        cut = [b for b in faces or () if _cuts(p.always_kept, b)]  # a random crop: any offset it may draw
        if cut:
            how = "random crop can cut" if p.random_crop and p.always_kept != p.crop else "crop cuts"
            out.append(BucketFinding(relpath, name, "face-cut", f"{name}: the {bucket} {how} "
                                     f"{len(cut)} face(s)", _FIX_EXPORT, float(len(cut)), p.bucket))
        if p.scale > 1.0 + 1e-9:
            out.append(BucketFinding(relpath, name, "upscale", f"{name}: scaled up x{p.scale:.2f} past its "
                                     f"{w}x{h} pixels", _FIX_ENLARGE, p.scale, p.bucket))
        share = area_fraction(p, resolution)
        if share < MIN_AREA_SHARE:
            out.append(BucketFinding(relpath, name, "small-area", f"{name}: bucket {bucket} is {share:.0%} of "
                                     f"{resolution}x{resolution}",
                                     _FIX_EXPORT if s.trainer == "kohya" and p.scale <= 1.0 + 1e-9
                                     else _FIX_ENLARGE, share, p.bucket))
    return out


def bucket_inputs(store: Store, records: list[ImageRecord] | None = None) -> dict[str, BucketInput]:
    """:class:`BucketInput` of every readable record (default: all of ``store``):
    its size as export writes it (:func:`fluxgym_coach.audit.exported.exported_records`:
    the selected enhanced variant's, else the upright size), and the faces stored for
    its current digest (:func:`fluxgym_coach.audit.faces.stored_faces_all`). Three
    queries in all."""
    from .exported import exported_records
    from .faces import stored_faces_all

    records = store.images() if records is None else records
    faces = stored_faces_all(store)
    out: dict[str, BucketInput] = {}
    for rec, shown in zip(records, exported_records(store, records), strict=True):
        if rec.error or shown.display_size is None:
            continue
        size, enhanced = shown.display_size, shown is not rec
        digest, found = faces.get(rec.relpath, ("", []))
        boxes = tuple(b.pixels(*size) for b in found) if digest == (rec.digest or "") else ()
        out[rec.relpath] = BucketInput(size, boxes, enhanced)
    return out


def crops(size: tuple[int, int], resolution: int, profiles=AUDIT_PROFILES) -> bool:
    """True when some profile crops an image of ``size`` (w, h) at ``resolution``."""
    for _, _, fn in _placers(resolution, _key(profiles)):
        try:
            p = fn(*size)
        except BucketError:
            continue
        if p.crop_fraction > 1e-9 or p.window is not None and p.window != (0, 0, *p.size):
            return True
    return False


def face_jobs(dataset, records: list[ImageRecord], resolution: int,
              inputs: dict[str, BucketInput] | None = None) -> list[tuple[str, str, object, int, int]]:
    """The face detections an audit at ``resolution`` needs: images some profile of
    :data:`AUDIT_PROFILES` crops and that have no faces stored for their digest
    (:func:`fluxgym_coach.audit.faces.pending_faces`), as ``(relpath, digest, path,
    width, height)``. ``inputs``: :func:`bucket_inputs` of ``records``, when the caller
    has them already."""
    from .faces import pending_faces

    inputs = bucket_inputs(dataset.store, records) if inputs is None else inputs
    jobs = [(r.relpath, r.digest, dataset.image_path(r.relpath), *r.display_size) for r in records
            if r.relpath in inputs and r.digest and crops(inputs[r.relpath].size, resolution)]
    return pending_faces(dataset.store, jobs)


def audit_bucket_inputs(dataset, records: list[ImageRecord], resolution: int,
                        workers: int | None = None, *, jobs: list | None = None,
                        inputs: dict[str, BucketInput] | None = None,
                        on_event: Any = None, job: str = "faces") -> dict[str, BucketInput]:
    """:func:`bucket_inputs` after detecting faces (:func:`fluxgym_coach.audit.faces.ensure_faces`)
    for the images some profile of :data:`AUDIT_PROFILES` crops at ``resolution`` and
    that have no faces stored for their digest (``jobs``: :func:`face_jobs`, computed
    here when None, from ``inputs`` when given); once per digest, stored for the next
    audit, export and the TUI. ``on_event`` / ``job``: one ``ItemDone`` of that job per
    detection. The store is read again only when a face pass stored new boxes."""
    from .faces import ensure_faces

    inputs = bucket_inputs(dataset.store, records) if inputs is None else inputs
    todo = face_jobs(dataset, records, resolution, inputs) if jobs is None else jobs
    if ensure_faces(dataset.store, todo, workers, on_event=on_event, job=job):
        return bucket_inputs(dataset.store, records)
    return inputs


def dataset_bucket_findings(dataset, resolution: int = 1024) -> dict[str, list[BucketFinding]]:
    """:func:`profile_findings` for every readable image of a
    :class:`~fluxgym_coach.dataset.Dataset` (sizes and faces per
    :func:`bucket_inputs`). Returns relpath -> findings, only images with at least one."""
    out: dict[str, list[BucketFinding]] = {}
    for rel, inp in bucket_inputs(dataset.store).items():
        got = profile_findings(rel, inp.size, resolution, inp.faces)
        if got:
            out[rel] = got
    return out


def _detail(f: BucketFinding) -> dict[str, Any]:
    d = asdict(f)
    del d["relpath"]
    d["bucket"] = list(f.bucket) if f.bucket else None
    return d


_HEAD = {"face-cut": "the trainer's crop cuts a face", "upscale": "the trainer scales it up past its pixels",
         "small-area": f"the bucket is below {MIN_AREA_SHARE:.0%} of the training area"}
_SEVERITY = {"face-cut": Severity.WARNING, "upscale": Severity.WARNING, "small-area": Severity.INFO}


def trainer_findings(found: list[BucketFinding], *, upscale_tolerance: float = 1.05,
                     report_upscale: bool = True) -> list[Finding]:
    """The audit findings of one image's :class:`BucketFinding` list: one per kind
    (codes :data:`TRAINER_CODES`), naming every profile concerned. Upscales of at
    most ``upscale_tolerance`` are dropped, and all of them when not
    ``report_upscale`` (the audit's ``low_resolution`` already says it for an
    image that was not enhanced)."""
    by_kind: dict[str, list[BucketFinding]] = {}
    for f in found:
        if f.kind == "upscale" and (not report_upscale or f.value <= upscale_tolerance):
            continue
        by_kind.setdefault(f.kind, []).append(f)
    out = []
    for kind, fs in by_kind.items():
        fixes = list(dict.fromkeys(f.fix for f in fs))
        parts = [f.message for f in fs]
        if kind == "face-cut":
            value, threshold = max(f.value for f in fs), 0
        elif kind == "upscale":
            value, threshold = round(max(f.value for f in fs), 3), upscale_tolerance
        else:
            value, threshold = round(min(f.value for f in fs), 4), MIN_AREA_SHARE
        out.append(Finding(TRAINER_CODES[kind], _SEVERITY[kind], f"{_HEAD[kind]}: " + "; ".join(parts),
                           value=value, threshold=threshold, fix="; or ".join(fixes), category="resolution",
                           detail={"profiles": [_detail(f) for f in fs]}))
    return out
