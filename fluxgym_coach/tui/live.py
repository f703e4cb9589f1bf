"""Keeping the review's panels live: findings refreshed after a change, rows
listed while the scan finds them.

:class:`LiveActions` is a mixin of the review app (as the mixins of
:mod:`.actions` are):

* **Findings after a change.** A caption saved, a decision or an enhanced
  variant changes what the audit says of an image. :meth:`LiveActions.refresh_findings`
  asks the core (:func:`fluxgym_coach.audit.refresh.refresh_findings`: the
  store only, no decode) for the new findings of those images, on the decision
  thread (after the decision that caused it is stored), and the rows, the
  filter's view, the counts of the status line and the info panel follow at once.
* **Rows while the scan runs.** :class:`ScanFeed` wraps the scan's event sink:
  the core's :class:`~fluxgym_coach.events.ItemsFound` (new images named by the
  folder walk, then their header sizes) and
  :class:`~fluxgym_coach.events.ItemsStored` (a batch committed) become
  :class:`RowsFound` / :class:`RowsStored` messages. Found images get a
  placeholder row at once (name, then size); a stored batch replaces the
  placeholders with the records (hash, sharpness, caption, flags).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from textual.message import Message

from ..events import Event, EventSink, ItemsFound, ItemsStored, JobFinished
from ..store import ImageRecord
from .jobs import JobSink
from .model import Row, finding_from
from .widgets.jobs_panel import summary_text
from .widgets.status_line import Part


@dataclass(eq=False)
class RowsFound(Message):
    """The scan found images (``items``: relpath -> what is known so far: ``size``,
    ``mtime_ns``, later ``width``, ``height``, ``format``, ``orientation``)."""

    items: dict[str, dict[str, Any]]


@dataclass(eq=False)
class RowsStored(Message):
    """The scan committed the records of ``relpaths``."""

    relpaths: list[str]


@dataclass(eq=False)
class FindingsRefreshed(Message):
    """New findings of some images: ``audits`` maps relpath -> ImageAudit."""

    audits: dict[str, Any]


@dataclass(eq=False)
class JobSummary(Message):
    """What an ended job did, for its row (``text``: ``"done: 6 unchanged"``)."""

    key: str
    text: str


class LiveJobSink(JobSink):
    """The job sink of :mod:`.jobs`, plus: a job's
    :class:`~fluxgym_coach.events.JobFinished` summary goes to its row
    (:class:`JobSummary`); for a scan, the images found and stored are posted as
    :class:`RowsFound` / :class:`RowsStored`, and the header pass is asked for
    (``wants_headers``)."""

    @property
    def wants_headers(self) -> bool:
        """A scan asks the core for the header pass (sizes before the full read)."""
        return self.progress.kind == "scan"

    def __call__(self, event: Event) -> None:
        if isinstance(event, ItemsFound):
            self.app.post_message(RowsFound(dict(event.items)))
        elif isinstance(event, ItemsStored):
            self.app.post_message(RowsStored(list(event.items)))
        super().__call__(event)
        if isinstance(event, JobFinished):
            text = summary_text(event.kind, event.summary)
            if text:
                self.app.post_message(JobSummary(self.progress.key, text))


ScanFeed = LiveJobSink  # the scan's sink


def is_pending(row: Row) -> bool:
    """True for a row the scan listed but has not read yet (no digest, no error)."""
    return row.record.digest is None and row.record.error is None


def placeholder(relpath: str, facts: dict[str, Any]) -> ImageRecord:
    """The record shown for an image found but not read yet."""
    return ImageRecord(relpath, int(facts.get("size", -1)), int(facts.get("mtime_ns", -1)),
                       width=facts.get("width"), height=facts.get("height"),
                       format=facts.get("format"), orientation=facts.get("orientation"))


def hook_steps(cls: type) -> type:
    """Class decorator of the review app: after its own steps, keep the panels live.

    ``_new_job`` gives every job the :class:`LiveJobSink` (same state, plus the
    summary and the scan's rows); ``_caption_saved`` and ``_decide`` (wherever the
    app defines them, itself or a mixin) refresh the findings of the image they
    changed. Returns ``cls``."""
    new_job, caption_saved, decide = cls._new_job, cls._caption_saved, cls._decide  # type: ignore[attr-defined]

    def _new_job(self: Any, kind: str, label: str, total: int) -> Any:
        sink = new_job(self, kind, label, total)
        sink.__class__ = LiveJobSink
        return sink

    def _caption_saved(self: Any, relpath: str, text: str) -> None:
        caption_saved(self, relpath, text)
        self.refresh_findings([relpath])

    def _decide(self: Any, decision: str) -> None:
        row = self.current
        decide(self, decision)
        if row is not None:
            self.refresh_findings([row.relpath])

    for f in (_new_job, _caption_saved, _decide):
        f.__doc__ = getattr(cls, f.__name__).__doc__
        setattr(cls, f.__name__, f)
    return cls


class LiveActions:
    """Findings refresh and scan streaming (see the module docstring); the app
    also applies :func:`hook_steps`."""

    #: Set once the audit's findings are in the rows: before that there is nothing to refresh.
    findings_loaded = False
    #: Classes the screen gets by its height (Textual sets them again at every resize).
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-normal"), (40, "-tall")]

    def on_rows_changed(self, msg: Any) -> None:  # besides the app's own handler
        if msg.relpaths:
            self.refresh_findings(list(msg.relpaths))

    def on_audit_done(self, msg: Any) -> None:  # besides the app's own handler
        self.findings_loaded = True

    def on_job_summary(self, msg: JobSummary) -> None:
        from .widgets.jobs_panel import JobsPanel

        app: Any = self
        app.query_one(JobsPanel).set_summary(msg.key, msg.text)

    # -- findings after a change ---------------------------------------------------------
    def refresh_findings(self, relpaths: list[str]) -> None:
        """Recompute the findings of ``relpaths`` (after their decisions are stored)
        and show them; the view, the counts and the info panel follow."""
        app: Any = self
        relpaths = [r for r in relpaths if r in app.index.by_relpath]
        if not relpaths:
            return
        if not self.findings_loaded:
            self.follow_rows_changed()
            return
        previous = {r.relpath: list(r.findings) for r in app.index.rows}
        captions = {r.relpath: r.record.caption for r in app.index.rows if not r.record.error}

        def work() -> None:
            from ..audit.refresh import refresh_findings

            audits = refresh_findings(app.dataset, relpaths, previous, captions=captions)
            app.post_message(FindingsRefreshed(audits))

        future = app._decision_pool.submit(work)
        future.add_done_callback(lambda f: f.exception() and app.post_message(
            FindingsRefreshed({})))

    def on_findings_refreshed(self, msg: FindingsRefreshed) -> None:
        app: Any = self
        for rel, audit in msg.audits.items():
            row = app.index.by_relpath.get(rel)
            if row is None:
                continue
            row.findings = [finding_from(f) for f in audit.findings]
            if audit.category is not None:
                row.category = audit.category
        self.follow_rows_changed()

    def follow_rows_changed(self) -> None:
        """After rows changed in place: re-apply the filter, search and sort when
        they depend on it (a captioned image leaves "needs caption"), repaint the
        list, the status line and the info panel."""
        app: Any = self
        idx = app.index
        if idx.filter != "all" or idx.sort != "name" or idx.query:
            app._refilter()
        else:
            app.image_list.refresh()
            app._update_status()
        cur = app.current
        if cur is not None:
            from .widgets.info_panel import InfoPanel

            app.query_one(InfoPanel).show(cur, app.shown_variant(cur))

    # -- rows while the scan runs ----------------------------------------------------------
    def on_rows_found(self, msg: RowsFound) -> None:
        app: Any = self
        idx = app.index
        added = False
        for rel, facts in msg.items.items():
            row = idx.by_relpath.get(rel)
            if row is None:
                row = Row(placeholder(rel, facts))
                idx.rows.append(row)
                idx.by_relpath[rel] = row
                added = True
            elif is_pending(row):
                known = {k: v for k, v in facts.items() if k in ("width", "height", "format", "orientation")}
                row.record = replace(row.record, **known)
        cur = app.current
        if added:
            idx.apply()
            app.image_list.reset_view(keep=cur.relpath if cur else None)
            app._update_status()
            if cur is None:
                app._show_current(immediate=True)
        else:
            app.image_list.refresh()

    def on_rows_stored(self, msg: RowsStored) -> None:
        app: Any = self
        app.index.refresh_rows(app.dataset, msg.relpaths)
        app.image_list.refresh()
        cur = app.current
        if cur is not None and cur.relpath in msg.relpaths:
            if app.editor.relpath == cur.relpath and not app.editor.dirty:
                app._load_editor(cur)  # the caption read by the scan replaces the placeholder's
            app._show_current(immediate=True)
