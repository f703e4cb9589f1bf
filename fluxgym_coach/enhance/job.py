"""Batch jobs: plan -> cache lookup -> chunk -> backend -> write -> events, resumable.

:func:`run_enhance` is the one implementation of enhancement that every front
end uses (CLI ``enhance`` and ``prepare``, the TUI, plugins). For each source
image it decides the operations (colorize black-and-white images when asked
and the backend can; upscale when the scale is above 1), looks each result up
in the :class:`~fluxgym_coach.cache.ImageCache`, sends the rest to the
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
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import imaging
from . import server_io
from .backends.base import BackendError, EnhanceBackend, EnhanceItem, EnhanceParams
from .chunks import Chunker
from .results import (COLORIZE_SKIPPED, DESCRIBE_THREADS, EnhanceReport, Outcome, Source, _file_size,
                      describe_source, record_variants)
from ..events import (EventSink, InFlightProgress, ItemDone, ItemFailed, ItemWarning, JobFinished, JobStarted,
                      null_sink)
from ..cache import CacheEntry, ImageCache
from ..jobs import Journal, SourceFacts, job_id_for
from ..statuses import EnhanceStatus, JobStatus
from ..store import Store

__all__ = ["COLORIZE_SKIPPED", "DESCRIBE_THREADS", "EnhanceJob", "EnhanceReport", "Journal", "Outcome",
           "Source", "describe_source", "job_id_for", "record_variants", "run_enhance"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Work:
    source: Source
    scale: float
    colorize: bool
    outcome: Outcome
    input_data: bytes | None = None
    input_digest: str | None = None
    key: str | None = None


class EnhanceJob:
    """One enhancement job: the state and steps behind :func:`run_enhance`.

    Steps, in order: :meth:`identify` (digests, for the job id),
    :meth:`open_journal`, then per source in source order :meth:`plan`
    (skip, resume from the journal, colorize first, or look up the cache) and
    :meth:`chunk` (a :class:`~fluxgym_coach.enhance.chunks.Chunker`); each full chunk
    is :meth:`send`-t under the backend's concurrency; :meth:`poll` reports
    progress inside requests; :meth:`accept` checks, caches and journals each
    result as it arrives (:meth:`journal_done` / :meth:`journal_failed`).
    Arguments are those of :func:`run_enhance`; use :meth:`run` once.
    """

    def __init__(self, sources: Sequence[Source], backend: EnhanceBackend, params: EnhanceParams,
                 cache: ImageCache, *, lookup: bool = True, store: Store | None = None,
                 on_event: EventSink = null_sink, cancel: asyncio.Event | None = None,
                 progress_interval: float = 1.0):
        self.sources, self.backend, self.params, self.cache = list(sources), backend, params, cache
        self.lookup, self.store, self.on_event = lookup, store, on_event
        self.cancel = cancel or asyncio.Event()
        self.progress_interval = progress_interval
        self.reading = asyncio.Semaphore(DESCRIBE_THREADS)
        self.slots = asyncio.Semaphore(max(1, int(backend.concurrency)))
        self.chunks: Chunker[_Work] = Chunker(backend.max_batch, backend.max_request_bytes, self.slots,
                                              int(backend.concurrency) > 1, self.send)
        self.color_tasks: list[asyncio.Task[None]] = []
        self.describing: list[asyncio.Task[Source | BaseException]] = []
        self.poller: asyncio.Task[None] | None = None
        self.stopped: str | None = None  # the reason of a fatal backend error, once one happened
        self.journal: Journal | None = None
        self.journaled: dict[str, dict[str, Any]] = {}
        self.report = EnhanceReport("")
        self.job_id = ""

    # -- identify ------------------------------------------------------------------------
    async def _digest(self, src: Source) -> Source | BaseException:
        if src.digest:
            return src
        async with self.reading:
            try:
                digest = await asyncio.to_thread(imaging.digest_file, src.path)
            except OSError as exc:
                return exc
        return Source(src.name, src.path, digest, src.width, src.height, src.is_grayscale)

    async def identify(self) -> tuple[list[Source], dict[str, str]]:
        """The digest of every source (the job id needs them all): ``(identified,
        {name: failure reason})``. Sources known to ``facts`` skip the read."""
        known = await asyncio.to_thread(self._known_facts)
        todo = [known.get(s.name, s) for s in self.sources]
        identified: list[Source] = []
        failures: dict[str, str] = {}
        for src, res in zip(todo, await asyncio.gather(*(self._digest(s) for s in todo))):
            if isinstance(res, Source):
                identified.append(res)
            else:
                failures[src.name] = imaging._explain(res)
        return identified, failures

    def _known_facts(self) -> dict[str, Source]:
        if self.store is None:
            return {}
        return {s.name: s for s in SourceFacts(self.store).lookup(self.sources)}

    # -- journal -------------------------------------------------------------------------
    def open_journal(self, identified: Sequence[Source], failures: dict[str, str]) -> None:
        """Derive the job id, open (or resume) its journal, send JobStarted, record failures."""
        job_params = self.params.to_dict()
        self.job_id = job_id_for("enhance", job_params, self.backend.identity,
                                 [s.digest or "" for s in identified])
        self.report = EnhanceReport(self.job_id)
        if self.store is not None:
            self.journal = Journal(self.store, self.job_id, "enhance", job_params, len(self.sources))
            self.journaled = self.journal.done_items()
        self.on_event(JobStarted(self.job_id, "enhance", len(self.sources)))
        for src in self.sources:  # outcomes in source order
            self.report.outcomes[src.name] = Outcome(src.name, EnhanceStatus.PENDING)
        for name, reason in failures.items():
            self.report.outcomes[name] = Outcome(name, EnhanceStatus.FAILED, reason)
            self._failed(name, reason)

    def _failed(self, name: str, reason: str) -> None:
        if self.journal:
            self.journal.mark(name, JobStatus.FAILED, error=reason)
        self.on_event(ItemFailed(self.job_id, name, reason))

    def journal_done(self, work: _Work, entry: CacheEntry, kind: str, cparams: dict[str, Any],
                     cached: bool) -> None:
        """Record a finished item: outcome, journal row, warnings and ItemDone."""
        o = work.outcome
        o.status = (EnhanceStatus.CACHED if cached and o.status != EnhanceStatus.ENHANCED
                    else EnhanceStatus.ENHANCED)
        o.entry, o.kind, o.params = entry, kind, cparams
        o.size = tuple(entry.meta.get("size") or ()) or None  # type: ignore[assignment]
        for w in o.warnings:
            self.on_event(ItemWarning(self.job_id, o.name, w))
        if self.journal and o.status == EnhanceStatus.ENHANCED:
            # A cached item needs no row: the same lookup finds it again on resume
            # (and with lookup=False nothing is cached), so a cached re-run writes none.
            self.journal.mark(o.name, JobStatus.DONE, {"key": entry.key, "kind": kind, "params": cparams,
                                               "size": list(o.size or ())})
        self.on_event(ItemDone(self.job_id, o.name, cached=o.status == EnhanceStatus.CACHED,
                               detail={"status": o.status, "kind": kind, "path": str(entry.path)}))

    def journal_failed(self, work: _Work, reason: str) -> None:
        """Record a failed item."""
        work.outcome.status, work.outcome.reason = EnhanceStatus.FAILED, reason
        self._failed(work.outcome.name, reason)

    # -- plan ----------------------------------------------------------------------------
    def item_of(self, work: _Work) -> EnhanceItem:
        """The backend's view of a work item (data is empty until the file is read:
        cache keys need the digest only)."""
        return EnhanceItem(work.source.name, work.input_data or b"",
                           work.input_digest or work.source.digest or "",
                           work.source.width or 0, work.source.height or 0, work.scale)

    def plan(self, src: Source) -> None:
        """Decide what one described source needs and start it (see the class docstring)."""
        assert src.width and src.height and src.digest
        params, backend = self.params, self.backend
        decision = params.decide(src.width, src.height)  # the size rule and its limits, before any read
        scale = decision.scale
        wants_color = bool(params.colorize and src.is_grayscale)
        colorize = wants_color and backend.can_colorize
        outcome = Outcome(src.name, EnhanceStatus.PENDING, digest=src.digest)
        self.report.outcomes[src.name] = outcome
        if decision.refused:  # beyond the resize limits: never read, never sent
            outcome.status, outcome.reason = EnhanceStatus.FAILED, decision.refused
            self._failed(src.name, decision.refused)
            return
        if decision.warning:
            outcome.warnings.append(decision.warning)
        if wants_color and not backend.can_colorize:
            outcome.warnings.append(COLORIZE_SKIPPED)
        if scale <= 1.0 and not colorize:
            outcome.status = EnhanceStatus.SKIPPED
            outcome.reason = decision.kept
            for w in outcome.warnings:
                self.on_event(ItemWarning(self.job_id, src.name, w))
            self.on_event(ItemDone(self.job_id, src.name, cached=True, detail={"status": EnhanceStatus.SKIPPED}))
            return
        if self._resume(src, outcome):
            return
        work = _Work(src, scale, colorize, outcome)
        if colorize:
            self.color_tasks.append(asyncio.create_task(self.colorize_then_plan(work)))
        else:
            self.plan_upscale(work)

    def _resume(self, src: Source, outcome: Outcome) -> bool:
        done = self.journaled.get(src.name)
        entry = self.cache.get(done["key"]) if done else None
        if entry is None:
            return False
        outcome.status, outcome.entry, outcome.kind = EnhanceStatus.CACHED, entry, done["kind"]
        outcome.params, outcome.size = done["params"], tuple(done["size"])  # type: ignore[assignment]
        self.on_event(ItemDone(self.job_id, src.name, cached=True, detail={"status": EnhanceStatus.CACHED}))
        return True

    def plan_upscale(self, work: _Work) -> None:
        """Look the upscale result up in the cache, else put the work into a chunk."""
        if work.outcome.status == EnhanceStatus.FAILED or work.scale <= 1.0 or self.cancel.is_set():
            return
        item = self.item_of(work)
        cparams = self.backend.cache_params("upscale", self.params, item)
        key = self.cache.make_key(item.digest, cparams, self.backend.identity)
        entry = self.cache.get(key) if self.lookup else None
        if entry is not None:
            self.journal_done(work, entry, "colorize+upscale" if work.colorize else "upscale", cparams,
                              cached=True)
            work.input_data = None
        else:
            work.key = key
            self.chunk(work)

    async def colorize_then_plan(self, work: _Work) -> None:
        """Colorize a black-and-white image (one img2img request), then plan its upscale."""
        async with self.slots:
            if self.cancel.is_set():
                return
            if work.input_data is None:
                work.input_data = await asyncio.to_thread(work.source.path.read_bytes)
                work.input_digest = work.source.digest
            item = self.item_of(work)
            cparams = self.backend.cache_params("colorize", self.params, item)
            key = self.cache.make_key(item.digest, cparams, self.backend.identity)
            entry = self.cache.get(key) if self.lookup else None
            if entry is None:
                try:
                    data = await self.backend.colorize(item, self.params)
                    self.report.backend_requests += 1
                    entry = await asyncio.to_thread(self.store_result, key, data, "colorize", cparams, item)
                    work.outcome.status = EnhanceStatus.ENHANCED
                except (BackendError, imaging.ImageReadError, server_io.ResultCheckError) as exc:
                    if not self.cancel.is_set():
                        self.journal_failed(work, getattr(exc, "reason", str(exc)))
                    return
            work.input_data = await asyncio.to_thread(entry.path.read_bytes)
            work.input_digest = imaging.digest_bytes(work.input_data)
            if work.scale <= 1.0:
                self.journal_done(work, entry, "colorize", cparams, cached=True)
        self.plan_upscale(work)

    # -- chunk ---------------------------------------------------------------------------
    def chunk(self, work: _Work) -> None:
        """Put the work into the open chunk of its scale (see :mod:`fluxgym_coach.enhance.chunks`)."""
        n = len(work.input_data) if work.input_data is not None else _file_size(work.source.path)
        self.chunks.add(work.scale, work, n)

    # -- send ----------------------------------------------------------------------------
    def _load(self, chunk: list[_Work]) -> None:
        for w in chunk:
            if w.input_data is None:
                w.input_data = w.source.path.read_bytes()
                w.input_digest = w.source.digest

    async def send(self, chunk: list[_Work], sent: asyncio.Event) -> None:
        """Read the chunk's files, send one request, accept what comes back."""
        if self.poller is None:
            self.poller = asyncio.create_task(self.poll())
        if self.cancel.is_set():
            return
        if self.stopped:  # an earlier request failed in a way every request would: do not send
            for w in chunk:
                self.journal_failed(w, f"not sent: {self.stopped}")
            return
        try:
            await asyncio.to_thread(self._load, chunk)
        except OSError as exc:
            for w in chunk:
                self.journal_failed(w, imaging._explain(exc))
            return
        items = [self.item_of(w) for w in chunk]
        try:
            sent.set()
            results = await self.backend.upscale(items, self.params)
            self.report.backend_requests += 1
        except BackendError as exc:
            if self.cancel.is_set():  # stopped by the user: the items stay pending (resumable)
                return
            if exc.fatal and not self.stopped:
                self.stopped = exc.reason
            for w in chunk:
                self.journal_failed(w, exc.reason)
            return
        if len(results) != len(chunk):  # never map a short batch by position
            for w in chunk:
                self.journal_failed(w, f"backend returned {len(results)} results for {len(chunk)} images")
            return
        for w, item, res in zip(chunk, items, results):
            await self.accept(w, item, res)

    async def accept(self, work: _Work, item: EnhanceItem, res: bytes | BackendError) -> None:
        """Check one result against its source, cache and journal it (or fail it)."""
        try:
            if isinstance(res, BackendError):
                if not (self.cancel.is_set() and res.retryable):
                    self.journal_failed(work, res.reason)
                return
            cparams = self.backend.cache_params("upscale", self.params, item)
            try:
                entry = await asyncio.to_thread(self.store_result, work.key or "", res, "upscale",
                                                cparams, item)
            except imaging.ImageReadError as exc:
                self.journal_failed(work, f"backend returned an unreadable image ({exc.reason})")
                return
            except server_io.ResultCheckError as exc:
                self.journal_failed(work, exc.reason)
                return
            work.outcome.status = EnhanceStatus.ENHANCED
            self.journal_done(work, entry, "colorize+upscale" if work.colorize else "upscale", cparams,
                              cached=False)
        finally:
            work.input_data = None

    def store_result(self, key: str, data: bytes, op: str, cparams: dict[str, Any],
                     item: EnhanceItem) -> CacheEntry:
        """Cache one result once it is known to be this source's picture (not flat,
        same layout: :func:`~fluxgym_coach.enhance.server_io.check_result`). Blocking.
        Raises ResultCheckError or ImageReadError."""
        server_io.check_result(server_io.signature(item.data), data, item.name)
        im = imaging.open_image(data)
        meta = {"op": op, "params": cparams, "backend": self.backend.identity,
                "source_digest": item.digest, "size": [im.width, im.height], "format": im.format}
        return self.cache.put(key, data, imaging.extension_for(im.format or "PNG"), meta)

    # -- poll ----------------------------------------------------------------------------
    async def poll(self) -> None:
        """Every ``progress_interval`` s while requests are in flight, ask the backend
        how many of their images are done and send InFlightProgress when it changes.
        Stops for good when the backend cannot tell (None) or the poll fails."""
        # At most once a second by default: a poll can cost the server a
        # live-preview decode (sdapi.md §6).
        last = 0.0
        while True:
            await asyncio.sleep(self.progress_interval)
            if not self.chunks.busy():
                continue
            try:
                items = await self.backend.progress_in_flight()
            except Exception:  # noqa: BLE001 - progress is cosmetic: never stop a job for it
                log.warning("progress from %r stopped (the job goes on)", self.backend, exc_info=True)
                return
            if items is None:
                return
            if float(items) != last:
                last = float(items)
                self.on_event(InFlightProgress(self.job_id, last))

    # -- the whole job ---------------------------------------------------------------------
    async def _describe(self, src: Source) -> Source | BaseException:
        if src.digest and src.width and src.height and src.is_grayscale is not None:
            return src  # known (dataset store or remembered facts): no thread, no read
        async with self.reading:
            try:
                return await asyncio.to_thread(describe_source, src)
            except (imaging.ImageReadError, OSError) as exc:
                return exc

    async def plan_all(self, identified: Sequence[Source]) -> None:
        """Describe in parallel, plan in source order; chunks leave as they fill."""
        self.chunks.left = len(identified)
        self.describing = [asyncio.create_task(self._describe(s)) for s in identified]
        described: list[Source] = []
        for src, task in zip(identified, self.describing):
            res = await task
            self.chunks.left -= 1
            if isinstance(res, Source):
                if res is not src:  # measured now (not known before): remember it
                    described.append(res)
                self.plan(res)
            else:
                reason = getattr(res, "reason", None) or imaging._explain(res)
                self.report.outcomes[src.name] = Outcome(src.name, EnhanceStatus.FAILED, reason, digest=src.digest)
                self._failed(src.name, reason)
        if self.store is not None and described:
            await asyncio.to_thread(SourceFacts(self.store).remember, described)
        if self.color_tasks:  # colorized images join chunks when their colorization is done
            await asyncio.gather(*self.color_tasks)
        self.chunks.flush()

    async def wait_sent(self) -> None:
        """Wait for every chunk; on ``cancel``, interrupt the backend, then wait."""
        if not self.chunks.tasks:
            return
        waiter = asyncio.create_task(self.cancel.wait())
        gathered = asyncio.gather(*self.chunks.tasks, return_exceptions=True)
        done, _ = await asyncio.wait({gathered, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            await self.backend.interrupt()
            await gathered
        else:
            waiter.cancel()
        for res in gathered.result():
            if isinstance(res, Exception):
                raise res  # a bug, not a per-image failure: do not hide it

    async def abort(self) -> None:
        """Ctrl-C (task cancelled): stop everything, leave the job resumable, and ask
        the server to stop the job we left running there."""
        self.cancel.set()
        for t in [*self.chunks.tasks, *self.color_tasks, *self.describing,
                  *([self.poller] if self.poller else [])]:
            t.cancel()
        if self.journal:
            self.journal.close(JobStatus.CANCELLED)
        try:
            await asyncio.wait_for(asyncio.shield(self.backend.interrupt()), timeout=30)
        except (Exception, asyncio.CancelledError):
            pass

    def close(self, started: float) -> EnhanceReport:
        """Close the journal, send JobFinished and return the report."""
        report = self.report
        report.cancelled = self.cancel.is_set()
        for o in report.outcomes.values():
            if o.status == EnhanceStatus.PENDING:
                o.status, o.reason = EnhanceStatus.SKIPPED, "cancelled before it ran"
        n_failed = len(report.failed)
        status = JobStatus.CANCELLED if report.cancelled else JobStatus.DONE
        if self.journal:
            self.journal.close(status)
        report.seconds = time.perf_counter() - started
        self.on_event(JobFinished(self.job_id, "enhance", status, len(report.outcomes) - n_failed,
                                  n_failed, {s: len(report.by_status(s))
                                             for s in (EnhanceStatus.ENHANCED, EnhanceStatus.CACHED,
                                                       EnhanceStatus.SKIPPED, EnhanceStatus.FAILED)}))
        return report

    async def run(self) -> EnhanceReport:
        """Run the job to its end (see :func:`run_enhance`)."""
        started = time.perf_counter()
        await self.backend.check(self.params)
        identified, failures = await self.identify()
        self.open_journal(identified, failures)
        try:
            await self.plan_all(identified)
            await self.wait_sent()
        except asyncio.CancelledError:
            await self.abort()
            raise
        finally:
            if self.poller is not None:
                self.poller.cancel()
        return self.close(started)


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
    """Enhance ``sources`` with ``backend`` (see the module docstring and :class:`EnhanceJob`).

    ``lookup=False`` recomputes results even when cached (``--force-reprocess``
    and ``--no-cache``). With a ``store``, the job is journaled there and
    resumes, and the facts measured of each file (digest, size, grayscale) are
    kept by path, size and mtime so a re-run does not read unchanged files.
    Setting ``cancel`` stops after the chunks in flight (the backend is asked
    to interrupt) and returns a report with ``cancelled=True``. Never raises
    for a single image: failures are outcomes. Raises BackendError when the
    backend's pre-flight :meth:`check` fails.

    Work is streamed: sources are measured by a few threads and, in source
    order, each one goes to the cache lookup and into a chunk as soon as it
    is known, so the first request leaves before the last image is measured.

    While requests are in flight, the backend's ``progress_in_flight()`` is
    asked every ``progress_interval`` seconds how many of their images it has
    finished (None: it cannot tell, and is not asked again), and the answer
    goes out as :class:`~fluxgym_coach.events.InFlightProgress` (progress bars
    move within a long batch, not only when it returns).
    """
    job = EnhanceJob(sources, backend, params, cache, lookup=lookup, store=store, on_event=on_event,
                     cancel=cancel, progress_interval=progress_interval)
    return await job.run()
