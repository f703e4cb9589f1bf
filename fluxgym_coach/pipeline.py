"""Batch jobs: plan -> cache lookup -> chunk -> backend -> write -> events, resumable.

:func:`run_enhance` is the one implementation of enhancement that every front
end uses (CLI ``enhance`` and ``prepare``, the TUI, plugins). For each source
image it decides the operations (colorize black-and-white images when asked
and the backend can; upscale when the scale is above 1), looks each result up
in the :class:`~fluxgym_coach.image_cache.ImageCache`, sends the rest to the
backend in chunks (bounded by ``backend.max_batch`` images and
``backend.max_request_bytes`` input bytes, images of one scale together) and
keeps ``backend.concurrency`` chunks in flight, so the next request is read
and encoded while the server works on the current one.

**Streaming.** Inputs are hashed first (the job id needs every digest), then
measured by a few threads; in source order, each image is looked up and
joins a chunk as soon as it is known, so the first request leaves before the
last image is measured. With more than one chunk in flight, the first chunk
and the last ones hold a quarter of ``max_batch``: the server starts early
and little is left to store after its last job. A file is read only when its
chunk is about to be sent.

**Cancellation.** Setting ``cancel`` stops new chunks and asks the backend to
interrupt the running one; items cut short stay pending (resumable). A
cancelled task (Ctrl-C under :func:`asyncio.run`) also interrupts the backend
and leaves the job resumable.

**Resume.** A job has an id derived from its kind, parameters, backend and
input digests, and a journal in the dataset store (tables ``jobs`` and
``job_items``). Each finished item is journaled with its result key at once.
If the process stops (Ctrl-C, crash, lost SSH session) the job stays open;
the same command later finds it and skips the items already done, even with
``lookup=False``. A job that ran to the end is closed; running the same
command again starts a new job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from . import imaging, server_io
from .backends.base import BackendError, EnhanceBackend, EnhanceItem, EnhanceParams
from .events import (EventSink, InFlightProgress, ItemDone, ItemFailed, ItemWarning, JobFinished, JobStarted,
                     null_sink)
from .image_cache import CacheEntry, ImageCache, canonical_json
from .store import Store, VariantRecord

log = logging.getLogger(__name__)

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
    """What happened to one source. ``status``: ``"enhanced"`` (computed now),
    ``"cached"`` (found in the cache or the journal), ``"skipped"`` (nothing to
    do, ``reason`` says why) or ``"failed"`` (``reason`` says why). ``entry``
    is the cached result for enhanced/cached; ``kind`` the operations done
    (``"upscale"``, ``"colorize"``, ``"colorize+upscale"``); ``params`` the
    cache parameters of the final step; ``warnings`` non-fatal notes."""

    name: str
    status: str
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

    def by_status(self, status: str) -> list[Outcome]:
        """Outcomes with the given status, in source order."""
        return [o for o in self.outcomes.values() if o.status == status]

    @property
    def failed(self) -> list[Outcome]:
        """Outcomes that failed."""
        return self.by_status("failed")


class Journal:
    """The resumable record of one job in a dataset store (see the module docstring)."""

    def __init__(self, store: Store, job_id: str, kind: str, params: dict[str, Any], total: int):
        self.store = store
        self.job_id = job_id
        now = time.time()
        rows = store.execute("SELECT status FROM jobs WHERE id = ?", (job_id,))
        if rows and rows[0]["status"] == "done":
            store.execute("DELETE FROM job_items WHERE job_id = ?", (job_id,))
        if rows:
            store.execute("UPDATE jobs SET status = 'running', total = ?, updated_at = ? WHERE id = ?",
                          (total, now, job_id))
        else:
            store.execute(
                "INSERT INTO jobs(id, kind, params, status, total, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (job_id, kind, canonical_json(params), "running", total, now, now))
        self.resumed = bool(rows) and rows[0]["status"] != "done"

    def done_items(self) -> dict[str, dict[str, Any]]:
        """``{item: result dict}`` for items finished in an earlier run of this job."""
        rows = self.store.execute(
            "SELECT item, result FROM job_items WHERE job_id = ? AND status = 'done'", (self.job_id,))
        return {r["item"]: json.loads(r["result"]) for r in rows}

    def mark(self, item: str, status: str, result: dict[str, Any] | None = None,
             error: str | None = None) -> None:
        """Record one item's status (``"done"`` or ``"failed"``)."""
        self.store.execute(
            "INSERT INTO job_items(job_id, item, status, result, error, updated_at) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(job_id, item) DO UPDATE SET status=excluded.status, result=excluded.result, "
            "error=excluded.error, updated_at=excluded.updated_at",
            (self.job_id, item, status, json.dumps(result) if result is not None else None, error,
             time.time()))

    def close(self, status: str) -> None:
        """Mark the job ``"done"`` (closed) or ``"cancelled"``/``"failed"`` (resumable)."""
        self.store.execute("UPDATE jobs SET status = ?, updated_at = ? WHERE id = ?",
                           (status, time.time(), self.job_id))


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def job_id_for(kind: str, params: dict[str, Any], backend_identity: str,
               digests: Sequence[str]) -> str:
    """Stable id of a job: xxh3-64 of its kind, parameters, backend and sorted input digests."""
    h = xxhash.xxh3_64()
    h.update(f"{kind}\0{canonical_json(params)}\0{backend_identity}\0".encode())
    for d in sorted(digests):
        h.update(d.encode())
    return f"{kind}-{h.hexdigest()}"


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


