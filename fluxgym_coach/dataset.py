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
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import FluxgymCoachError
from . import imaging
from .events import (EventSink, ItemDone, ItemFailed, ItemsFound, ItemsStored, ItemWarning, JobFinished,
                     JobStarted, null_sink)
from .captions.encoding import CaptionText, read_caption_file
from .fsutil import atomic_write_text
from .statuses import JobStatus
from .store import STORE_DIRNAME, ImageRecord, Store
from .scan_workers import PROCESS_MIN_IMAGES, header_pass, measured, usable_cpus  # noqa: F401

_usable_cpus = usable_cpus  # bench/scan.py's name

if TYPE_CHECKING:  # imported where images are read (numpy): opening a dataset needs neither
    from .audit.measures import ExtraMeasures

CAPTION_EXTENSION = ".txt"
UTF8_BOM = b"\xef\xbb\xbf"
#: New images per ItemsFound event of the folder walk (the first names show
#: after about this many files are walked, not after the whole folder).
FOUND_CHUNK = 1000
#: Encodings tried, in order, for sidecars that are not UTF-8. cp1252 is what
#: Windows editors write by default (Fluxgym issue #436); latin-1 never fails.
FALLBACK_ENCODINGS = ("cp1252", "latin-1")


class DatasetError(FluxgymCoachError):
    """The dataset folder is unusable (missing, not a folder, not writable)."""


#: Largest caption sidecar read, in bytes (1 MiB; a caption is a few hundred bytes).
MAX_CAPTION_BYTES = 1 << 20


class CaptionFileError(DatasetError):
    """A caption sidecar exists but is not a readable caption file (a folder, a FIFO,
    a device, or too large). ``path`` names it, ``reason`` says why and what to do."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def sidecar_problem(path: str | Path) -> str | None:
    """Why the sidecar at ``path`` cannot be read as a caption (None when it is a regular
    file within :data:`MAX_CAPTION_BYTES`, or does not exist). Never opens it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"caption sidecar {Path(path).name} cannot be read ({exc.strerror or exc})"
    name = Path(path).name
    if stat.S_ISDIR(st.st_mode):
        return f"caption sidecar {name} is a folder, not a text file: rename or remove it"
    if not stat.S_ISREG(st.st_mode):
        return (f"caption sidecar {name} is not a regular file (a FIFO or a device): never read; "
                "remove it")
    if st.st_size > MAX_CAPTION_BYTES:
        return (f"caption sidecar {name} is {st.st_size / 2**20:.1f} MiB, over the "
                f"{MAX_CAPTION_BYTES // 1024} KiB limit for a caption: check what it is")
    return None


def read_sidecar(path: str | Path) -> CaptionText | None:
    """Read a caption sidecar; None if it does not exist.

    UTF-8 (with or without BOM) is read as is; UTF-16/32 by their BOM, UTF-16
    without BOM by its NUL pattern, other bytes as cp1252, with a warning.
    A file with NUL or control bytes is refused: empty ``text``, ``error`` set
    (see :mod:`fluxgym_coach.captions.encoding`). Raises
    :class:`CaptionFileError` when the path is a folder, a FIFO, a device or
    over :data:`MAX_CAPTION_BYTES` (nothing is read then).
    """
    problem = sidecar_problem(path)
    if problem:
        raise CaptionFileError(path, problem)
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
    #: distinct image contents (digests) measured for the first time (audit extra measures)
    measured: int = 0

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
    sidecar_problem: str | None = None


