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
* **After an SSH drop.** The last search is kept in the store and shown again
  on reopen; an enhancement or captioning job that did not finish (its core
  journal, :func:`fluxgym_coach.jobs.interrupted_jobs`, is not closed) is named
  in a notification on reopen, with a palette command that runs it again on the
  same images with the same settings (the journal skips what was done).
* **Rows while the scan runs.** The job sink (:class:`~.jobs.JobSink`) turns
  the core's :class:`~fluxgym_coach.events.ItemsFound` (new images named by the
  folder walk, then their header sizes) and
  :class:`~fluxgym_coach.events.ItemsStored` (a batch committed) into
  :class:`RowsFound` / :class:`RowsStored` messages. Found images get a
  placeholder row at once (name, then size); a stored batch replaces the
  placeholders with the records (hash, sharpness, caption, flags).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from textual.css.query import NoMatches
from textual.message import Message

from ..store import ImageRecord
from .messages import JobSummary, RowsFound, RowsStored
from .model import Row, finding_from


@dataclass(eq=False)
class FindingsRefreshed(Message):
    """New findings of some images: ``audits`` maps relpath -> ImageAudit."""

    audits: dict[str, Any]


def _while_open(handler: Callable[..., None]) -> Callable[..., None]:
    """A message handler that does nothing once the app's widgets are gone (a scan
    thread still posting while the app closes)."""
    @functools.wraps(handler)
    def wrapped(self: Any, msg: Any) -> None:
        try:
            handler(self, msg)
        except NoMatches:
            from .widgets.image_list import ImageList

            if any(screen.query(ImageList) for screen in self.screen_stack):
                raise  # the widgets are there: a real error
    return wrapped


def is_pending(row: Row) -> bool:
    """True for a row the scan listed but has not read yet (no digest, no error)."""
    return row.record.digest is None and row.record.error is None


def placeholder(relpath: str, facts: dict[str, Any]) -> ImageRecord:
    """The record shown for an image found but not read yet."""
    return ImageRecord(relpath, int(facts.get("size", -1)), int(facts.get("mtime_ns", -1)),
                       width=facts.get("width"), height=facts.get("height"),
                       format=facts.get("format"), orientation=facts.get("orientation"))


#: Store settings of this module: the last search text; the last job of each kind started here.
SEARCH_KEY = "tui.search"
LAST_JOBS_KEY = "tui.last_jobs"
_JOB_WORDS = {"enhance": "enhancement", "caption": "captioning"}


def remember_job(app: Any, kind: str, relpaths: list[str], settings: dict[str, Any]) -> None:
    """Remember what a job runs on, so an interrupted one can be run again after a reopen."""
    import time

    store = app.dataset.store
    jobs = dict(store.get_setting(LAST_JOBS_KEY, {}) or {})
    jobs[kind] = {"relpaths": list(relpaths), "settings": settings, "started_at": time.time()}
    store.set_setting(LAST_JOBS_KEY, jobs)


class LiveActions:
    """Findings refresh, scan streaming, the kept search and the resume commands (see
    the module docstring); the other mixins call :meth:`refresh_findings` after a change
    and :func:`remember_job` when a job starts."""

    #: Set once the audit's findings are in the rows: before that there is nothing to refresh.
    findings_loaded = False
    #: Classes the screen gets by its height (Textual sets them again at every resize).
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-normal"), (40, "-tall")]

    # -- after an SSH drop: the search, the interrupted job ---------------------------------
    def on_mount(self) -> None:  # after the app's own on_mount (it restored cursor and filter)
        app: Any = self
        query = app.dataset.store.get_setting(SEARCH_KEY, "") or ""
        app._saved_search = query
        if query:
            from textual.widgets import Input

            field = app.query_one("#search", Input)
            field.value = query  # its Changed message applies the search
            field.add_class("visible")
        app.call_after_refresh(self._offer_resume)

    def interrupted(self) -> list[tuple[Any, dict[str, Any]]]:
        """``(InterruptedJob, what this review started it with)`` for each job of
        this review that did not finish, newest first."""
        from ..jobs import interrupted_jobs

        app: Any = self
        remembered = app.dataset.store.get_setting(LAST_JOBS_KEY, {}) or {}
        out = []
        for job in interrupted_jobs(app.dataset.store):
            mine = remembered.get(job.kind)
            if mine and job.updated_at >= mine.get("started_at", 0) - 1 and \
                    all(j.kind != job.kind for j, _ in out):
                out.append((job, mine))
        return out

    def _offer_resume(self) -> None:
        app: Any = self
        for job, mine in self.interrupted():
            word = _JOB_WORDS.get(job.kind, job.kind)
            app.notify(f"The {word} of {len(mine['relpaths'])} images did not finish "
                       f"({job.done} of {job.total} done, kept). ctrl+p, \"Resume the interrupted "
                       f"{word}\" runs it again on the rest.", title="interrupted job",
                       severity="warning", timeout=20)

    def save_search(self) -> None:
        """Keep the search text in the store (:data:`SEARCH_KEY`; restored on reopen)."""
        query, saved = self.index.query, getattr(self, "_saved_search", None)
        if saved is not None and query != saved:  # None: not restored yet (on_mount above)
            self._saved_search = query
            self.dataset.store.set_setting(SEARCH_KEY, query)

    def resume_commands(self) -> list[tuple[str, Any, str]]:
        """Palette commands that run an interrupted job again."""
        out = []
        for job, mine in self.interrupted():
            word = _JOB_WORDS.get(job.kind, job.kind)
            out.append((f"Resume the interrupted {word}", lambda j=job, m=mine: self.resume(j.kind, m),
                        f"{job.done} of {job.total} done"))
        return out

    def resume(self, kind: str, mine: dict[str, Any]) -> None:
        """Run a remembered job again on the same images with the same settings."""
        app: Any = self
        rels = [r for r in mine["relpaths"] if r in app.index.by_relpath]
        if not rels:
            app.notify("the images of that job are no longer in the dataset", timeout=4)
            return
        if kind == "enhance":
            from ..enhance.backends.base import EnhanceParams

            app.start_enhance([app.index.by_relpath[r] for r in rels], EnhanceParams(**mine["settings"]))
        elif kind == "caption":
            app._run_caption(rels, dict(mine["settings"]))

    def on_rows_changed(self, msg: Any) -> None:  # besides the app's own handler
        if msg.relpaths:
            self.refresh_findings(list(msg.relpaths))

    def on_audit_done(self, msg: Any) -> None:  # besides the app's own handler
        self.findings_loaded = True

    @_while_open
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

    @_while_open
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
            app.recount()
        cur = app.current
        if cur is not None:
            from .widgets.info_panel import InfoPanel

            app.query_one(InfoPanel).show(cur, app.shown_variant(cur))

    # -- rows while the scan runs ----------------------------------------------------------
    @_while_open
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
            app.recount()
            if cur is None:
                app._show_current(immediate=True)
        else:
            app.image_list.refresh()

    @_while_open
    def on_rows_stored(self, msg: RowsStored) -> None:
        app: Any = self
        app.index.refresh_rows(app.dataset, msg.relpaths)
        app.image_list.refresh()
        cur = app.current
        if cur is not None and cur.relpath in msg.relpaths:
            if app.editor.relpath == cur.relpath and not app.editor.dirty:
                app._load_editor(cur)  # the caption read by the scan replaces the placeholder's
            app._show_current(immediate=True)
