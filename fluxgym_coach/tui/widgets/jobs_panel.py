"""The jobs panel: one progress row per background job (count, rate, ETA, cancel).

Rows are updated from throttled :class:`JobProgress` snapshots (a few per
second at most), never per item, and nothing animates while idle: the bar
always has a total, and the ETA is text computed when a snapshot arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar

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
    status: str = "running"
    in_flight: float = 0.0  # items' worth done inside running requests (InFlightProgress)


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
        return "starting  c cancels" if p.status == "running" else (
            "nothing to do" if p.status == "done" else p.status)
    parts = [f"{n}/{total}"]
    if p.failed:
        parts.append(f"{p.failed} failed")
    if p.status == "running":
        if p.rate:
            parts.append(f"{p.rate:.1f}/s")
        eta = _eta_text(p.eta)
        if eta:
            parts.append(eta)
        parts.append("c cancels")
    else:
        parts.append(p.status)
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
        super().__init__(id=f"job-{p.key}")
        self.progress = p

    def compose(self) -> ComposeResult:
        yield Label(self.progress.label[:11], classes="job-label")
        yield ProgressBar(total=max(1, self.progress.total), show_eta=False, show_percentage=True)
        yield Label(progress_text(self.progress), classes="job-text")

    def update_progress(self, p: JobProgress) -> None:
        """Show a new snapshot."""
        self.progress = p
        bar = self.query_one(ProgressBar)
        total = max(1, p.total, p.done + p.failed)
        # A job that ended "done" with less to do than announced (cached, unchanged) is full.
        bar.update(total=total, progress=total if p.status == "done" else
                   min(total, p.done + p.failed + p.in_flight))
        self.query_one(".job-text", Label).update(progress_text(p))


class JobsPanel(Vertical):
    """All background jobs; hidden when there are none."""

    DEFAULT_CSS = """
    JobsPanel { height: auto; max-height: 5; display: none; border-top: solid $primary-darken-2; }
    JobsPanel.busy { display: block; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.jobs: dict[str, JobProgress] = {}

    def update_job(self, p: JobProgress) -> None:
        """Add or update the row of a job."""
        self.jobs[p.key] = p
        self.set_class(True, "busy")
        rows = [r for r in self.query(JobRow) if r.progress.key == p.key]
        if rows:
            rows[0].update_progress(p)
        else:
            self.mount(JobRow(p))
            self.refresh(layout=True)

    def remove_job(self, key: str) -> None:
        """Remove the row of a finished job."""
        self.jobs.pop(key, None)
        for r in self.query(JobRow):
            if r.progress.key == key:
                r.remove()
        self.set_class(bool(self.jobs), "busy")
        self.refresh(layout=True)

    def running(self) -> list[JobProgress]:
        """Jobs still running, oldest first."""
        return [p for p in self.jobs.values() if p.status in ("running", "cancelling")]