def _walk(root: str) -> Iterator[_Entry]:
    """Image entries under ``root`` (hidden names and the store skipped): a folder's
    images by name, then its sub-folders, first name first (the top of a sorted list)."""
    stack = [root]
    root_len = len(root.rstrip(os.sep)) + 1
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        sidecars: dict[str, os.DirEntry] = {}
        bad_sidecars: dict[str, str] = {}
        images, folders = [], []
        for e in entries:
            if e.name.startswith(".") or e.name == STORE_DIRNAME:
                continue
            lower = e.name.lower()
            try:
                if e.is_dir(follow_symlinks=False):
                    folders.append(e.path)
                    if lower.endswith(CAPTION_EXTENSION):  # a folder named like a caption
                        bad_sidecars[e.name[: -len(CAPTION_EXTENSION)]] = sidecar_problem(e.path) or ""
                    continue
            except OSError:
                continue
            if lower.endswith(CAPTION_EXTENSION):
                sidecars[e.name[: -len(CAPTION_EXTENSION)]] = e
            elif imaging.is_image_name(lower):
                images.append(e)
        stack.extend(reversed(folders))  # popped first name first
        for e in images:
            try:
                st = e.stat()
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:  # broken symlink, vanished file: still listed, read fails later
                size, mtime = -1, -1
            stem = os.path.splitext(e.name)[0]
            side = sidecars.get(stem)
            s_size = s_mtime = None
            problem = bad_sidecars.get(stem)
            if side is not None:
                try:
                    sst = side.stat()
                    s_size, s_mtime = sst.st_size, sst.st_mtime_ns
                    if not stat.S_ISREG(sst.st_mode) or sst.st_size > MAX_CAPTION_BYTES:
                        problem = sidecar_problem(side.path)
                except OSError:
                    side = None
            rel = e.path[root_len:].replace(os.sep, "/")
            # a sidecar problem: never read; the stat differs from any real file's, so a fix is seen
            yield (_Entry(rel, e.path, size, mtime, None, -1, -1, problem) if problem else
                   _Entry(rel, e.path, size, mtime, side.path if side else None, s_size, s_mtime))


def _measure_entry(entry: _Entry) -> tuple[ImageRecord, ExtraMeasures | None]:
    """Digest, probe and measure one image from one read and one decode (scan and
    audit measures, :func:`fluxgym_coach.audit.measures.read_and_measure`); errors are
    recorded, not raised. Runs in a thread or a worker process."""
    from .audit.measures import read_and_measure

    rec, extra = read_and_measure(entry.path, entry.relpath, entry.size, entry.mtime_ns)
    if entry.sidecar_problem:  # the image is left out of captioning and export until fixed
        rec.error = entry.sidecar_problem
    return rec, extra


