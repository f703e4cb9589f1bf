"""Export a dataset in the layout Fluxgym and kohya sd-scripts train on.

Given a Fluxgym root ``OUT`` and a LoRA name (slugged with python-slugify, as
Fluxgym does: "Cat Toy" -> ``cat-toy``), it writes::

    OUT/datasets/<slug>/<stem>.<png|jpg>   images: flat, unique ASCII stems, RGB,
                                           EXIF orientation applied, short side
                                           = resolution (never upscaled here)
    OUT/datasets/<slug>/<stem>.txt         captions: UTF-8, no BOM, one non-empty
                                           line, trigger word first
    OUT/outputs/<slug>/dataset.toml        Fluxgym's keys + enable_bucket = true
    OUT/outputs/<slug>/sample_prompts.txt  the trigger word, as Fluxgym pre-fills it
    OUT/outputs/<slug>/train.sh            Fluxgym's training command for it (run
                                           from OUT; see :mod:`train_script`)
    OUT/outputs/<slug>/manifest.jsonl      one line per exported image: source,
                                           digest, variant, parameters

Facts this follows (see ``reference/fluxgym.md``): kohya pairs ``<stem>.txt``
with each image, reads only the first line and asserts it is not empty; it
trains only on lower-case (or all upper-case) png/jpg/jpeg/webp/bmp; the
trigger reaches training only through the caption text; a stale
``*_flux_te.npz`` text-encoder cache is reused after captions change, so old
``*.npz`` files in the target are removed; without ``enable_bucket`` kohya
centre-crops every image to a square.

Images below the resolution are exported at their own size with a warning:
only the enhancer upscales (``prepare`` does that before exporting).
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from slugify import slugify

from . import imaging
from .dataset import Dataset, one_line
from .events import EventSink, ItemDone, ItemFailed, ItemWarning, JobFinished, JobStarted, null_sink
from .fsutil import atomic_write_bytes, atomic_write_text
from .image_cache import ImageCache
from .store import ImageRecord
from .train_script import MODEL_PATHS, VRAM_CHOICES, train_script

#: Resolutions Fluxgym offers (kohya's ``resolution``: the side of the square bucket area).
RESOLUTIONS = (512, 768, 1024)
DEFAULT_REPEATS = 10
NEEDS_CAPTION = "needs caption: the trigger word is used as a placeholder"
_STALE_SUFFIXES = {".npz", ".txt"} | {e for e in imaging.IMAGE_EXTENSIONS} | {".jxl", ".avif"}
_STEM_OK = re.compile(r"[^A-Za-z0-9_-]+")


class ExportError(Exception):
    """The export cannot start (bad name or trigger word, target not empty without
    ``force``, target inside the dataset). The message says what to do."""


@dataclass(slots=True)
class ExportedFile:
    """One exported image: ``file`` and ``caption_file`` names in the dataset folder,
    the ``source`` relpath and digest, the ``variant`` (``"original"`` or a cache
    key) with its ``kind``/``params``/``backend``, the exported ``width``/``height``
    and ``caption_status`` (``"ok"``, ``"trigger added"`` or ``"placeholder"``)."""

    file: str
    caption_file: str
    source: str
    source_digest: str | None
    variant: str
    kind: str
    params: dict[str, Any]
    backend: str | None
    width: int
    height: int
    caption: str
    caption_status: str
    metadata: dict[str, Any] | None = None


@dataclass(slots=True)
class ExportReport:
    """Where the export went and what happened to each image.

    ``skipped``/``failed`` map source relpath -> reason; ``warnings`` maps
    relpath -> list of notes (below resolution, placeholder caption, renamed...).
    """

    root: Path
    dataset_dir: Path
    outputs_dir: Path
    toml_path: Path
    files: list[ExportedFile] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    removed_stale: int = 0
    train_script: Path | None = None

    @property
    def fluxgym_root(self) -> bool:
        """True when ``root`` looks like a Fluxgym install (has ``sd-scripts/``),
        so ``train.sh`` can run where it was written."""
        return (self.root / "sd-scripts").is_dir()

    @property
    def missing_models(self) -> list[str]:
        """In a Fluxgym install, the model files ``train.sh`` names that are not
        there yet (Fluxgym downloads them on its first training); else []."""
        if not self.fluxgym_root:
            return []
        return [rel for rel in MODEL_PATHS.values() if not (self.root / rel).is_file()]

    @property
    def placeholders(self) -> list[str]:
        """Sources exported with the trigger word as a placeholder caption."""
        return [f.source for f in self.files if f.caption_status == "placeholder"]

    @property
    def below_resolution(self) -> list[str]:
        """Sources exported smaller than the resolution."""
        return [r for r, notes in self.warnings.items() if any(n.startswith("below") for n in notes)]


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


def dataset_toml(image_dir: Path, trigger: str, resolution: int, repeats: int) -> dict[str, Any]:
    """The dataset.toml content as Fluxgym writes it, plus ``enable_bucket = true``."""
    return {
        "general": {"shuffle_caption": False, "caption_extension": ".txt", "keep_tokens": 1},
        "datasets": [{
            "resolution": resolution,
            "batch_size": 1,
            "keep_tokens": 1,
            "enable_bucket": True,
            "subsets": [{
                "image_dir": str(image_dir),
                "class_tokens": trigger,
                "num_repeats": repeats,
            }],
        }],
    }


def _check_args(name: str, trigger: str, resolution: int, repeats: int) -> str:
    slug = lora_slug(name)
    if not slug:
        raise ExportError(f"the LoRA name {name!r} has no letters or digits: pass --name with a "
                          "name like 'my-style'")
    if not trigger.strip() or "\n" in trigger or "\r" in trigger:
        raise ExportError("the trigger word must be a non-empty single line: pass --trigger WORD "
                          "(a rare token such as 'ohwx' works well)")
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
    if busy and not force:
        raise ExportError(f"{busy[0]} is not empty: pass --force to replace the images, captions "
                          "and latent caches (*.npz) there (trained LoRA files are kept)")
    return ds_dir, outputs_dir


def _non_empty(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _clear_stale(folder: Path) -> int:
    removed = 0
    for p in folder.iterdir():
        if p.is_file() and (p.suffix.lower() in _STALE_SUFFIXES):
            p.unlink()
            removed += 1
    return removed


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
    try:
        from . import metadata  # optional module (technical metadata, issue 5)
    except ImportError:
        return None
    getter = getattr(metadata, "get_metadata", None)
    return getter(dataset.store, relpath) if getter else None


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
) -> ExportReport:
    """Export ``dataset`` to the Fluxgym root ``out_dir`` (see the module docstring).

    Uses, per image, the variant selected in the store (an enhanced result from
    ``cache``) or the original. ``relpaths`` limits the export to some images.
    Raises :class:`ExportError` before writing anything when the arguments are
    bad, the target is inside the dataset, or the target folders are not empty
    and ``force`` is False. With ``force``, old images, captions and ``*.npz``
    latent caches in ``datasets/<slug>/`` are removed first (nothing else is).
    ``vram`` (``"20G"``, ``"16G"``, ``"12G"``) picks the optimizer written in
    ``train.sh``. Per-image problems are reported in the result, never raised.
    """
    if vram not in VRAM_CHOICES:
        raise ExportError(f"unknown VRAM size {vram!r}: use one of {', '.join(VRAM_CHOICES)}")
    ds_dir, outputs_dir = check_target(dataset, out_dir, name, trigger, resolution, repeats, force)
    root, slug = ds_dir.parent.parent, ds_dir.name
    script = train_script(slug, vram)
    ds_dir.mkdir(parents=True, exist_ok=True)
    outputs_dir.mkdir(parents=True, exist_ok=True)
    report = ExportReport(root, ds_dir, outputs_dir, outputs_dir / "dataset.toml")
    report.removed_stale = _clear_stale(ds_dir) if force else 0

    cache = cache or ImageCache()
    records = dataset.store.images()
    if relpaths is not None:
        wanted = set(relpaths)
        records = [r for r in records if r.relpath in wanted]
    selection = dataset.store.selection()
    readable = []
    for rec in records:
        if selection.get(rec.relpath, (None, ""))[1] == "excluded":
            report.skipped[rec.relpath] = "excluded from the export in the review"
        elif rec.error:
            report.skipped[rec.relpath] = rec.error
        else:
            readable.append(rec)
    stems, rename_notes = _unique_stems(readable)
    variants = {(v.relpath, v.cache_key): v for v in dataset.store.variants()}
    job = f"export-{slug}"
    on_event(JobStarted(job, "export", len(readable)))

    def export_one(rec: ImageRecord) -> tuple[ImageRecord, ExportedFile | None, list[str], str | None]:
        notes: list[str] = []
        if rec.relpath in rename_notes:
            notes.append(rename_notes[rec.relpath])
        key = selection.get(rec.relpath, (None, ""))[0]
        variant = variants.get((rec.relpath, key)) if key else None
        source: Path = dataset.image_path(rec.relpath)
        source_format = rec.format
        if key:
            entry = cache.get(key)
            if entry is None or variant is None:
                notes.append("the selected enhanced variant is no longer in the cache (cleared or "
                             "evicted): exported the original; run prepare/enhance again")
                key = None
                variant = None
            else:
                source, source_format = entry.path, entry.meta.get("format") or "PNG"
        try:
            data = source.read_bytes()
            im = imaging.load_upright_rgb(data)
        except (OSError, imaging.ImageReadError) as exc:
            return rec, None, notes, getattr(exc, "reason", None) or imaging._explain(exc)
        short = min(im.size)
        if short > resolution:
            im = imaging.resize_short_side(im, resolution)
        elif short < resolution:
            notes.append(f"below resolution: short side {short}px < {resolution}px; exported at its "
                         "own size (run `fluxgym-coach prepare` or `enhance` to upscale it)")
        fmt = "JPEG" if source_format == "JPEG" else "PNG"
        stem = stems[rec.relpath]
        file_name = stem + imaging.extension_for(fmt)
        untouched = (fmt == "JPEG" and key is None and short <= resolution and rec.mode == "RGB"
                     and (rec.orientation or 1) == 1 and source.suffix.lower() in (".jpg", ".jpeg"))
        payload = data if untouched else imaging.encode(im, fmt, quality=jpeg_quality)
        atomic_write_bytes(ds_dir / file_name, payload, fsync=False)
        current = dataset.read_caption(rec.relpath)
        if current is not None and current.warning:
            notes.append(current.warning)
        text, status = caption_for_export(current.text if current else None, trigger)
        if status == "placeholder":
            notes.append(NEEDS_CAPTION)
        atomic_write_text(ds_dir / f"{stem}.txt", text, fsync=False)
        return rec, ExportedFile(
            file=file_name, caption_file=f"{stem}.txt", source=rec.relpath, source_digest=rec.digest,
            variant=key or "original", kind=variant.kind if variant else "original",
            params=variant.params if variant else {}, backend=variant.backend if variant else None,
            width=im.width, height=im.height, caption=text, caption_status=status,
            metadata=_metadata_of(dataset, rec.relpath)), notes, None

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2,
                            thread_name_prefix="export") as pool:
        for rec, exported, notes, error in pool.map(export_one, readable):
            for note in notes:
                report.warnings.setdefault(rec.relpath, []).append(note)
                on_event(ItemWarning(job, rec.relpath, note))
            if error is not None:
                report.failed[rec.relpath] = error
                on_event(ItemFailed(job, rec.relpath, error))
                continue
            assert exported is not None
            report.files.append(exported)
            on_event(ItemDone(job, rec.relpath, detail={"file": exported.file}))

    toml_text = tomli_w.dumps(dataset_toml(ds_dir, trigger, resolution, repeats))
    atomic_write_text(report.toml_path, toml_text)
    atomic_write_text(outputs_dir / "sample_prompts.txt", trigger + "\n")
    report.train_script = outputs_dir / "train.sh"
    atomic_write_text(report.train_script, script)
    report.train_script.chmod(0o755)
    manifest = "".join(json.dumps(asdict(f), sort_keys=True, ensure_ascii=False) + "\n"
                       for f in report.files)
    atomic_write_text(outputs_dir / "manifest.jsonl", manifest)
    on_event(JobFinished(job, "export", "done" if not report.failed else "failed",
                         len(report.files), len(report.failed),
                         {"dataset_dir": str(ds_dir), "toml": str(report.toml_path)}))
    return report
