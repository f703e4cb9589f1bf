"""The jobs panel: every ended row leaves after the same linger (plugin task rows
too), and ended rows say what the job did."""

from __future__ import annotations

import asyncio

from textual.app import App, ComposeResult

from fluxgym_coach.plugins.tasks import Task, TaskQueue
from fluxgym_coach.tui.widgets.jobs_panel import (JobProgress, JobRow, JobsPanel, progress_text,
                                                  summary_text)
from tests.fixtures_tui import wait_until


class Host(App[None]):
    def __init__(self, linger: float) -> None:
        super().__init__()
        self.linger = linger

    def compose(self) -> ComposeResult:
        yield JobsPanel(id="jobs", linger=self.linger)


def _keys(app) -> set[str]:
    return {r.progress.key for r in app.query(JobRow)}


async def test_ended_jobs_leave_and_running_ones_stay():
    app = Host(linger=0.3)
    async with app.run_test() as pilot:
        panel = app.query_one(JobsPanel)
        panel.update_job(JobProgress("scan1", "scan", "Scan", 4, 1))
        panel.update_job(JobProgress("enhance2", "enhance", "Enhance", 2, 1))
        await pilot.pause()
        panel.update_job(JobProgress("scan1", "scan", "Scan", 4, 4, status="done"))
        await pilot.pause()
        assert _keys(app) == {"scan1", "enhance2"}  # the outcome can be read for a while
        await wait_until(pilot, lambda: _keys(app) == {"enhance2"}, "the ended row to leave")
        assert panel.has_class("busy")


async def test_a_finished_plugin_task_row_leaves_like_any_job():
    class Step(Task):
        def __init__(self, release: asyncio.Event) -> None:
            super().__init__()
            self.key, self.name, self.release = "vectors", "Vectors", release

        async def run(self) -> None:
            await self.release.wait()

    queue = TaskQueue(workers=1)
    app = Host(linger=0.3)
    async with app.run_test() as pilot:
        panel = app.query_one(JobsPanel)
        panel.follow(queue)
        release = asyncio.Event()
        for _ in range(3):
            queue.add_task(Step(release))
        await wait_until(pilot, lambda: "plugin-vectors" in _keys(app), "the plugin row")
        row = next(r for r in app.query(JobRow) if r.progress.key == "plugin-vectors")
        assert row.progress.status == "running" and row.progress.total == 3
        release.set()
        await queue.join()
        await wait_until(pilot, lambda: panel.jobs.get("plugin-vectors") is None
                         or panel.jobs["plugin-vectors"].status == "done", "the row to end")
        await wait_until(pilot, lambda: not _keys(app), "the finished plugin row to leave")
        assert not panel.has_class("busy")
    await queue.close()


def test_ended_rows_say_what_the_job_did():
    assert summary_text("scan", {"added": 0, "updated": 0, "removed": 0, "unchanged": 6}) \
        == "done: 6 unchanged"
    scan = JobProgress("scan1", "scan", "Scan", 0, status="done", summary="done: 6 unchanged")
    assert progress_text(scan) == "done: 6 unchanged"
    assert "0/0" not in progress_text(scan)
    audit = JobProgress("audit1", "audit", "Audit", 6, 6, status="done",
                        summary=summary_text("audit", {"measured": 0, "flagged": 5, "groups": 1}))
    assert progress_text(audit) == "6/6  done: 5 flagged, 1 duplicate groups"
    assert progress_text(JobProgress("x", "bulk", "Bulk", 0, status="done")) == "nothing to do"