@dataclass(slots=True)
class _Work:
    source: Source
    scale: float
    colorize: bool
    outcome: Outcome
    input_data: bytes | None = None
    input_digest: str | None = None
    key: str | None = None


async def run_enhance(
    sources: Sequence[Source],
    backend: EnhanceBackend,
    params: EnhanceParams,
    cache: ImageCache,
    *,
    lookup: bool = True,
    store: Store | None = None,
    on_event: EventSink = null_sink,
    cancel: asyncio.Event | None = None,
    progress_interval: float = 1.0,
) -> EnhanceReport:
    """Enhance ``sources`` with ``backend`` (see the module docstring).

    ``lookup=False`` recomputes results even when cached (``--force-reprocess``
    and ``--no-cache``). With a ``store``, the job is journaled there and
    resumes. Setting ``cancel`` stops after the chunks in flight (the backend
    is asked to interrupt) and returns a report with ``cancelled=True``.
    Never raises for a single image: failures are outcomes. Raises
    BackendError when the backend's pre-flight :meth:`check` fails.

    Work is streamed: sources are measured by a few threads and, in source
    order, each one goes to the cache lookup and into a chunk as soon as it
    is known, so the first request leaves before the last image is measured.

    While requests are in flight, a backend with ``progress_in_flight()``
    (Forge) is asked every ``progress_interval`` seconds how many of their
    images it has finished, and the answer goes out as
    :class:`~fluxgym_coach.events.InFlightProgress` (progress bars move
    within a long batch, not only when it returns).
    """
    started = time.perf_counter()
    await backend.check(params)
    cancel = cancel or asyncio.Event()
    reading = asyncio.Semaphore(DESCRIBE_THREADS)

    # Phase 1: the identity (digest) of every source, which the job id needs.
    async def identify(src: Source) -> Source | BaseException:
        if src.digest:
            return src
        async with reading:
            try:
                digest = await asyncio.to_thread(imaging.digest_file, src.path)
            except OSError as exc:
                return exc
        return Source(src.name, src.path, digest, src.width, src.height, src.is_grayscale)

    identified: list[Source] = []
    failures: dict[str, str] = {}
    for src, res in zip(sources, await asyncio.gather(*(identify(s) for s in sources))):
        if isinstance(res, Source):
            identified.append(res)
        else:
            failures[src.name] = imaging._explain(res)
    job_params = params.to_dict()
    job_id = job_id_for("enhance", job_params, backend.identity, [s.digest or "" for s in identified])
    report = EnhanceReport(job_id)
    journal = Journal(store, job_id, "enhance", job_params, len(sources)) if store else None
    journaled = journal.done_items() if journal else {}

    on_event(JobStarted(job_id, "enhance", len(sources)))
    for src in sources:  # outcomes in source order
        report.outcomes[src.name] = Outcome(src.name, "pending")
    for name, reason in failures.items():
        report.outcomes[name] = Outcome(name, "failed", reason)
        on_event(ItemFailed(job_id, name, reason))
        if journal:
            journal.mark(name, "failed", error=reason)

    stopped: list[str] = []  # the reason of a fatal backend error, once one happened
    sem = asyncio.Semaphore(max(1, int(getattr(backend, "concurrency", 1))))
    tasks: list[asyncio.Task[None]] = []
    color_tasks: list[asyncio.Task[None]] = []

    def finish(work: _Work, entry: CacheEntry, kind: str, cparams: dict[str, Any], cached: bool) -> None:
        o = work.outcome
        o.status = "cached" if cached and o.status != "enhanced" else "enhanced"
        o.entry, o.kind, o.params = entry, kind, cparams
        o.size = tuple(entry.meta.get("size") or ()) or None  # type: ignore[assignment]
        for w in o.warnings:
            on_event(ItemWarning(job_id, o.name, w))
        if journal:
            journal.mark(o.name, "done", {"key": entry.key, "kind": kind, "params": cparams,
                                          "size": list(o.size or ())})
        on_event(ItemDone(job_id, o.name, cached=o.status == "cached",
                          detail={"status": o.status, "kind": kind, "path": str(entry.path)}))

    def fail(work: _Work, reason: str) -> None:
        work.outcome.status, work.outcome.reason = "failed", reason
        if journal:
            journal.mark(work.outcome.name, "failed", error=reason)
        on_event(ItemFailed(job_id, work.outcome.name, reason))

    def store_result(key: str, data: bytes, op: str, cparams: dict[str, Any], source: str,
                     source_data: bytes, name: str) -> CacheEntry:
        # Nothing is cached before it is known to be this source's picture (not flat, same layout).
        server_io.check_result(server_io.signature(source_data), data, name)
        im = imaging.open_image(data)
        meta = {"op": op, "params": cparams, "backend": backend.identity, "source_digest": source,
                "size": [im.width, im.height], "format": im.format}
        return cache.put(key, data, imaging.extension_for(im.format or "PNG"), meta)

    def item_of(work: _Work) -> EnhanceItem:
        # Before the file is read (cache lookups) data is empty: keys need the digest only.
        return EnhanceItem(work.source.name, work.input_data or b"",
                           work.input_digest or work.source.digest or "",
                           work.source.width or 0, work.source.height or 0, work.scale)

    def load_chunk(chunk: list[_Work]) -> None:
        for w in chunk:
            if w.input_data is None:
                w.input_data = w.source.path.read_bytes()
                w.input_digest = w.source.digest

    async def run_chunk(chunk: list[_Work], after: asyncio.Event | None, sent: asyncio.Event) -> None:
        # Requests leave in plan order: a chunk waits (without holding a slot)
        # until the one planned before it has been sent, so the small first
        # chunk really is the first request the server sees.
        try:
            if after is not None:
                await after.wait()
            async with sem:
                await send_chunk(chunk, sent)
        finally:
            sent.set()

    async def send_chunk(chunk: list[_Work], sent: asyncio.Event) -> None:
        if cancel.is_set():
            return
        if stopped:  # an earlier request failed in a way every request would: do not send
            for w in chunk:
                fail(w, f"not sent: {stopped[0]}")
            return
        try:
            await asyncio.to_thread(load_chunk, chunk)
        except OSError as exc:
            for w in chunk:
                fail(w, imaging._explain(exc))
            return
        items = [item_of(w) for w in chunk]
        try:
            sent.set()
            results = await backend.upscale(items, params)
            report.backend_requests += 1
        except BackendError as exc:
            if cancel.is_set():  # stopped by the user: the items stay pending (resumable)
                return
            if exc.fatal and not stopped:
                stopped.append(exc.reason)
            for w in chunk:
                fail(w, exc.reason)
            return
        if len(results) != len(chunk):  # never map a short batch by position
            for w in chunk:
                fail(w, f"backend returned {len(results)} results for {len(chunk)} images")
            return
        for w, item, res in zip(chunk, items, results):
            if isinstance(res, BackendError):
                if not (cancel.is_set() and res.retryable):
                    fail(w, res.reason)
                w.input_data = None
                continue
            cparams = backend.cache_params("upscale", params, item)
            try:
                entry = await asyncio.to_thread(store_result, w.key, res, "upscale", cparams,
                                                item.digest, item.data, item.name)
            except imaging.ImageReadError as exc:
                fail(w, f"backend returned an unreadable image ({exc.reason})")
                continue
            except server_io.ResultCheckError as exc:
                fail(w, exc.reason)
                continue
            w.outcome.status = "enhanced"
            finish(w, entry, "colorize+upscale" if w.colorize else "upscale", cparams, cached=False)
            w.input_data = None

    # Chunks fill per scale factor, bounded by max_batch images and max_request_bytes.
    open_chunks: dict[float, tuple[list[_Work], int]] = {}

    last_sent: list[asyncio.Event | None] = [None]
    in_flight = getattr(backend, "progress_in_flight", None)
    poller: list[asyncio.Task[None]] = []

    async def poll_in_flight() -> None:
        # Polled at most once a second by default: a poll can cost the server a
        # live-preview decode (sdapi.md §6).
        last = 0.0
        while True:
            await asyncio.sleep(progress_interval)
            if all(t.done() for t in tasks):
                continue
            try:
                items = float(await in_flight())
            except Exception:  # noqa: BLE001 - progress is cosmetic: never stop a job for it
                log.warning("progress from %r stopped (the job goes on)", backend, exc_info=True)
                return
            if items != last:
                last = items
                on_event(InFlightProgress(job_id, items))

    def submit(chunk: list[_Work]) -> None:
        sent = asyncio.Event()
        tasks.append(asyncio.create_task(run_chunk(chunk, last_sent[0], sent)))
        last_sent[0] = sent
        if in_flight is not None and not poller:
            poller.append(asyncio.create_task(poll_in_flight()))

    pipelined = int(getattr(backend, "concurrency", 1)) > 1

    small = max(1, -(-backend.max_batch // 4))
    left = [len(identified)]  # sources not planned yet

    def chunk_limit() -> int:
        # With requests in flight: the first chunk is small so the server starts
        # early, and so are the last ones, so little is left to store once the
        # server is done; the others are full and queue while it works.
        if not pipelined:
            return backend.max_batch
        return small if not tasks or left[0] < backend.max_batch else backend.max_batch

    def add_to_chunk(work: _Work) -> None:
        n = len(work.input_data) if work.input_data is not None else _file_size(work.source.path)
        chunk, size = open_chunks.get(work.scale, ([], 0))
        if chunk and (len(chunk) >= chunk_limit() or size + n > backend.max_request_bytes):
            submit(chunk)
            chunk, size = [], 0
        chunk.append(work)
        open_chunks[work.scale] = (chunk, size + n)
        if len(chunk) >= chunk_limit():
            submit(chunk)
            del open_chunks[work.scale]

    def plan_upscale(work: _Work) -> None:
        if work.outcome.status == "failed" or work.scale <= 1.0 or cancel.is_set():
            return
        item = item_of(work)
        cparams = backend.cache_params("upscale", params, item)
        key = cache.make_key(item.digest, cparams, backend.identity)
        entry = cache.get(key) if lookup else None
        if entry is not None:
            finish(work, entry, "colorize+upscale" if work.colorize else "upscale", cparams, cached=True)
            work.input_data = None
        else:
            work.key = key
            add_to_chunk(work)

    # Colorize black-and-white images first (one img2img request each), then upscale.
    async def colorize_then_plan(work: _Work) -> None:
        async with sem:
            if cancel.is_set():
                return
            if work.input_data is None:
                work.input_data = await asyncio.to_thread(work.source.path.read_bytes)
                work.input_digest = work.source.digest
            item = item_of(work)
            cparams = backend.cache_params("colorize", params, item)
            key = cache.make_key(item.digest, cparams, backend.identity)
            entry = cache.get(key) if lookup else None
            if entry is None:
                try:
                    data = await backend.colorize(item, params)
                    report.backend_requests += 1
                    entry = await asyncio.to_thread(store_result, key, data, "colorize", cparams,
                                                    item.digest, item.data, item.name)
                    work.outcome.status = "enhanced"
                except (BackendError, imaging.ImageReadError, server_io.ResultCheckError) as exc:
                    if not cancel.is_set():
                        fail(work, getattr(exc, "reason", str(exc)))
                    return
            work.input_data = await asyncio.to_thread(entry.path.read_bytes)
            work.input_digest = imaging.digest_bytes(work.input_data)
            if work.scale <= 1.0:
                finish(work, entry, "colorize", cparams, cached=True)
        plan_upscale(work)

    async def describe(src: Source) -> Source | BaseException:
        async with reading:
            try:
                return await asyncio.to_thread(describe_source, src)
            except (imaging.ImageReadError, OSError) as exc:
                return exc

    def plan(src: Source) -> None:
        assert src.width and src.height and src.digest
        scale = params.scale_for(src.width, src.height)
        wants_color = bool(params.colorize and src.is_grayscale)
        colorize = wants_color and backend.can_colorize
        outcome = Outcome(src.name, "pending", digest=src.digest)
        if wants_color and not backend.can_colorize:
            outcome.warnings.append(COLORIZE_SKIPPED)
        report.outcomes[src.name] = outcome
        if scale <= 1.0 and not colorize:
            outcome.status = "skipped"
            outcome.reason = ("already at the target resolution" if params.target_short_side
                              else "scale factor 1 and nothing to colorize")
            for w in outcome.warnings:
                on_event(ItemWarning(job_id, src.name, w))
            on_event(ItemDone(job_id, src.name, cached=True, detail={"status": "skipped"}))
            return
        done = journaled.get(src.name)
        if done:
            entry = cache.get(done["key"])
            if entry is not None:
                outcome.status, outcome.entry, outcome.kind = "cached", entry, done["kind"]
                outcome.params, outcome.size = done["params"], tuple(done["size"])  # type: ignore[assignment]
                on_event(ItemDone(job_id, src.name, cached=True, detail={"status": "cached"}))
                return
        work = _Work(src, scale, colorize, outcome)
        if colorize:
            color_tasks.append(asyncio.create_task(colorize_then_plan(work)))
        else:
            plan_upscale(work)

    describing = [asyncio.create_task(describe(s)) for s in identified]
    try:
        # Phase 2: measure in parallel, plan in source order; chunks leave as they fill.
        for src, task in zip(identified, describing):
            res = await task
            left[0] -= 1
            if isinstance(res, Source):
                plan(res)
            else:
                reason = getattr(res, "reason", None) or imaging._explain(res)
                report.outcomes[src.name] = Outcome(src.name, "failed", reason, digest=src.digest)
                on_event(ItemFailed(job_id, src.name, reason))
                if journal:
                    journal.mark(src.name, "failed", error=reason)
        # Colorized images join chunks when their colorization is done.
        if color_tasks:
            await asyncio.gather(*color_tasks)
        for chunk, _ in list(open_chunks.values()):
            submit(chunk)
        open_chunks.clear()
        if tasks:
            waiter = asyncio.create_task(cancel.wait())
            gathered = asyncio.gather(*tasks, return_exceptions=True)
            done, _ = await asyncio.wait({gathered, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if waiter in done:
                await backend.interrupt()
                await gathered
            else:
                waiter.cancel()
            for res in gathered.result():
                if isinstance(res, Exception):
                    raise res  # a bug, not a per-image failure: do not hide it
    except asyncio.CancelledError:
        cancel.set()
        for t in [*tasks, *color_tasks, *describing, *poller]:
            t.cancel()
        if journal:
            journal.close("cancelled")
        try:  # Ctrl-C: ask the server to stop the job we left running there
            await asyncio.wait_for(asyncio.shield(backend.interrupt()), timeout=30)
        except (Exception, asyncio.CancelledError):
            pass
        raise

    finally:
        for t in poller:
            t.cancel()

    report.cancelled = cancel.is_set()
    for o in report.outcomes.values():
        if o.status == "pending":
            o.status, o.reason = "skipped", "cancelled before it ran"
    n_failed = len(report.failed)
    status = "cancelled" if report.cancelled else "done"
    if journal:
        journal.close(status)
    report.seconds = time.perf_counter() - started
    on_event(JobFinished(job_id, "enhance", status, len(report.outcomes) - n_failed, n_failed,
                         {s: len(report.by_status(s)) for s in ("enhanced", "cached", "skipped", "failed")}))
    return report


def record_variants(store: Store, report: EnhanceReport, backend_identity: str) -> list[VariantRecord]:
    """Record every enhanced/cached result of ``report`` as a variant in the dataset store."""
    recorded = []
    for o in report.outcomes.values():
        if o.entry is None or o.status not in ("enhanced", "cached"):
            continue
        size = o.size or (None, None)
        v = VariantRecord(relpath=o.name, cache_key=o.entry.key, digest=o.digest or "",
                          kind=o.kind, params=o.params, backend=backend_identity, path=str(o.entry.path),
                          width=size[0] if size else None, height=size[1] if size and len(size) > 1 else None)
        store.add_variant(v)
        recorded.append(v)
    return recorded
