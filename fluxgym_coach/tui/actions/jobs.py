"""The jobs panel: a row per running job, the problems log (``l``), the one
notification of a finished job, and cancelling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from textual.worker import Worker, WorkerState, get_current_worker

from ...statuses import JobStatus
from ..jobs import JobSink
from ..messages import JobUpdated
from ..model import plural
from ..screens.problems import Problem, ProblemsScreen
from ..widgets.jobs_panel import JobsPanel

T = TypeVar("T")
MAX_PROBLEMS = 10_000  # problems kept in the log (the oldest leave first)


class JobActions:
    """Job rows, problems, cancelling."""

    def _new_job(self, kind: str, label: str, total: int) -> JobSink:
        key = f"{kind}{next(self._job_ids)}"
        sink = JobSink(self, key, kind, label, total)
        self._sinks[key] = sink
        self.query_one(JobsPanel).update_job(sink.progress)
        return sink

    def on_job_updated(self, msg: JobUpdated) -> None:
        """Progress of a job: its row moves; problems go to the problems log (``l``);
        one notification per job outcome, naming the first problem and the count."""
        found = self.query(JobsPanel)
        if not found:  # the app is closing: its widgets are gone, a worker's last word is not
            return
        panel = found.first(JobsPanel)
        p = msg.progress
        panel.update_job(p)
        problems = [Problem(p.label, item, reason, bad) for item, reason, bad in msg.problems]
        self.problem_log.extend(problems)
        del self.problem_log[:-MAX_PROBLEMS]
        self._job_problems.setdefault(p.key, []).extend(problems)
        if p.status in (JobStatus.RUNNING, JobStatus.CANCELLING):
            return
        self._sinks.pop(p.key, None)
        self.set_timer(4, partial(panel.remove_job, p.key))
        self._notify_outcome(p, self._job_problems.pop(p.key, []))

    def _notify_outcome(self, p: Any, problems: list[Problem]) -> None:
        """The one notification of a finished job (none for a clean success)."""
        if not problems and p.status != JobStatus.FAILED:
            return
        failures = [x for x in problems if x.failure]
        first = (failures or problems)[0] if problems else None
        counts = []
        if failures:
            counts.append(f"{len(failures)} failed")
        if len(problems) > len(failures):
            counts.append(plural(len(problems) - len(failures), "warning"))
        text = f"{first.item}: {first.reason}" if first else p.status
        if len(problems) > 1:
            text += f"\n{', '.join(counts)}: l lists them"
        job_failed = p.status == JobStatus.FAILED
        self.notify(text, title=f"{p.label} failed" if job_failed else f"{p.label} {p.status}: "
                    + ", ".join(counts), severity="error" if failures and p.kind != "scan"
                    or job_failed else "warning", timeout=10)

    def action_problems(self) -> None:
        """Show the problems log (every image a job failed on or warned about)."""
        self.push_screen(ProblemsScreen(list(self.problem_log)))

    def running_jobs(self) -> list[str]:
        """Keys of the jobs still running (plugin actions included)."""
        keys = [k for k, s in self._sinks.items() if s.progress.status in (JobStatus.RUNNING, JobStatus.CANCELLING)]
        keys += [w.name or "plugin action" for w in self.workers
                 if w.group == "plugin-actions" and w.is_running]
        return keys

    def cancel_job(self, key: str) -> None:
        """Ask a running job to stop: Textual's ``Worker.cancel()`` for every job.

        The core turns the cancellation into its own stop: an enhance or caption job
        (:meth:`run_cancellable`) stops after the items in flight and returns its report;
        a blocking stage (scan, audit, export, bulk edit) runs in a thread through
        :func:`core.run_blocking`, whose cancel token the cancellation sets: it stops at
        its next image, keeping what it stored, and the worker ends cancelled."""
        sink = self._sinks.get(key)
        if sink is None:
            return
        sink.cancel_requested = True
        sink.progress.status = JobStatus.CANCELLING
        self.query_one(JobsPanel).update_job(sink.progress)
        if sink.worker is not None:
            sink.worker.cancel()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A job's worker that ended without saying how (cancelled before it ran, or an
        error it did not catch) ends its row: cancelled or failed."""
        if event.state not in (WorkerState.CANCELLED, WorkerState.ERROR):
            return
        for sink in list(self._sinks.values()):
            if sink.worker is event.worker and sink.progress.status in (JobStatus.RUNNING, JobStatus.CANCELLING):
                if event.state == WorkerState.CANCELLED:
                    sink.finish(JobStatus.CANCELLED)
                else:
                    sink.fail(f"{sink.progress.label} stopped: {event.worker.error}")

    async def run_cancellable(self, sink: JobSink, job: Callable[[asyncio.Event], Awaitable[T]]) -> T:
        """Run the core job ``job(cancel)`` in the current async worker, recorded as ``sink``'s.

        ``Worker.cancel()`` cancels the worker's task; the job itself runs in its own
        task, shielded, so the cancellation sets the core's ``cancel`` event instead of
        cutting the job short: it stops after the items in flight, records what
        finished and returns its report (``cancelled=True``). A second cancellation
        (the app closing) reaches the job, which the core leaves resumable."""
        sink.worker = get_current_worker()
        cancel = asyncio.Event()
        if sink.cancel_requested:  # cancelled before the worker ran
            cancel.set()
        task = asyncio.ensure_future(job(cancel))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            cancel.set()
            try:
                return await task
            except asyncio.CancelledError:  # cancelled again: the core left the job resumable
                sink.finish(JobStatus.CANCELLED)
                raise

    def action_cancel_job(self) -> None:
        """Cancel the newest running job."""
        running = self.running_jobs()
        if not running:
            self.notify("no job is running", timeout=2)
            return
        self.cancel_job(running[-1])
        self.notify(f"cancelling {running[-1]}", timeout=2)
