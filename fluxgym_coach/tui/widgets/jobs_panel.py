"""The jobs panel: one progress row per background job (count, rate, ETA, cancel).

Rows are updated from throttled :class:`JobProgress` snapshots (a few per
second at most), never per item, and nothing animates while idle: the bar
always has a total, and the ETA is text computed when a snapshot arrives.

One rule for every row: a job that ended (done, failed, cancelled) stays
:data:`LINGER` seconds so its outcome can be read, then leaves. The plugins'
background tasks (:class:`fluxgym_coach.plugins.tasks.TaskQueue`, e.g. the
similarity index) get rows here too (:meth:`JobsPanel.follow`), under the
same rule: a task key whose tasks all finished ends like a job.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Label, ProgressBar

from ...statuses import JobStatus

#: Seconds a finished job's row stays before it leaves the panel.
LINGER = 4.0
#: Statuses of a job that ended.
ENDED = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})

JOB_LABELS = {"scan": "Scan", "enhance": "Enhance", "export": "Export", "caption": "Caption",
              "bulk": "Bulk edit", "audit": "Audit"}


@dataclass(slots=True)
class JobProgress:
    """A snapshot of one job: ``key`` (the TUI's id), ``kind``, ``label``, counts,
    items per second and seconds left (None when unknown), and ``status``
    (``"running"``, ``"done"``, ``"failed"``, ``"cancelled"``, ``"cancelling"``)."""

    key: str
    kind: str
    label: str
    total: int
    done: int = 0
    failed: int = 0
    rate: float | None = None
    eta: float | None = None
    status: str = JobStatus.RUNNING
    in_flight: float = 0.0  # items' worth done inside running requests (InFlightProgress)
    summary: str = ""  # what an ended job says instead of its status ("6 unchanged")


def summary_text(kind: str, summary: dict[str, Any]) -> str:
    """One line from a job's :class:`~fluxgym_coach.events.JobFinished` summary
    (``"done: 2 added, 6 unchanged"``), or ``""`` when it holds no count."""
    labels = {"added": "added", "updated": "updated", "removed": "removed",
              "unchanged": "unchanged", "flagged": "flagged", "measured": "measured",
              "changed": "changed", "groups": "duplicate groups"}
    parts = [f"{summary[k]} {label}" for k, label in labels.items()
             if isinstance(summary.get(k), int) and summary[k]]
    return "done: " + ", ".join(parts) if parts else ""


def task_progress(state: Any) -> JobProgress:
    """A plugin task key's :class:`~fluxgym_coach.plugins.tasks.TaskState` as a job
    row: running while tasks remain, ended (done) when all finished."""
    failed = int(state.failed)
    return JobProgress(f"plugin-{state.key}", "plugin", str(state.name), int(state.total),
                       max(0, int(state.done) - failed), failed,
                       status=JobStatus.RUNNING if state.remain > 0 else JobStatus.DONE)


def _eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds + 0.5)
    if seconds >= 3600:
        return f"eta {seconds // 3600}h{seconds % 3600 // 60:02d}"
    return f"eta {seconds // 60}:{seconds % 60:02d}"


def progress_text(p: JobProgress) -> str:
    """``12/40 3 failed 4.2/s eta 0:07`` style summary of a snapshot; a job with
    nothing counted yet says ``starting`` (running) or ``nothing to do`` (ended),
    never ``0/0``."""
    n, total = p.done + p.failed, max(p.total, p.done + p.failed)
    if total == 0:
        return "starting  c cancels" if p.status == JobStatus.RUNNING else (
            (p.summary or "nothing to do") if p.status == JobStatus.DONE else p.status)
    parts = [f"{n}/{total}"]
    if p.failed:
        parts.append(f"{p.failed} failed")
    if p.status == JobStatus.RUNNING:
        if p.rate:
            parts.append(f"{p.rate:.1f}/s")
        eta = _eta_text(p.eta)
        if eta:
            parts.append(eta)
        parts.append("c cancels")
    else:
        parts.append(p.summary or p.status)
    return "  ".join(parts)


class JobRow(Horizontal):
    """One job: label, bar, counts."""

    DEFAULT_CSS = """
    JobRow { height: 1; }
    JobRow > .job-label { width: 12; }
    JobRow > ProgressBar { width: 30; }
    JobRow > ProgressBar Bar { width: 20; }
    JobRow > .job-text { width: 1fr; color: $text-muted; }
    """

    def __init__(self, p: JobProgress) -> None:
        super().__init__(id="job-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in p.key))
        self.progress = p

    def compose(self) -> ComposeResult:
        yield Label(self.progress.label[:11], classes="job-label", markup=False)
        yield ProgressBar(total=max(1, self.progress.total), show_eta=False, show_percentage=True)
        yield Label(progress_text(self.progress), classes="job-text")

    def on_mount(self) -> None:
        self.update_progress(self.progress)  # the bar's position: snapshots may have come first

    def update_progress(self, p: JobProgress) -> None:
        """Show a new snapshot (kept for :meth:`compose` when the row is not composed yet:
        a row mounted a moment ago may get its next snapshot before its children exist)."""
        self.progress = p
        bars = self.query(ProgressBar)
        texts = self.query(".job-text")
        if not bars or not texts:
            return
        bar = bars.first(ProgressBar)
        total = max(1, p.total, p.done + p.failed)
        # A job that ended "done" with less to do than announced (cached, unchanged) is full.
        bar.update(total=total, progress=total if p.status == JobStatus.DONE else
                   min(total, p.done + p.failed + p.in_flight))
        texts.first(Label).update(progress_text(p))


class JobsPanel(Vertical):
    """All background jobs; hidden when there are none."""

    DEFAULT_CSS = """
    JobsPanel { height: auto; max-height: 5; display: none; border-top: solid $primary-darken-2; }
    JobsPanel.busy { display: block; }
    """

    class TaskUpdated(Message):
        """A plugin task key's progress changed (posted from the queue's thread)."""

        def __init__(self, state: Any) -> None:
            super().__init__()
            self.state = state

    def __init__(self, *, id: str | None = None, linger: float = LINGER) -> None:
        super().__init__(id=id)
        self.jobs: dict[str, JobProgress] = {}
        self.linger = linger
        self._leaving: dict[str, Timer] = {}

    def update_job(self, p: JobProgress) -> None:
        """Add or update the row of a job; an ended job's row leaves after :attr:`linger` s.
        A summary set earlier (:meth:`set_summary`) is kept when the snapshot has none."""
        old = self.jobs.get(p.key)
        if old is not None and old.summary and not p.summary:
            p.summary = old.summary
        self.jobs[p.key] = p
        self.set_class(True, "busy")
        rows = [r for r in self.query(JobRow) if r.progress.key == p.key]
        if rows:
            rows[0].update_progress(p)
        else:
            self.mount(JobRow(p))
            self.refresh(layout=True)
        timer = self._leaving.pop(p.key, None)
        if timer is not None:  # it runs again (a plugin key got new tasks)
            timer.stop()
        if p.status in ENDED:
            self._leaving[p.key] = self.set_timer(self.linger, partial(self.remove_job, p.key))

    def follow(self, queue: Any) -> None:
        """Show the tasks of a plugin :class:`~fluxgym_coach.plugins.tasks.TaskQueue`:
        one row per task key, updated from any thread, ended when its tasks are."""
        from dataclasses import replace

        for state in list(queue.states.values()):
            self.post_message(self.TaskUpdated(replace(state)))
        queue.on_update(lambda s: self.post_message(self.TaskUpdated(replace(s))))

    def on_jobs_panel_task_updated(self, message: "JobsPanel.TaskUpdated") -> None:
        p = task_progress(message.state)
        known = self.jobs.get(p.key)
        if p.status in ENDED and (known is None or known.status in ENDED):
            return  # an old key seen again while following: nothing new to show
        self.update_job(p)

    def set_summary(self, key: str, text: str) -> None:
        """Show what an ended job did (its row says ``text`` instead of its status)."""
        p = self.jobs.get(key)
        if p is None:
            return
        p.summary = text
        for r in self.query(JobRow):
            if r.progress.key == key:
                r.progress.summary = text
                r.update_progress(r.progress)

    def remove_job(self, key: str) -> None:
        """Remove the row of a finished job."""
        self._leaving.pop(key, None)
        self.jobs.pop(key, None)
        for r in self.query(JobRow):
            if r.progress.key == key:
                r.remove()
        self.set_class(bool(self.jobs), "busy")
        self.refresh(layout=True)

    def running(self) -> list[JobProgress]:
        """Jobs still running, oldest first."""
        return [p for p in self.jobs.values() if p.status in (JobStatus.RUNNING, JobStatus.CANCELLING)]