def _read_image(entry: _Entry) -> ImageRecord:
    """The scan's record of one image (see :func:`_measure_entry`)."""
    return _measure_entry(entry)[0]


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
    def first_images(self, limit: int | None = None) -> dict[str, dict[str, int]]:
        """The first ``limit`` images (default :data:`FOUND_CHUNK`) the scan's folder
        walk finds, in its order, as ``{relpath: {"size": bytes, "mtime_ns": ns}}`` (the
        facts of the walk's :class:`~fluxgym_coach.events.ItemsFound`). Reads no image
        and leaves the store alone: a front end lists them before the scan starts (the
        TUI in the first screen of a first open). -1 for a file that vanished."""
        limit = FOUND_CHUNK if limit is None else limit
        found: dict[str, dict[str, int]] = {}
        if limit <= 0:
            return found
        for entry in _walk(str(self.root)):
            found[entry.relpath] = {"size": entry.size, "mtime_ns": entry.mtime_ns}
            if len(found) >= limit:
                break
        return found

    def scan(self, on_event: EventSink = null_sink, workers: int | None = None,
             batch: int = 256, processes: bool | None = None,
             headers: bool = False) -> ScanReport:
        """Bring the store up to date with the folder (see the module docstring).

        Emits :class:`~fluxgym_coach.events.JobStarted` with the number of
        images to read, an ``ItemDone`` per image read, ``ItemFailed`` for
        unreadable images and ``ItemWarning`` for captions not in UTF-8.
        Records are committed every ``batch`` images, so an interrupted scan
        keeps what it did; each commit emits
        :class:`~fluxgym_coach.events.ItemsStored` naming its images. While the
        folder walk goes on, before any image is read,
        :class:`~fluxgym_coach.events.ItemsFound` events (one per
        :data:`FOUND_CHUNK` new images, the rest after the walk, all before
        ``JobStarted``) name every new image (file size and mtime), so a front
        end lists them at once; with ``headers``
        a header pass (no decode, :func:`_header_pass`) runs beside the reads
        and adds each new image's width, height, format and orientation, one
        ``ItemsFound`` per chunk (the TUI asks for it).
        Images are read by ``workers`` (default: the usable CPUs, at most 8)
        worker processes when there are at least :data:`PROCESS_MIN_IMAGES` to read, threads otherwise (``processes``
        forces either). Each image is read once and decoded once; the audit's
        extra measures are stored with its record (one transaction per batch).
        ``report.errors`` names every unreadable image, found now or by an
        earlier scan and unchanged since, so every run reports them.
        Returns a :class:`ScanReport`.
        """
        started = time.perf_counter()
        job = f"scan-{uuid.uuid4().hex[:8]}"
        report = ScanReport()
        known = self.store.stat_index()
        errored = {r[0] for r in self.store.execute("SELECT relpath FROM images WHERE error IS NOT NULL")}
        to_read, caption_only, seen = self._compare(known, errored, report, on_event, job)
        report.removed = sorted(set(known) - seen)
        self.store.delete_images(report.removed)

        on_event(JobStarted(job, "scan", len(to_read) + len(caption_only)))
        new = [e for e in to_read if e.relpath not in known]
        for entry in caption_only:
            cap = self._read_caption_entry(entry, report, on_event, job)
            self.store.update_caption_mirror(entry.relpath, cap.text if cap else None,
                                             cap.encoding if cap else None,
                                             entry.sidecar_size, entry.sidecar_mtime_ns)
            report.captions_updated.append(entry.relpath)
            on_event(ItemDone(job, entry.relpath, cached=True))
        if caption_only:
            on_event(ItemsStored(job, [e.relpath for e in caption_only]))

        if to_read:
            self._read_with_headers(to_read, new if headers else [], known, report, on_event, job,
                                    workers, processes, batch)
        self._stored_errors(report)
        report.seconds = time.perf_counter() - started
        on_event(JobFinished(job, "scan", JobStatus.DONE, len(to_read) + len(caption_only) - len(report.errors),
                             len(report.errors),
                             {"added": len(report.added), "updated": len(report.updated),
                              "removed": len(report.removed), "unchanged": report.unchanged}))
        return report

    def _compare(self, known: dict, errored: set[str], report: ScanReport, on_event: EventSink,
                 job: str) -> tuple[list[_Entry], list[_Entry], set[str]]:
        """Walk the folder and sort each image against the store: ``(to read, caption
        only changed, relpaths seen)``; unchanged ones are counted in ``report``. New
        images are named in ``ItemsFound`` events of :data:`FOUND_CHUNK` while walking."""
        seen: set[str] = set()
        to_read: list[_Entry] = []
        caption_only: list[_Entry] = []
        found: dict[str, dict[str, int]] = {}
        for entry in _walk(str(self.root)):
            seen.add(entry.relpath)
            old = known.get(entry.relpath)
            if old is None:
                to_read.append(entry)
                found[entry.relpath] = {"size": entry.size, "mtime_ns": entry.mtime_ns}
                if len(found) >= FOUND_CHUNK:  # listed while the walk goes on
                    on_event(ItemsFound(job, found))
                    found = {}
                continue
            if (old[0], old[1]) != (entry.size, entry.mtime_ns):
                to_read.append(entry)
            elif (old[2], old[3]) != (entry.sidecar_size, entry.sidecar_mtime_ns) and (
                    entry.sidecar_problem or entry.relpath in errored):
                to_read.append(entry)  # a sidecar problem appeared or was fixed: re-read it all
            elif (old[2], old[3]) != (entry.sidecar_size, entry.sidecar_mtime_ns):
                caption_only.append(entry)
            else:
                report.unchanged += 1
        if found:
            on_event(ItemsFound(job, found))
        return to_read, caption_only, seen

    def _read_with_headers(self, to_read: list[_Entry], new: list[_Entry], known: dict,
                           report: ScanReport, on_event: EventSink, job: str, workers: int | None,
                           processes: bool | None, batch: int) -> None:
        """:meth:`_read_all`, with the header pass of ``new`` on its own thread beside it."""
        stop = threading.Event()
        header_thread = None
        if new:
            header_thread = threading.Thread(target=header_pass, args=(new, on_event, job, stop),
                                             name="scan-headers", daemon=True)
            header_thread.start()
        try:
            self._read_all(to_read, known, report, on_event, job, workers, processes, batch)
        finally:
            stop.set()
            if header_thread is not None:
                header_thread.join()

    def _read_all(self, to_read: list[_Entry], known: dict, report: ScanReport, on_event: EventSink,
                  job: str, workers: int | None, processes: bool | None, batch: int) -> None:
        """Read and measure ``to_read`` in a pool, storing records and measures in batches."""
        from .audit.measures import MEASURE_VERSION, measure_rows, measures_sql

        records: list[ImageRecord] = []
        extras: list[tuple[str, ExtraMeasures]] = []
        digests: set[str] = set()
        self.store.ensure_schema("audit")
        stored = {r[0] for r in self.store.execute(
            "SELECT digest FROM audit_measures WHERE version = ?", (MEASURE_VERSION,))}

        def flush() -> list[str]:
            self.store.write_batch(records, [(measures_sql(), measure_rows(extras))])
            stored = [r.relpath for r in records]
            records.clear()
            extras.clear()
            return stored

        results = measured(to_read, _measure_entry, workers, processes)
        try:
            for entry, (rec, extra) in results:
                cap = self._read_caption_entry(entry, report, on_event, job)
                if cap is not None or entry.sidecar_problem:
                    if cap is not None:
                        rec.caption, rec.caption_encoding = cap.text, cap.encoding
                    rec.caption_size, rec.caption_mtime_ns = entry.sidecar_size, entry.sidecar_mtime_ns
                (report.updated if entry.relpath in known else report.added).append(entry.relpath)
                if rec.error:
                    report.errors[entry.relpath] = rec.error
                    on_event(ItemFailed(job, entry.relpath, rec.error))
                else:
                    on_event(ItemDone(job, entry.relpath))
                records.append(rec)
                if extra is not None and rec.digest:
                    extras.append((rec.digest, extra))
                    if rec.digest not in stored:
                        digests.add(rec.digest)
                if len(records) >= batch:
                    on_event(ItemsStored(job, flush()))
        finally:
            # On cancellation (a sink raising) or any error: drop queued work, keep what finished.
            results.close()
            last = flush()
            report.measured = len(digests)
        if last:
            on_event(ItemsStored(job, last))

    def _stored_errors(self, report: ScanReport) -> None:
        """Add to ``report.errors`` the unreadable images an earlier scan recorded."""
        for row in self.store.execute("SELECT relpath, error FROM images WHERE error IS NOT NULL "
                                      "ORDER BY relpath"):
            report.errors.setdefault(row[0], row[1])

    def _read_caption_entry(self, entry: _Entry, report: ScanReport, on_event: EventSink,
                            job: str) -> CaptionText | None:
        if entry.sidecar is None:
            return None
        try:
            cap = read_sidecar(entry.sidecar)
        except CaptionFileError as exc:  # swapped for a FIFO/folder since the walk
            report.warnings[entry.relpath] = exc.reason
            on_event(ItemWarning(job, entry.relpath, exc.reason))
            return None
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
