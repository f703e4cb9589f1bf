"""From core events to throttled UI messages.

The core calls an :data:`~fluxgym_coach.events.EventSink` from whatever thread
does the work. :class:`JobSink` counts the events and posts a
:class:`JobUpdated` message to the app at most every ``interval`` seconds
(plus once at the start and once at the end), carrying the failures seen
since the last message, so 10,000 items cost a handful of UI updates.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..statuses import JobStatus
from ..events import (Event, InFlightProgress, ItemDone, ItemFailed, ItemsFound, ItemsStored, ItemWarning,
                      JobFinished, JobStarted)
from .messages import JobSummary, JobUpdated, RowsFound, RowsStored
from .widgets.jobs_panel import JobProgress, summary_text


class JobSink:
    """A thread-safe event sink for one job that posts throttled :class:`JobUpdated`; a
    scan's found and stored images as :class:`RowsFound` / :class:`RowsStored`, and an ended
    job's summary as :class:`JobSummary`."""

    def __init__(self, app: Any, key: str, kind: str, label: str, total: int = 0,
                 interval: float = 0.25) -> None:
        self.app = app
        self.progress = JobProgress(key, kind, label, total)
        self.interval = interval
        self.failures: dict[str, str] = {}
        self._problems: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last = 0.0
        #: Set when the user asked the job to stop (``c``, the palette, quitting).
        self.cancel_requested = False
        #: The Textual worker running the job (set when it starts): cancelling the job is
        #: ``worker.cancel()``; the core turns that into its cancel token or event.
        self.worker: Any = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, ItemsFound):  # a scan lists what it found before reading it
            self.app.post_message(RowsFound(dict(event.items)))
        elif isinstance(event, ItemsStored):
            self.app.post_message(RowsStored(list(event.items)))
        with self._lock:
            p = self.progress
            force = False
            if isinstance(event, JobStarted):
                p.total = event.total  # the core knows how much there is to do
                force = True
            elif isinstance(event, ItemDone):
                p.done += 1
                p.in_flight = max(0.0, p.in_flight - 1)  # it was part of the in-flight work
            elif isinstance(event, InFlightProgress):
                p.in_flight = event.items
            elif isinstance(event, ItemFailed):
                p.failed += 1
                p.in_flight = max(0.0, p.in_flight - 1)
                self.failures[event.item] = event.reason
                self._problems.append((event.item, event.reason, True))
            elif isinstance(event, ItemWarning):
                self._problems.append((event.item, event.reason, False))
            elif isinstance(event, JobFinished):
                p.status = event.status
                force = True
            self._maybe_post(force)
        if isinstance(event, JobFinished) and (text := summary_text(event.kind, event.summary)):
            self.app.post_message(JobSummary(self.progress.key, text))  # what the job did, for its row

    def finish(self, status: str) -> None:
        """Mark the job ended (when the core emitted no JobFinished) and post it."""
        with self._lock:
            if self.progress.status in (JobStatus.RUNNING, JobStatus.CANCELLING):
                self.progress.status = status
            self._maybe_post(True)

    def warn(self, item: str, reason: str) -> None:
        """A note about the whole job (e.g. the server renamed the upscaler)."""
        with self._lock:
            self._problems.append((item, reason, False))

    def fail(self, reason: str) -> None:
        """The whole job failed before or while running (e.g. the server is unreachable)."""
        with self._lock:
            self._problems.append((self.progress.label, reason, True))
            self.progress.status = JobStatus.FAILED
            self._maybe_post(True)

    def _maybe_post(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        p = self.progress
        elapsed = max(1e-6, now - self._started)
        n = p.done + p.failed
        p.rate = n / elapsed if n else None
        p.eta = (p.total - n) / p.rate if p.rate and p.total >= n else None
        snapshot = JobProgress(p.key, p.kind, p.label, p.total, p.done, p.failed, p.rate, p.eta,
                               p.status, p.in_flight)
        problems, self._problems = self._problems, []
        self.app.post_message(JobUpdated(snapshot, problems))


__all__ = ["JobSink", "JobUpdated"]
