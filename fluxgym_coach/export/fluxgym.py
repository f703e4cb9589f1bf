"""Export a dataset in the layout Fluxgym and kohya sd-scripts train on.

Given a Fluxgym root ``OUT`` and a LoRA name (slugged with python-slugify, as
Fluxgym does: "Cat Toy" -> ``cat-toy``), it writes::

    OUT/datasets/<slug>/<stem>.<png|jpg>   images: flat, unique ASCII stems, RGB,
                                           EXIF orientation applied, each at
                                           exactly a size kohya keeps unchanged
    OUT/datasets/<slug>/<stem>.txt         captions: UTF-8, no BOM, one non-empty
                                           line, trigger word first
    OUT/outputs/<slug>/dataset.toml        Fluxgym's keys + bucketing keys
    OUT/outputs/<slug>/sample_prompts.txt  the trigger word, as Fluxgym pre-fills it
    OUT/outputs/<slug>/train.sh            Fluxgym's training command for it (run
                                           from OUT; see :mod:`train_script`)
    OUT/outputs/<slug>/manifest.jsonl      one line per exported image: source,
                                           digest, variant, parameters, crop

Framing (``crop_mode``): ``"zero"`` (default) writes each image at a bucket
size of multiples of 64 with area up to ``resolution``^2, chosen by
:func:`fluxgym_coach.export.framing.zero_crop_bucket`, and sets
``bucket_no_upscale = true`` so kohya's ``select_bucket`` keeps it exactly
(no rescale, no crop); the few pixels dropped to reach the grid are chosen
subject first (faces, then saliency, then centre). ``"kohya"`` is the older
behaviour: short side = resolution, ``enable_bucket = true``, kohya's own
bucketing then rescales and centre-crops.

Facts this follows (see ``reference/fluxgym.md``): kohya pairs ``<stem>.txt``
with each image, reads only the first line and asserts it is not empty; it
trains only on lower-case (or all upper-case) png/jpg/jpeg/webp/bmp; the
trigger reaches training only through the caption text; a stale
``*_flux_te.npz`` text-encoder cache is reused after captions change, so old
``*.npz`` files in the target are removed; without ``enable_bucket`` kohya
centre-crops every image to a square. The file layout (TOML tables, relative
``image_dir``, staging and swap) is in :mod:`fluxgym_coach.export.files`.

Images below the resolution are exported at their own size (rounded down to
the grid) with a warning: only the enhancer upscales (``prepare`` does that
before exporting).
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slugify import slugify

from ..errors import FluxgymCoachError
from .. import imaging
from ..audit.buckets import BucketSettings
from .files import dataset_toml_text, remove_partials, staging_dir, swap_in, toml_safe, unfinished_export
from ..dataset import Dataset, one_line
from ..events import EventSink, ItemDone, ItemFailed, ItemWarning, JobFinished, JobStarted, null_sink
from ..fsutil import atomic_write_bytes, atomic_write_text
from ..statuses import JobStatus, ReviewStatus
from ..cache import ImageCache
from ..store import ImageRecord
from ..audit.faces import faces_for
from .framing import choose_window, decode_upright, render, zero_crop_bucket
from .results import ExportedFile, ExportReport
from .train_script import VRAM_CHOICES, train_script

#: Resolutions Fluxgym offers (kohya's ``resolution``: the side of the square bucket area).
RESOLUTIONS = (512, 768, 1024)
DEFAULT_REPEATS = 10
NEEDS_CAPTION = "needs caption: the trigger word is used as a placeholder"
_STALE_SUFFIXES = {".npz", ".txt"} | {e for e in imaging.IMAGE_EXTENSIONS} | {".jxl", ".avif"}
_STEM_OK = re.compile(r"[^A-Za-z0-9_-]+")


class ExportError(FluxgymCoachError):
    """The export cannot start (bad name or trigger word, target not empty without
    ``force``, target inside the dataset). The message says what to do."""


def lora_slug(name: str) -> str:
    """The folder name Fluxgym uses for a LoRA name (python-slugify, lower case)."""
    return slugify(name)


def safe_stem(stem: str) -> str:
    """An ASCII file stem made of ``[A-Za-z0-9_-]`` (transliterated; "image" if nothing is left)."""
    ascii_stem = slugify(stem, lowercase=False, separator="_", regex_pattern=r"[^A-Za-z0-9_-]+")
    ascii_stem = _STEM_OK.sub("_", ascii_stem).strip("_-")
    return ascii_stem or "image"


def starts_with_trigger(caption: str, trigger: str) -> bool:
    """True if ``caption`` begins with the trigger word as a whole word (case-insensitive)."""
    c, t = caption.lower(), trigger.lower()
    return c.startswith(t) and (len(c) == len(t) or not (c[len(t)].isalnum() or c[len(t)] == "_"))


def caption_for_export(caption: str | None, trigger: str) -> tuple[str, str]:
    """The caption line to write and its status.

    Returns ``(text, status)``: an empty or missing caption becomes the trigger
    word (``"placeholder"``); a caption not starting with the trigger gets
    ``"<trigger>, "`` in front (``"trigger added"``); otherwise ``"ok"``.
    """
    text = one_line(caption or "")
    if not text:
        return trigger, "placeholder"
    if starts_with_trigger(text, trigger):
        return text, "ok"
    return f"{trigger}, {text}", "trigger added"


CROP_MODES = ("zero", "kohya")
#: Grid of the exported sizes: kohya's ``bucket_reso_steps``; flux_train_network.py accepts 32
#: (``verify_bucket_reso_steps(32)``), which halves the pixels the grid drops vs the default 64.
BUCKET_STEPS = 32
#: Faces are looked for only when the grid cuts at least this share of the image
#: (below it, 2-3 px of a 1024 px side: no face can lose more than its edge).
MIN_CUT_FOR_FACES = 0.005


def dataset_toml(image_dir: Path | str, trigger: str, resolution: int, repeats: int,
                 crop_mode: str = "zero") -> str:
    """The ``dataset.toml`` text: Fluxgym's keys, ``enable_bucket = true``, and for
    ``crop_mode="zero"`` ``bucket_no_upscale = true`` with ``bucket_reso_steps = 32``
    (kohya then keeps every exported size as it is). Tables layout; see
    :mod:`fluxgym_coach.export.files`."""
    ds: dict[str, Any] = {"resolution": resolution, "batch_size": 1, "keep_tokens": 1, "enable_bucket": True}
    if crop_mode == "zero":
        ds |= {"bucket_no_upscale": True, "bucket_reso_steps": BUCKET_STEPS}
    return dataset_toml_text(
        {"shuffle_caption": False, "caption_extension": ".txt", "keep_tokens": 1}, ds,
        {"image_dir": str(image_dir), "class_tokens": trigger, "num_repeats": repeats})


def bucket_settings(resolution: int, crop_mode: str = "zero") -> BucketSettings:
    """The kohya :class:`~fluxgym_coach.audit.buckets.BucketSettings` our ``dataset.toml`` sets."""
    return BucketSettings("kohya", resolution, True, crop_mode == "zero", bucket_reso_steps=BUCKET_STEPS)


def _check_args(name: str, trigger: str, resolution: int, repeats: int) -> str:
    slug = lora_slug(name)
    if not slug:
        raise ExportError(f"the LoRA name {name!r} has no letters or digits: pass --name with a "
                          "name like 'my-style'")
    if not trigger.strip() or "\n" in trigger or "\r" in trigger:
        raise ExportError("the trigger word must be a non-empty single line: pass --trigger WORD "
                          "(a rare token such as 'ohwx' works well)")
    if not toml_safe(trigger):
        raise ExportError(f"the trigger word {trigger!r} starts with two double quotes and holds a ' "
                          "or a control character: kohya's TOML reader (toml 0.10.2) would read it "
                          "as empty; choose another trigger word")
    if resolution < 256 or resolution % 64:
        raise ExportError(f"resolution {resolution} is not a multiple of 64 of at least 256: "
                          f"use one of {', '.join(map(str, RESOLUTIONS))}")
    if repeats < 1:
        raise ExportError(f"repeats must be at least 1, got {repeats}")
    return slug


def check_target(dataset: Dataset, out_dir: str | Path, name: str, trigger: str, resolution: int,
                 repeats: int, force: bool) -> tuple[Path, Path]:
    """Validate the export arguments and target; return ``(datasets/<slug>, outputs/<slug>)``.

    Writes nothing. Raises :class:`ExportError` with the fix (see :func:`export_dataset`).
    """
    slug = _check_args(name, trigger, resolution, repeats)
    root = Path(out_dir).expanduser().resolve()
    if root == dataset.root or dataset.root in root.parents:
        raise ExportError(f"the export folder {root} is inside the dataset {dataset.root}: "
                          "choose a folder outside it (a later scan would pick up the copies)")
    ds_dir, outputs_dir = root / "datasets" / slug, root / "outputs" / slug
    busy = [p for p in (ds_dir, outputs_dir) if _non_empty(p)]
    if busy and not force and not unfinished_export(outputs_dir):
        raise ExportError(f"{busy[0]} is not empty: pass --force to replace the images, captions "
                          "and latent caches (*.npz) there (trained LoRA files are kept)")
    return ds_dir, outputs_dir


def _non_empty(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _unique_stems(records: list[ImageRecord]) -> tuple[dict[str, str], dict[str, str]]:
    """Map relpath -> unique stem; also relpath -> note for renamed ones.

    Uniqueness is case-insensitive (the folder may move to Windows or macOS).
    """
    taken: dict[str, str] = {}
    stems: dict[str, str] = {}
    notes: dict[str, str] = {}
    for rec in records:
        base = safe_stem(Path(rec.relpath).stem)
        stem, n = base, 1
        while stem.lower() in taken:
            n += 1
            stem = f"{base}-{n}"
        if n > 1:
            notes[rec.relpath] = (f"renamed to {stem}: its name collides with "
                                  f"{taken[base.lower()]} after conversion to a safe ASCII name")
        taken[stem.lower()] = rec.relpath
        stems[rec.relpath] = stem
    return stems, notes


def _metadata_of(dataset: Dataset, relpath: str) -> dict[str, Any] | None:
    from ..metadata import get_metadata  # on first use: the export's start-up stays light

    return get_metadata(dataset.store, relpath)


@dataclass(slots=True)
class _Job:
    """What every image of one export shares."""

    dataset: Dataset
    cache: ImageCache
    staged: Path
    stems: dict[str, str]
    rename_notes: dict[str, str]
    selection: dict[str, tuple[str | None, str]]
    variants: dict[tuple[str, str], Any]
    trigger: str
    resolution: int
    crop_mode: str
    jpeg_quality: int
    subject: bool


def _source_of(job: _Job, rec: ImageRecord, notes: list[str]) -> tuple[Path, str, str | None, Any]:
    """(path, format, variant key or None, variant record or None) to export for ``rec``."""
    key = job.selection.get(rec.relpath, (None, ""))[0]
    variant = job.variants.get((rec.relpath, key)) if key else None
    if key:
        entry = job.cache.get(key)
        if entry is None or variant is None:
            notes.append("the selected enhanced variant is no longer in the cache (cleared or "
                         "evicted): exported the original; run prepare/enhance again")
            return job.dataset.image_path(rec.relpath), rec.format or "PNG", None, None
        return entry.path, entry.meta.get("format") or "PNG", key, variant
    return job.dataset.image_path(rec.relpath), rec.format or "PNG", None, None


def _frame_zero(job: _Job, rec: ImageRecord, data: bytes, notes: list[str]):
    """(image to write, full upright size, window kept in full-size px, reason) in the
    zero-crop mode."""
    def bucket_of(w: int, h: int):
        return zero_crop_bucket(w, h, job.resolution, BUCKET_STEPS)
    im, full = decode_upright(data, rec.relpath, bucket_of)
    bucket = bucket_of(*full)
    if bucket is None:
        raise imaging.ImageReadError(
            rec.relpath, f"{full[0]}x{full[1]} has a side below {BUCKET_STEPS}px: kohya cannot "
            "bucket it; enlarge it (fluxgym-coach enhance) or remove it")
    if bucket[0] * bucket[1] < 0.8 * job.resolution ** 2:
        notes.append(f"below resolution: exported at {bucket[0]}x{bucket[1]}, "
                     f"{bucket[0] * bucket[1] / job.resolution ** 2:.0%} of {job.resolution}^2 "
                     "(run `fluxgym-coach prepare` or `enhance` to upscale it)")
    boxes = []
    ar_b, ar_s = bucket[0] / bucket[1], full[0] / full[1]
    if job.subject and 1 - min(ar_b / ar_s, ar_s / ar_b) >= MIN_CUT_FOR_FACES:
        found = faces_for(job.dataset.store, rec.relpath, rec.digest, im)
        boxes = [b.pixels(im.width, im.height) for b in found]
    frame = choose_window(im, bucket, boxes)
    k = full[0] / im.width  # drafted JPEG: window back in full-size pixels
    window = tuple(v * k for v in frame.window)
    return render(im, frame), full, window, frame.reason


def _copy_as_is(job: _Job, rec: ImageRecord, key: str | None, source: Path) -> bool:
    """True when the original file can be copied byte for byte: already at its
    zero-crop bucket, RGB, upright, and a kohya extension matching its format."""
    if job.crop_mode != "zero" or key is not None or rec.mode != "RGB" or (rec.orientation or 1) != 1:
        return False
    if rec.width is None or rec.height is None:
        return False
    if zero_crop_bucket(rec.width, rec.height, job.resolution, BUCKET_STEPS) != (rec.width, rec.height):
        return False
    return (rec.format, source.suffix.lower()) in (("JPEG", ".jpg"), ("JPEG", ".jpeg"), ("PNG", ".png"))


def _frame_kohya(job: _Job, im, notes: list[str]):
    short = min(im.size)
    if short > job.resolution:
        im = imaging.resize_short_side(im, job.resolution)
    elif short < job.resolution:
        notes.append(f"below resolution: short side {short}px < {job.resolution}px; exported at its "
                     "own size (run `fluxgym-coach prepare` or `enhance` to upscale it)")
    return im, None, "kohya"


def _export_one(job: _Job, rec: ImageRecord) -> tuple[ImageRecord, ExportedFile | None, list[str], str | None]:
    notes: list[str] = [job.rename_notes[rec.relpath]] if rec.relpath in job.rename_notes else []
    source, source_format, key, variant = _source_of(job, rec, notes)
    fmt = "JPEG" if source_format == "JPEG" else "PNG"
    stem = job.stems[rec.relpath]
    file_name = stem + imaging.extension_for(fmt)
    try:
        data = source.read_bytes()
        if _copy_as_is(job, rec, key, source):
            out_size, size, window, reason = (rec.width, rec.height), (rec.width, rec.height), None, "exact"
            payload = data
        else:
            if job.crop_mode == "zero":
                out, size, window, reason = _frame_zero(job, rec, data, notes)
            else:
                im = imaging.load_upright_rgb(data)
                size = im.size
                out, window, reason = _frame_kohya(job, im, notes)
            untouched = (fmt == "JPEG" and key is None and out.size == size and job.crop_mode == "kohya"
                         and rec.mode == "RGB" and (rec.orientation or 1) == 1
                         and source.suffix.lower() in (".jpg", ".jpeg"))
            payload = data if untouched else imaging.encode(out, fmt, quality=job.jpeg_quality)
            out_size = out.size
    except (OSError, imaging.ImageReadError) as exc:
        return rec, None, notes, getattr(exc, "reason", None) or imaging._explain(exc)
    atomic_write_bytes(job.staged / file_name, payload, fsync=False)
    current = job.dataset.read_caption(rec.relpath)
    if current is not None and current.error:  # binary / control bytes: never exported (issue 11 #14)
        (job.staged / file_name).unlink(missing_ok=True)
        return rec, None, notes, current.error
    if current is not None and current.warning:
        notes.append(current.warning)
    text, status = caption_for_export(current.text if current else None, job.trigger)
    if status == "placeholder":
        notes.append(NEEDS_CAPTION)
    atomic_write_text(job.staged / f"{stem}.txt", text, fsync=False)
    if window is None and reason == "exact":
        window = (0.0, 0.0, float(size[0]), float(size[1]))
    return rec, ExportedFile(
        file=file_name, caption_file=f"{stem}.txt", source=rec.relpath, source_digest=rec.digest,
        variant=key or "original", kind=variant.kind if variant else "original",
        params=variant.params if variant else {}, backend=variant.backend if variant else None,
        width=out_size[0], height=out_size[1], caption=text, caption_status=status,
        metadata=_metadata_of(job.dataset, rec.relpath),
        source_size=list(size), crop=[round(v, 2) for v in window] if window else None,
        framing=reason), notes, None


#: ``ExportReport.skipped``'s reason for an image the review excluded from the export
#: (the other reasons are the image's read error).
EXCLUDED_REASON = "excluded from the export in the review"


def _readable(dataset: Dataset, relpaths: list[str] | None, report: ExportReport) -> list[ImageRecord]:
    records = dataset.store.images()
    if relpaths is not None:
        wanted = set(relpaths)
        records = [r for r in records if r.relpath in wanted]
    selection = dataset.store.selection()
    readable = []
    for rec in records:
        if selection.get(rec.relpath, (None, ""))[1] == ReviewStatus.EXCLUDED:
            report.skipped[rec.relpath] = EXCLUDED_REASON
        elif rec.error:
            report.skipped[rec.relpath] = rec.error
        else:
            readable.append(rec)
    return readable


def export_dataset(
    dataset: Dataset,
    out_dir: str | Path,
    name: str,
    trigger: str,
    resolution: int = 1024,
    repeats: int = DEFAULT_REPEATS,
    force: bool = False,
    on_event: EventSink = null_sink,
    cache: ImageCache | None = None,
    relpaths: list[str] | None = None,
    jpeg_quality: int = 95,
    workers: int | None = None,
    vram: str = "20G",
    crop_mode: str = "zero",
    subject: bool = True,
) -> ExportReport:
    """Export ``dataset`` to the Fluxgym root ``out_dir`` (see the module docstring).

    Uses, per image, the variant selected in the store (an enhanced result from
    ``cache``) or the original. ``relpaths`` limits the export to some images.
    Raises :class:`ExportError` before writing anything when the arguments are
    bad, the target is inside the dataset, or the target folders are not empty
    and ``force`` is False (an export of ours that a kill left unfinished does
    not count). The new ``datasets/<slug>`` is built in a hidden staging folder
    and swapped in when complete; with ``force``, old images, captions and
    ``*.npz`` latent caches there are dropped (other files are kept).
    ``vram`` (``"20G"``, ``"16G"``, ``"12G"``) picks the optimizer written in
    ``train.sh``; ``crop_mode`` is ``"zero"`` or ``"kohya"``; ``subject=False``
    skips face detection and saliency (centre crops). Per-image problems are
    reported in the result, never raised.
    """
    if vram not in VRAM_CHOICES:
        raise ExportError(f"unknown VRAM size {vram!r}: use one of {', '.join(VRAM_CHOICES)}")
    if crop_mode not in CROP_MODES:
        raise ExportError(f"unknown crop mode {crop_mode!r}: use one of {', '.join(CROP_MODES)}")
    ds_dir, outputs_dir = check_target(dataset, out_dir, name, trigger, resolution, repeats, force)
    root, slug = ds_dir.parent.parent, ds_dir.name
    script = train_script(slug, vram)
    remove_partials(ds_dir.parent, slug)
    staged = staging_dir(ds_dir)
    report = ExportReport(root, ds_dir, outputs_dir, outputs_dir / "dataset.toml")
    readable = _readable(dataset, relpaths, report)
    stems, rename_notes = _unique_stems(readable)
    job = _Job(dataset, cache or ImageCache(), staged, stems, rename_notes, dataset.store.selection(),
               {(v.relpath, v.cache_key): v for v in dataset.store.variants()}, trigger, resolution,
               crop_mode, jpeg_quality, subject)
    job_id = f"export-{slug}"
    on_event(JobStarted(job_id, "export", len(readable)))
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2,
                            thread_name_prefix="export") as pool:
        for rec, exported, notes, error in pool.map(lambda r: _export_one(job, r), readable):
            for note in notes:
                report.warnings.setdefault(rec.relpath, []).append(note)
                on_event(ItemWarning(job_id, rec.relpath, note))
            if error is not None:
                report.failed[rec.relpath] = error
                on_event(ItemFailed(job_id, rec.relpath, error))
                continue
            assert exported is not None
            report.files.append(exported)
            on_event(ItemDone(job_id, rec.relpath, detail={"file": exported.file}))
    _write_outputs(report, staged, script, trigger, resolution, repeats, crop_mode)
    on_event(JobFinished(job_id, "export", JobStatus.DONE if not report.failed else JobStatus.FAILED,
                         len(report.files), len(report.failed),
                         {"dataset_dir": str(ds_dir), "toml": str(report.toml_path)}))
    return report


def _write_outputs(report: ExportReport, staged: Path, script: str, trigger: str, resolution: int,
                   repeats: int, crop_mode: str) -> None:
    """Write outputs/<slug>, swap the staged dataset folder in, write dataset.toml last."""
    ds_dir, outputs_dir = report.dataset_dir, report.outputs_dir
    outputs_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(outputs_dir / "sample_prompts.txt", trigger + "\n")
    report.train_script = outputs_dir / "train.sh"
    atomic_write_text(report.train_script, script)
    report.train_script.chmod(0o755)
    manifest = "".join(json.dumps(asdict(f), sort_keys=True, ensure_ascii=False) + "\n"
                       for f in report.files)
    atomic_write_text(outputs_dir / "manifest.jsonl", manifest)
    report.removed_stale = swap_in(staged, ds_dir, _STALE_SUFFIXES)
    image_dir = f"datasets/{ds_dir.name}"
    atomic_write_text(report.toml_path, dataset_toml(image_dir, trigger, resolution, repeats, crop_mode))
