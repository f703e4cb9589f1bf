"""A dataset: the user's folder of images with ``<stem>.txt`` caption sidecars, plus its store.

The scan is incremental. For every image it compares the file's size and
mtime (and its sidecar's) with what the store recorded; unchanged files cost
one ``stat`` each and are neither read nor hashed. New or changed images are
read once: the bytes give the xxh3-128 digest, the header gives the size,
format, mode and EXIF orientation, and one small decode (JPEG draft mode)
gives the perceptual hash, grayscale flag and sharpness. Files that left the
folder leave the store.

The sidecar is the source of truth for a caption; the store mirrors it and
keeps the history of every change made through fluxgym-coach, so any edit can
be undone.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FluxgymCoachError
from . import imaging
from .events import EventSink, ItemDone, ItemFailed, ItemWarning, JobFinished, JobStarted, null_sink
from .caption_encoding import CaptionText, read_caption_file
from .fsutil import atomic_write_text
from .store import STORE_DIRNAME, ImageRecord, Store

CAPTION_EXTENSION = ".txt"
UTF8_BOM = b"\xef\xbb\xbf"
#: Encodings tried, in order, for sidecars that are not UTF-8. cp1252 is what
#: Windows editors write by default (Fluxgym issue #436); latin-1 never fails.
FALLBACK_ENCODINGS = ("cp1252", "latin-1")


class DatasetError(FluxgymCoachError):
    """The dataset folder is unusable (missing, not a folder, not writable)."""


def read_sidecar(path: str | Path) -> CaptionText | None:
    """Read a caption sidecar; None if it does not exist.

    UTF-8 (with or without BOM) is read as is; UTF-16/32 by their BOM, UTF-16
    without BOM by its NUL pattern, other bytes as cp1252, with a warning.
    A file with NUL or control bytes is refused: empty ``text``, ``error`` set
    (see :mod:`fluxgym_coach.caption_encoding`).
    """
    return read_caption_file(path)


def one_line(text: str) -> str:
    """Collapse a caption to one line: line breaks become ``", "``-free spaces, runs
    of whitespace become one space, ends stripped."""
    return " ".join(text.split())


@dataclass(slots=True)
class ScanReport:
    """What a scan found. Lists hold relpaths; ``errors``/``warnings`` map relpath -> reason."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    captions_updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        """Images present in the folder after the scan."""
        return len(self.added) + len(self.updated) + len(self.captions_updated) + self.unchanged


@dataclass(slots=True)
class _Entry:
    relpath: str
    path: str
    size: int
    mtime_ns: int
    sidecar: str | None
    sidecar_size: int | None
    sidecar_mtime_ns: int | None


def _walk(root: str) -> Iterator[_Entry]:
    """Yield image entries under ``root``, skipping hidden names and the store folder."""
    stack = [root]
    root_len = len(root.rstrip(os.sep)) + 1
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        sidecars = {}
        images = []
        for e in entries:
            if e.name.startswith(".") or e.name == STORE_DIRNAME:
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                    continue
            except OSError:
                continue
            lower = e.name.lower()
            if lower.endswith(CAPTION_EXTENSION):
                sidecars[e.name[: -len(CAPTION_EXTENSION)]] = e
            elif imaging.is_image_name(lower):
                images.append(e)
        for e in images:
            try:
                st = e.stat()
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:  # broken symlink, vanished file: still listed, read fails later
                size, mtime = -1, -1
            side = sidecars.get(os.path.splitext(e.name)[0])
            s_size = s_mtime = None
            if side is not None:
                try:
                    sst = side.stat()
                    s_size, s_mtime = sst.st_size, sst.st_mtime_ns
                except OSError:
                    side = None
            rel = e.path[root_len:].replace(os.sep, "/")
            yield _Entry(rel, e.path, size, mtime, side.path if side else None, s_size, s_mtime)


def _read_image(entry: _Entry) -> ImageRecord:
    """Digest, probe and measure one image; errors are recorded, not raised."""
    rec = ImageRecord(relpath=entry.relpath, size=entry.size, mtime_ns=entry.mtime_ns)
    try:
        with open(entry.path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        rec.error = imaging._explain(exc)
        return rec
    rec.size = len(data)
    rec.digest = imaging.digest_bytes(data) if data else None
    try:
        im = imaging.open_image(data, entry.path)
        info = imaging.probe(im)
        rec.width, rec.height = info.width, info.height
        rec.format, rec.mode = info.format, info.mode
        rec.orientation, rec.n_frames = info.orientation, info.n_frames
        m = imaging.measure(im)
        rec.phash, rec.is_grayscale, rec.sharpness = m.phash, m.is_grayscale, m.sharpness
    except imaging.ImageReadError as exc:
        rec.error = exc.reason
    return rec


class Dataset:
    """A folder of images and captions with its store at ``<root>/.fluxgym-coach/``.

    Raises :class:`DatasetError` if ``root`` is not an existing folder.
    """

    def __init__(self, root: str | Path, store: Store | None = None):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise DatasetError(f"{root}: not a folder. Pass the folder that holds your images.")
        self.store = store or Store.for_dataset(self.root)

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __enter__(self) -> "Dataset":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths ----------------------------------------------------------------
    def image_path(self, relpath: str) -> Path:
        """Absolute path of an image from its relpath."""
        return self.root / relpath

    def sidecar_path(self, relpath: str) -> Path:
        """Absolute path of the caption sidecar of an image (may not exist)."""
        return (self.root / relpath).with_suffix(CAPTION_EXTENSION)

    def images(self) -> list[ImageRecord]:
        """All image records in the store, ordered by relpath."""
        return self.store.images()

    # -- scan -----------------------------------------------------------------
    def scan(self, on_event: EventSink = null_sink, workers: int | None = None,
             batch: int = 256) -> ScanReport:
        """Bring the store up to date with the folder (see the module docstring).

        Emits :class:`~fluxgym_coach.events.JobStarted` with the number of
        images to read, an ``ItemDone`` per image read, ``ItemFailed`` for
        unreadable images and ``ItemWarning`` for captions not in UTF-8.
        Records are committed every ``batch`` images, so an interrupted scan
        keeps what it did. Returns a :class:`ScanReport`.
        """
        started = time.perf_counter()
        job = f"scan-{uuid.uuid4().hex[:8]}"
        report = ScanReport()
        known = self.store.stat_index()
        seen: set[str] = set()
        to_read: list[_Entry] = []
        caption_only: list[_Entry] = []
        for entry in _walk(str(self.root)):
            seen.add(entry.relpath)
            old = known.get(entry.relpath)
            if old is None:
                to_read.append(entry)
                continue
            if (old[0], old[1]) != (entry.size, entry.mtime_ns):
                to_read.append(entry)
            elif (old[2], old[3]) != (entry.sidecar_size, entry.sidecar_mtime_ns):
                caption_only.append(entry)
            else:
                report.unchanged += 1
        report.removed = sorted(set(known) - seen)
        self.store.delete_images(report.removed)

        on_event(JobStarted(job, "scan", len(to_read) + len(caption_only)))
        for entry in caption_only:
            cap = self._read_caption_entry(entry, report, on_event, job)
            self.store.update_caption_mirror(entry.relpath, cap.text if cap else None,
                                             cap.encoding if cap else None,
                                             entry.sidecar_size, entry.sidecar_mtime_ns)
            report.captions_updated.append(entry.relpath)
            on_event(ItemDone(job, entry.relpath, cached=True))

        if to_read:
            n_workers = workers or min(8, (os.cpu_count() or 2))
            pending: list[ImageRecord] = []
            with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="scan") as pool:
                for entry, rec in zip(to_read, pool.map(_read_image, to_read)):
                    cap = self._read_caption_entry(entry, report, on_event, job)
                    if cap is not None:
                        rec.caption, rec.caption_encoding = cap.text, cap.encoding
                        rec.caption_size, rec.caption_mtime_ns = entry.sidecar_size, entry.sidecar_mtime_ns
                    (report.updated if entry.relpath in known else report.added).append(entry.relpath)
                    if rec.error:
                        report.errors[entry.relpath] = rec.error
                        on_event(ItemFailed(job, entry.relpath, rec.error))
                    else:
                        on_event(ItemDone(job, entry.relpath))
                    pending.append(rec)
                    if len(pending) >= batch:
                        self.store.upsert_images(pending)
                        pending.clear()
            self.store.upsert_images(pending)
        report.seconds = time.perf_counter() - started
        on_event(JobFinished(job, "scan", "done", len(to_read) + len(caption_only) - len(report.errors),
                             len(report.errors),
                             {"added": len(report.added), "updated": len(report.updated),
                              "removed": len(report.removed), "unchanged": report.unchanged}))
        return report

    def _read_caption_entry(self, entry: _Entry, report: ScanReport, on_event: EventSink,
                            job: str) -> CaptionText | None:
        if entry.sidecar is None:
            return None
        cap = read_sidecar(entry.sidecar)
        if cap is not None and cap.warning:
            report.warnings[entry.relpath] = cap.warning
            on_event(ItemWarning(job, entry.relpath, cap.warning))
        return cap

    # -- captions -------------------------------------------------------------
    def read_caption(self, relpath: str) -> CaptionText | None:
        """The current sidecar text of an image (from disk), or None if there is none."""
        return read_sidecar(self.sidecar_path(relpath))

    def write_caption(self, relpath: str, text: str, source: str = "user") -> bool:
        """Save a caption: one line, UTF-8 without BOM, written atomically.

        The previous text goes to the caption history (``source`` says who
        changed it: ``"user"``, ``"tui"``, ``"caption:<backend>"``, ...).
        Returns False when the text did not change, and when empty text is
        saved for an image without a sidecar (no empty file is created).
        Raises OSError if the folder is not writable.
        """
        new = one_line(text)
        current = self.read_caption(relpath)
        old = current.text if current else None
        if current is not None and current.error:  # a refused (binary/damaged) sidecar: keep it in the history
            old = current.damaged
        if old is not None and old == new and current.encoding == "utf-8":
            return False
        if old is None and not new:
            return False
        path = self.sidecar_path(relpath)
        atomic_write_text(path, new)
        self.store.add_caption_history(relpath, old, new, source)
        st = path.stat()
        self.store.update_caption_mirror(relpath, new, "utf-8", st.st_size, st.st_mtime_ns)
        return True

    def undo_caption(self, relpath: str) -> str | None:
        """Undo the newest not-yet-undone caption change of an image.

        Writes the previous text back (or removes a sidecar that fluxgym-coach
        created). Returns the restored text (None when there was no sidecar
        before). Raises LookupError when there is nothing to undo.
        """
        rows = self.store.caption_history(relpath, include_undone=False)
        if not rows:
            raise LookupError(f"{relpath}: no caption change to undo")
        last = rows[0]
        path = self.sidecar_path(relpath)
        old = last["old_text"]
        if old is None:
            path.unlink(missing_ok=True)
            self.store.update_caption_mirror(relpath, None, None, None, None)
        else:
            atomic_write_text(path, old)
            st = path.stat()
            self.store.update_caption_mirror(relpath, old, "utf-8", st.st_size, st.st_mtime_ns)
        self.store.mark_caption_undone(last["id"])
        return old
