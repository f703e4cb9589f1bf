"""The caption job's steps: :class:`CaptionJob`, behind :func:`fluxgym_coach.captions.job.run_caption`.

See :mod:`fluxgym_coach.captions.job` for the rules (modes, cache, resume).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import text as caption_rules
from .backends.base import CaptionBackend, CaptionBackendError, CaptionRequest, CaptionResult, folder_concept
from .job import (MODES, CaptionOutcome, CaptionReport, _record_result, _status_from_history, backend_settings,
                  proposals)
from ..dataset import Dataset
from ..events import EventSink, ItemDone, ItemFailed, ItemWarning, JobFinished, JobStarted
from ..cache import ImageCache
from ..jobs import Journal, job_id_for
from ..statuses import CaptionOrigin, CaptionStatus, JobStatus


@dataclass(slots=True)
class _Work:
    request: CaptionRequest
    previous: str | None
    outcome: CaptionOutcome


class CaptionJob:
    """One caption job: the state and steps behind :func:`run_caption`.

    :meth:`identify` (the images and their digests, for the job id),
    :meth:`open_journal`, :meth:`plan` (per image: fail, resume, skip, or a
    request), then :meth:`send` for each request: the cache is looked up and
    the backend's ``prepare`` (e.g. the image encoding) runs for up to
    ``concurrency`` images beyond the ``concurrency`` requests in flight, so
    the next request is ready when a slot frees; :meth:`journal_done` /
    :meth:`journal_failed`. Arguments are those of :func:`run_caption`; use
    :meth:`run` once.
    """

    def __init__(self, dataset: Dataset, backend: CaptionBackend, relpaths: Sequence[str] | None,
                 *, mode: str, trigger: str | None, cache: ImageCache | None, on_event: EventSink,
                 cancel: asyncio.Event | None):
        if mode not in MODES:
            raise ValueError(f"unknown caption mode {mode!r}: use one of {', '.join(MODES)}")
        self.dataset, self.backend, self.relpaths, self.mode = dataset, backend, relpaths, mode
        self.trigger = (trigger or "").strip() or None
        self.cache = cache or ImageCache()
        self.on_event = on_event
        self.cancel = cancel or asyncio.Event()
        self.stop = asyncio.Event()
        self.report = CaptionReport("", backend.name, mode)
        self.job_id = ""
        self.journal: Journal | None = None
        self.journaled: dict[str, dict[str, Any]] = {}

    # -- identify / journal --------------------------------------------------------------
    def identify(self) -> tuple[dict[str, Any], list[str]]:
        """``(records by relpath, wanted relpaths)``: the images asked for (default:
        every readable image of the store)."""
        records = {r.relpath: r for r in self.dataset.images()}
        wanted = (list(dict.fromkeys(self.relpaths)) if self.relpaths is not None
                  else [r for r, rec in records.items() if not rec.error])
        return records, wanted

    def open_journal(self, records: dict[str, Any], wanted: list[str]) -> None:
        """Derive the job id from mode, trigger, settings and digests; open its journal."""
        digests = [records[r].digest or "" for r in wanted if r in records]
        job_params = {"mode": self.mode, "trigger": self.trigger, "settings": backend_settings(self.backend)}
        self.job_id = job_id_for("caption", job_params, self.backend.identity, digests)
        self.report = CaptionReport(self.job_id, self.backend.name, self.mode)
        self.journal = Journal(self.dataset.store, self.job_id, "caption", job_params, len(wanted))
        self.report.resumed = self.journal.resumed
        self.journaled = self.journal.done_items()
        self.on_event(JobStarted(self.job_id, "caption", len(wanted)))

    def journal_failed(self, outcome: CaptionOutcome, reason: str) -> None:
        """Record a failed image."""
        outcome.status, outcome.reason = CaptionStatus.FAILED, reason
        assert self.journal is not None
        self.journal.mark(outcome.relpath, JobStatus.FAILED, error=reason)
        self.on_event(ItemFailed(self.job_id, outcome.relpath, reason))

    def journal_done(self, outcome: CaptionOutcome, status: str, reason: str = "") -> None:
        """Send the events of a finished image (the journal row is written by the caller)."""
        outcome.status, outcome.reason = status, reason
        for w in outcome.warnings:
            self.on_event(ItemWarning(self.job_id, outcome.relpath, w))
        self.on_event(ItemDone(self.job_id, outcome.relpath, cached=status not in (CaptionStatus.CAPTIONED,),
                               detail={"status": status, "text": outcome.text, "draft": outcome.draft,
                                       "reason": reason}))

    # -- plan ----------------------------------------------------------------------------
    def plan(self, rel: str, rec: Any) -> _Work | None:
        """What to do with one image: None when it is settled here (failed, resumed,
        skipped), else the request to send."""
        outcome = CaptionOutcome(rel, CaptionStatus.PENDING)
        self.report.outcomes[rel] = outcome
        if rec is None:
            self.journal_failed(outcome, "not in the dataset store: run `fluxgym-coach scan` first")
            return None
        if rec.error or not rec.digest:
            self.journal_failed(outcome, rec.error or "image could not be read")
            return None
        if rel in self.journaled:
            outcome.text = self.journaled[rel].get("text", "")
            outcome.draft = bool(self.journaled[rel].get("draft"))
            self.journal_done(outcome, CaptionStatus.RESUMED, "done in an earlier run of this job")
            return None
        current = self.dataset.read_caption(rel)
        previous = current.text if current is not None else None
        outcome.previous = previous
        has_text = previous is not None and bool(previous.strip())
        if has_text and self.mode == "only-missing":
            self.journal_done(outcome, CaptionStatus.SKIPPED,
                              "has a caption (use --refresh or --overwrite to replace it)")
            return None
        if has_text and self.mode == "refresh" and \
                _status_from_history(self.dataset.store, rel, previous or "") == CaptionOrigin.EDITED:
            self.journal_done(outcome, CaptionStatus.SKIPPED, "caption written or edited by the user (use --overwrite)")
            return None
        size = rec.display_size or (None, None)
        request = CaptionRequest(relpath=rel, path=self.dataset.image_path(rel), digest=rec.digest,
                                 trigger=self.trigger, tags=self._known_tags(rel, previous, has_text),
                                 folder=folder_concept(rel, self.dataset.root.name),
                                 is_grayscale=rec.is_grayscale, width=size[0], height=size[1])
        return _Work(request, previous, outcome)

    def _known_tags(self, rel: str, previous: str | None, has_text: bool) -> list[str]:
        """Tags for the prompt's ``{tags}``: the current caption's, else another backend's proposal."""
        tags = caption_rules.split_tags(previous or "") if has_text else []
        if self.trigger:
            tags = [t for t in tags if t != self.trigger]
        if not tags:
            for prop in proposals(self.dataset.store, rel):
                if prop["tags"] and prop["backend"] != self.backend.name:
                    return list(prop["tags"])
        return tags

    # -- send ----------------------------------------------------------------------------
    def _fatal(self, exc: CaptionBackendError) -> str:
        if exc.fatal:
            if self.report.fatal is None:
                self.report.fatal = exc.reason
            self.stop.set()
        return exc.reason

    async def _result(self, req: CaptionRequest, requests: asyncio.Semaphore,
                      turn: tuple[asyncio.Event | None, asyncio.Event]) -> tuple[CaptionResult, bool] | str | None:
        """The cached result, or the backend's (cached now): ``(result, from_cache)``,
        the failure reason, or None when the job stopped before the request.
        The request waits for one of ``requests``, in plan order (``turn``: the previous
        image's event, set once it took its slot, and this one's); the preparation does not."""
        before, mine = turn
        params = {"captioner": self.backend.cache_params(req)}
        key = self.cache.make_key(req.digest, params, self.backend.identity)
        entry = await asyncio.to_thread(self.cache.get, key)
        if entry is not None:
            raw = await asyncio.to_thread(entry.path.read_bytes)
            return CaptionResult.from_dict(json.loads(raw)), True
        try:
            req.prepared = await self.backend.prepare(req)
            if before is not None:
                await before.wait()
            async with requests:
                mine.set()
                if self.cancel.is_set() or self.stop.is_set():
                    return None
                result = await self.backend.caption(req)
        except CaptionBackendError as exc:
            self.report.backend_requests += 1
            return self._fatal(exc)
        finally:
            req.prepared = None
        self.report.backend_requests += 1
        if not result.text.strip() and not result.tags:
            return f"{self.backend.name} returned an empty caption"
        meta = {"op": "caption", "backend": self.backend.identity, "source_digest": req.digest}
        await asyncio.to_thread(self.cache.put, key, json.dumps(result.to_dict()).encode(), ".json", meta)
        return result, False

    async def send(self, work: _Work, requests: asyncio.Semaphore,
                   turn: tuple[asyncio.Event | None, asyncio.Event]) -> None:
        """Caption one image and write its sidecar (unless it changed meanwhile)."""
        outcome, req = work.outcome, work.request
        got = await self._result(req, requests, turn)
        if got is None:
            return
        if isinstance(got, str):
            self.journal_failed(outcome, got)
            return
        result, from_cache = got
        text = result.text or caption_rules.join_tags(result.tags)
        final = caption_rules.apply_trigger(text, self.trigger) if self.mode != "propose" else text
        outcome.text, outcome.draft, outcome.tags = final, result.draft, list(result.tags)
        outcome.warnings = list(result.warnings)
        await asyncio.to_thread(_record_result, self.dataset.store, req.relpath, self.backend,
                                req.digest, result)
        assert self.journal is not None
        if self.mode != "propose":
            now = await asyncio.to_thread(self.dataset.read_caption, req.relpath)
            now_text = now.text if now is not None else None
            if now_text != work.previous:
                self.journal_done(outcome, CaptionStatus.SKIPPED, "caption changed while captioning; the newer "
                                                      "text was kept")
                self.journal.mark(req.relpath, JobStatus.DONE, {"text": now_text or "", "draft": False})
                return
            await asyncio.to_thread(self.dataset.write_caption, req.relpath, final,
                                    f"caption:{self.backend.name}")
        self.journal.mark(req.relpath, JobStatus.DONE, {"text": final, "draft": result.draft})
        self.journal_done(outcome, CaptionStatus.CACHED if from_cache else CaptionStatus.CAPTIONED)

    async def send_all(self, works: list[_Work]) -> None:
        """Send every request: ``concurrency`` in flight, as many more prepared."""
        n = max(1, int(self.backend.concurrency))
        requests, started = asyncio.Semaphore(n), asyncio.Semaphore(2 * n)

        turns = [asyncio.Event() for _ in works]  # requests leave in plan order

        async def one(i: int, work: _Work) -> None:
            turn = (turns[i - 1] if i else None, turns[i])
            try:
                async with started:
                    if self.cancel.is_set() or self.stop.is_set():
                        return
                    await self.send(work, requests, turn)
            finally:
                turns[i].set()  # a cached, failed or skipped image never holds the next one

        tasks = [asyncio.create_task(one(i, w)) for i, w in enumerate(works)]
        try:
            if tasks:
                await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            self.cancel.set()
            for t in tasks:
                t.cancel()
            assert self.journal is not None
            self.journal.close(JobStatus.CANCELLED)
            raise

    def close(self, started: float) -> CaptionReport:
        """Settle what never ran, close the journal, send JobFinished."""
        report = self.report
        report.cancelled = self.cancel.is_set()
        for o in report.outcomes.values():
            if o.status == CaptionStatus.PENDING:
                o.status = CaptionStatus.SKIPPED
                o.reason = (f"not run: {report.fatal}" if report.fatal else "cancelled before it ran")
        n_failed = len(report.failed)
        status = (JobStatus.CANCELLED if report.cancelled else JobStatus.FAILED if report.fatal
                  else JobStatus.DONE)
        assert self.journal is not None
        self.journal.close(status)
        report.seconds = time.perf_counter() - started
        self.on_event(JobFinished(self.job_id, "caption", status, len(report.outcomes) - n_failed,
                                  n_failed, report.counts()))
        return report

    async def run(self) -> CaptionReport:
        """Run the job to its end (see :func:`run_caption`)."""
        started = time.perf_counter()
        self.dataset.store.ensure_schema("captions")
        records, wanted = self.identify()
        await self.backend.check()
        self.open_journal(records, wanted)
        works = [w for w in (self.plan(rel, records.get(rel)) for rel in wanted) if w is not None]
        await self.send_all(works)
        return self.close(started)
