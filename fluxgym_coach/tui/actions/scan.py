"""Keeping the list true to the folder: the scan (start, F5), the watcher that
notices changes made by other programs, and the audit's findings."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from textual import work

from ...statuses import JobStatus
from ... import core
from ..jobs import JobSink
from ..messages import AuditDone, FilesChanged, RowsChanged
from ..model import plural
from ..widgets.info_panel import InfoPanel

WATCH_MAX_WAIT = 10.0  # seconds between two looks for changes on disk, at most
_log = logging.getLogger(__name__)


class _InWorker:
    """The app's plugin session as :class:`core.RunningPlugins`, told of a scan in a worker
    of its own: plugins still starting do not hold up the scan's job (or the audit after it)."""

    def __init__(self, app: Any, session: Any) -> None:
        self.app, self.session, self.project = app, session, session.project

    async def notify_scan(self, report: Any, snapshot: Any) -> None:
        self.app.run_worker(self.session.notify_scan(report, snapshot), group="plugin-events",
                            exit_on_error=False)


class ScanActions:
    """Scan, watch the folder, audit."""

    def action_rescan(self) -> None:
        """Rescan the dataset folder."""
        self.rescan()

    def rescan(self, quiet: bool = False) -> None:
        """Start an incremental scan in a worker; ``quiet``: no job row and no audit
        after it (a refresh after a change on disk)."""
        if quiet:
            self._quiet_scan_worker()
            return
        sink = self._new_job("scan", "Scan", 0)
        sink.worker = self._scan_worker(sink)

    @work(exclusive=True, group="scan", exit_on_error=False)
    async def _scan_worker(self, sink: JobSink) -> None:
        """:func:`core.scan` in an async worker: the rows stream in through the sink
        (``headers``: sizes before the reads), the plugins the app runs hear of new and
        removed images (the core's path, as for the CLI); ``Worker.cancel()`` stops the
        folder scan at its next image, keeping what it stored (F5 resumes)."""
        while not self._scan_lock.acquire(blocking=False):  # the watcher's look is short
            await asyncio.sleep(0.05)
        session = getattr(self, "plugin_session", None)
        try:
            report = await core.scan(self.dataset, sink, headers=True,
                                     plugins=_InWorker(self, session) if session is not None else None)
        except asyncio.CancelledError:
            sink.finish(JobStatus.CANCELLED)
            self.post_message(RowsChanged(None))
            raise
        except Exception as exc:  # noqa: BLE001
            sink.fail(f"scan stopped: {exc}")
            return
        finally:
            self._scan_lock.release()
        sink.finish(JobStatus.DONE)
        if report.added or report.updated or report.removed or report.captions_updated:
            self.post_message(RowsChanged(None))
        if self.audit_on_start:
            self.run_audit()

    @work(thread=True, group="quiet-scan", exit_on_error=False)
    def _quiet_scan_worker(self) -> None:
        self._scan_for_changes()

    def _scan_for_changes(self) -> Any:
        """One incremental scan without a job row; posts :class:`FilesChanged` when the
        folder changed (run from a worker thread). Returns the report (None: skipped)."""
        if not self._scan_lock.acquire(blocking=False):
            return None  # a scan is running: it will see the change
        try:
            report = self.dataset.scan()
        except Exception:  # noqa: BLE001 - a vanished folder, a locked store: try again later
            # the scan may have stored some changes before failing: the next look that
            # works reloads every row, so none of them is missed
            self._watch_missed = True
            _log.debug("looking for changes on disk failed", exc_info=True)
            return None
        finally:
            self._scan_lock.release()
        changed = sorted({*report.updated, *report.captions_updated})
        missed, self._watch_missed = self._watch_missed, False
        if report.added or report.removed or changed or missed:
            self.post_message(FilesChanged(changed, list(report.added), list(report.removed), missed))
        return report

    @work(thread=True, exclusive=True, group="watch", exit_on_error=False)
    def _watch_worker(self) -> None:
        """Look for changes made on disk by other programs (another editor, another
        TUI, a file manager) every ``watch_interval`` seconds, or 20 times the last
        look's duration when that is longer (10,000 images stay cheap)."""
        import time
        from textual.worker import get_current_worker

        worker = get_current_worker()
        wait = float(self.watch_interval or 0)
        while wait > 0 and not worker.is_cancelled:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and not worker.is_cancelled:
                self._watch_wake.wait(min(0.25, max(0.0, deadline - time.monotonic())))
                if self._watch_wake.is_set():
                    self._watch_wake.clear()
                    break
            if worker.is_cancelled:
                return
            started = time.monotonic()
            self._scan_for_changes()
            # 20 times the look's duration keeps the watcher under 5 % of a core; capped so
            # a slow look (a busy disk) does not leave the list stale for minutes
            wait = max(float(self.watch_interval or 0),
                       min(WATCH_MAX_WAIT, 20 * (time.monotonic() - started)))

    @work(exclusive=True, group="watch-plugins", exit_on_error=False)
    async def _tell_plugins(self) -> None:
        """Tell the plugins the app runs about images the watcher stored, through the
        core's scan (its notification covers every image they never heard of)."""
        session = getattr(self, "plugin_session", None)
        if session is None or not self._scan_lock.acquire(blocking=False):
            return  # no plugins, or a scan is running: it tells them
        try:
            report = await core.scan(self.dataset, plugins=_InWorker(self, session))
        finally:
            self._scan_lock.release()
        changed = sorted({*report.updated, *report.captions_updated})
        if report.added or report.removed or changed:  # changed again meanwhile: the rows follow
            self.post_message(FilesChanged(changed, list(report.added), list(report.removed)))

    def on_files_changed(self, msg: "FilesChanged") -> None:
        """Files changed on disk: refresh the rows they touch; the editor takes the new
        caption unless it holds unsaved text (then saving will ask); the plugins hear of
        new and changed images."""
        if msg.added or msg.changed or msg.reload:
            self._tell_plugins()
        cur = self.current
        self._tag_index = None
        if msg.added or msg.removed or msg.reload:
            self.index.reload(self.dataset)
            self.image_list.reset_view(keep=cur.relpath if cur else None)
        else:
            self.index.refresh_rows(self.dataset, msg.changed)
            if self.index.filter != "all" or self.index.query:
                self._refilter()
            self.image_list.refresh()
        self.recount()  # a reload drops the marks of removed images; the status line follows
        cur = self.current
        if cur is not None and cur.relpath in msg.changed and self.editor.relpath == cur.relpath:
            if self.editor.dirty:
                self.notify(f"{cur.relpath}: its caption changed on disk; your unsaved text is kept "
                            f"(ctrl+s shows both and asks)", severity="warning", timeout=8)
            else:
                self._load_editor(cur)
            self.query_one(InfoPanel).show(cur, self.shown_variant(cur))
        n = len(msg.changed) + len(msg.added) + len(msg.removed)
        self.notify(f"{plural(n, 'file')} changed on disk: list refreshed", timeout=3)

    # -- audit (issue 7) --------------------------------------------------------------------------
    def action_audit(self) -> None:
        """Audit the images again (findings in the list and the info panel)."""
        self.run_audit()

    def run_audit(self) -> None:
        """Start the audit in a worker (extra measures are taken once per image content)."""
        sink = self._new_job("audit", "Audit", len(self.index.rows))
        sink.worker = self._audit_worker(sink)

    @work(exclusive=True, group="audit", exit_on_error=False)
    async def _audit_worker(self, sink: JobSink) -> None:
        """:func:`core.audit_dataset` (trigger word and resolution from the dataset's
        settings) in an async worker; ``Worker.cancel()`` stops the measures at the next
        image (the core's cancel token), keeping those taken."""
        try:
            report = await core.audit_dataset(self.dataset, rescan=False, on_event=sink)
        except asyncio.CancelledError:
            sink.finish(JobStatus.CANCELLED)
            raise
        except Exception as exc:  # noqa: BLE001 - the review goes on without findings
            sink.fail(f"audit stopped: {exc}")
            return
        sink.finish(JobStatus.DONE)
        self.post_message(AuditDone({rel: a.findings for rel, a in report.images.items()},
                                    {rel: a.category for rel, a in report.images.items()}))

    def on_audit_done(self, msg: "AuditDone") -> None:
        self.index.set_findings(msg.findings, msg.categories)
        cur = self.current
        if self.index.filter in ("flagged",) or self.index.sort == "findings":
            self._refilter()
        self.image_list.refresh()
        if cur is not None:
            self.query_one(InfoPanel).show(cur, self.shown_variant(cur))
