"""TUI workers on the core job API (issue 10 item 5): bulk edits through
``core.edit_captions``, jobs cancelled through ``Worker.cancel()`` and the core's cancel
token, enhance-form defaults decided by the core, the status line following the view."""

from __future__ import annotations

import asyncio

from fluxgym_coach import core, feedback
from fluxgym_coach.captions import bulk
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.events import ItemDone, ItemFailed, JobFinished, JobStarted
from tests.fixtures_tui import settle

SIZE = (100, 30)


async def test_edit_captions_is_one_undoable_job_recorded_as_decisions(tui_dataset):
    events: list[object] = []
    with Dataset(tui_dataset) as ds:
        ds.scan()
        report = await core.edit_captions(
            ds, ["chelsea.png", "coffee.png", "astronaut.png"], bulk.trigger_first_edit("ohwx"),
            "trigger-first", include_missing=True, held={"coffee.png": "unsaved text"}, source="tui",
            on_event=events.append)
        assert sorted(report.changed) == ["astronaut.png", "chelsea.png"]
        assert report.skipped == {"coffee.png": "unsaved text"}
        assert (tui_dataset / "astronaut.txt").read_text(encoding="utf-8") == "ohwx"
        assert not (tui_dataset / "coffee.txt").read_text(encoding="utf-8").startswith("ohwx")
        kinds = [type(e) for e in events]
        assert kinds[0] is JobStarted and kinds[-1] is JobFinished
        assert [e.item for e in events if isinstance(e, ItemFailed)] == ["coffee.png"]
        assert len([e for e in events if isinstance(e, ItemDone)]) == 2
        edits = [d for d in feedback.decisions(ds.store) if d.decision == feedback.CAPTION_EDIT]
        assert sorted(d.relpath for d in edits) == ["astronaut.png", "chelsea.png"]
        assert {d.source for d in edits} == {"tui"} and {d.params["op"] for d in edits} == {report.op_id}
        bulk.undo_operation(ds, report.op_id)  # one operation: one undo takes it all back
        assert not (tui_dataset / "chelsea.txt").read_text(encoding="utf-8").startswith("ohwx")


def test_the_tui_replace_is_the_literal_replace_of_the_cli():
    from fluxgym_coach.tui.actions.bulk import _replace_text

    for text in ("a cat, ohwx, sitting", "ohwx", "a (b) c, d.e"):
        for find, repl in (("ohwx", ""), ("(b)", "\\1"), (".", "*")):
            assert _replace_text(find, repl, text) == bulk.replace_edit(find, repl, regex=False)(text)


# -- the order of the enhancement defaults (one decision, in the core) --------------------------
def test_enhance_defaults_order_given_last_learned_shipped(tui_dataset):
    from fluxgym_coach.enhance.backends.base import EnhanceParams
    from fluxgym_coach.settings import update_settings

    with Dataset(tui_dataset) as ds:
        ds.scan()
        found = core.enhance_defaults(ds)
        assert found.origin == "the shipped defaults" and found.params.resolution == 1024
        for i in range(6):  # the reviews accepted sharpen 0.4
            feedback.record_decision(ds.store, feedback.Decision("chelsea.png", feedback.ACCEPT,
                                                                 variant=f"k{i}", params={"sharpen": 0.4}))
        found = core.enhance_defaults(ds)
        assert found.params.sharpen == 0.4 and found.origin.startswith("suggested from")
        # the last values used win over the learned ones, as a whole; a remembered
        # resolution does not: the dataset's setting owns it (the size rule's target)
        update_settings(ds.store, resolution=768,
                        enhance={"params": EnhanceParams(scale_factor=3.0, resolution=1024).to_dict()})
        found = core.enhance_defaults(ds)
        assert found.origin == "the last values used"
        assert (found.params.scale_factor, found.params.sharpen, found.params.resolution) == (3.0, 0.0, 768)
        # what the user gave on this run wins over everything
        given = EnhanceParams(scale_factor=2.0, resolution=512)
        found = core.enhance_defaults(ds, given, keep=["scale_factor", "resolution"])
        assert (found.params.scale_factor, found.params.resolution) == (2.0, 512)
        assert core.enhance_defaults(ds, last=False, learned=False).origin == "the shipped defaults"


async def test_batch_enhance_confirm_aims_at_the_dataset_resolution(tui_dataset, make_tui_app):
    from fluxgym_coach.enhance.backends.base import EnhanceParams
    from fluxgym_coach.settings import update_settings

    with Dataset(tui_dataset) as ds:  # an earlier run remembered resolution 1024; the dataset is now 768
        update_settings(ds.store, resolution=768, enhance={"params": EnhanceParams(resolution=1024).to_dict()})
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("b")
        await pilot.pause()
        assert "to resolution 768" in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        assert "the last values used" in app.screen.note


# -- cancelling: Worker.cancel() for every job, the core's cancel token in blocking stages ------
def _gated_sink(monkeypatch, kind: str, after: int):
    """Make the sinks of ``kind`` jobs hold the job's thread at its ``after``-th ItemDone
    until the test lets it go: the job is surely running when it is cancelled."""
    import threading

    from fluxgym_coach.tui.actions import jobs as job_actions

    reached, release = threading.Event(), threading.Event()
    tokens: list[threading.Event] = []  # the core's cancel tokens of the blocking stages
    from fluxgym_coach import cancellation

    real = cancellation.cancellable_sink

    def spy(on_event, token):
        tokens.append(token)
        return real(on_event, token)

    monkeypatch.setattr(cancellation, "cancellable_sink", spy)

    class Gated(job_actions.JobSink):
        def __call__(self, event):
            super().__call__(event)
            if self.progress.kind == kind and isinstance(event, ItemDone) and self.progress.done == after:
                reached.set()
                release.wait(30)

    monkeypatch.setattr(job_actions, "JobSink", Gated)
    return reached, release, tokens


async def _cancel_when_held(pilot, app, kind: str, gate) -> tuple[str, object]:
    from tests.fixtures_tui import wait_until

    reached, release, tokens = gate
    await wait_until(pilot, reached.is_set, f"the {kind} job to reach the gate")
    key = next(k for k, s in app._sinks.items() if s.progress.kind == kind)
    worker = app._sinks[key].worker
    app.cancel_job(key)
    assert worker.is_cancelled  # Textual's Worker.cancel(), for a blocking stage too
    await wait_until(pilot, lambda: tokens and tokens[-1].is_set(), "the core's cancel token")
    release.set()  # the stage's next event sees the core's cancel token
    await wait_until(pilot, lambda: app.query_one("JobsPanel").jobs[key].status == "cancelled",
                     f"the {kind} row to say cancelled")
    return key, worker


async def test_a_cancelled_scan_stops_early_and_f5_resumes(tmp_path, make_tui_app, monkeypatch):
    from textual.worker import WorkerState

    from tests.helpers_images import photo_like, save

    root = tmp_path / "many"
    for i in range(24):
        save(photo_like((96, 64), seed=i), root / f"img{i:02d}.png")
    gate = _gated_sink(monkeypatch, "scan", after=3)
    app = make_tui_app(root, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        key, worker = await _cancel_when_held(pilot, app, "scan", gate)
        await settle(pilot, app)
        assert worker.state == WorkerState.CANCELLED and key not in app.running_jobs()
        row = app.query_one("JobsPanel").jobs[key]
        assert row.done < 24  # stopped early
        stored = await asyncio.to_thread(lambda: [r for r in app.dataset.store.images() if r.digest])
        assert len(stored) < 24
        monkeypatch.undo()  # the same command again: the scan resumes and finishes
        await pilot.press("f5")
        await settle(pilot, app)
        done = await asyncio.to_thread(lambda: [r for r in app.dataset.store.images() if r.digest])
        assert len(done) == 24 and len(app.index.rows) == 24


async def test_a_cancelled_export_stops_early_and_exporting_again_finishes(tui_dataset, make_tui_app,
                                                                           monkeypatch, tmp_path):
    from textual.worker import WorkerState

    out = tmp_path / "fg"
    gate = _gated_sink(monkeypatch, "export", after=2)
    app = make_tui_app(tui_dataset, audit=False)
    opts = {"out_dir": str(out), "name": "lora", "trigger": "ohwx", "resolution": 512, "repeats": 2,
            "vram": "20G", "force": False, "only_accepted": False}
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app._start_export(dict(opts))
        key, worker = await _cancel_when_held(pilot, app, "export", gate)
        await settle(pilot, app)
        assert worker.state == WorkerState.CANCELLED
        def images() -> list[str]:
            return sorted(p.name for p in out.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))

        assert app.query_one("JobsPanel").jobs[key].done < 6  # stopped early
        assert not list(out.rglob("dataset.toml"))  # nothing half-exported in place (staged only)
        monkeypatch.undo()
        app._start_export(dict(opts))  # the same export again
        await settle(pilot, app)
        assert len(list(out.rglob("dataset.toml"))) == 1 and len(images()) == 6


async def test_run_blocking_sets_the_token_and_waits_for_the_thread():
    import threading

    started, stopped = threading.Event(), []

    def stage(n, on_event):
        on_event(JobStarted("j", "t", n))
        started.set()
        try:
            for i in range(n):
                threading.Event().wait(0.01)  # some work per item
                on_event(ItemDone("j", str(i)))
        except core.JobCancelled:
            stopped.append(i)
            raise
        return n

    assert await core.run_blocking(stage, 3) == 3
    started.clear()
    task = asyncio.ensure_future(core.run_blocking(stage, 10_000))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the task was not cancelled")
    assert stopped and stopped[0] < 10_000  # the thread stopped at its next item, before the task ended


# -- the status line follows the reactive view state --------------------------------------------
async def test_the_status_line_is_redrawn_by_watchers_only(tui_dataset, make_tui_app, monkeypatch):
    import sys

    from fluxgym_coach.tui.messages import RowsChanged

    app = make_tui_app(tui_dataset, audit=False)
    callers: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        real = app._update_status

        def spy() -> None:
            callers.append(sys._getframe(1).f_code.co_name)
            real()

        monkeypatch.setattr(app, "_update_status", spy)
        status = lambda: app.query_one("#status").plain  # noqa: E731
        assert "0 reviewed" in status() and "6/6" in status()
        await pilot.press("a")  # a decision: the reviewed count follows
        await settle(pilot, app)
        assert "1 reviewed" in status()
        await pilot.press("space")  # a mark
        assert "1 marked" in status()
        app.set_filter("unreviewed")
        await pilot.pause()
        assert f"{len(app.index.view)}/6 unreviewed" in status() and len(app.index.view) == 5
        app.post_message(RowsChanged(None))  # a reload after background work
        await settle(pilot, app)
        assert "1 marked" in status() and "1 reviewed" in status()
        assert callers and all(name.startswith("watch_") for name in callers), callers


# -- the core's jobs keep store work off the caller's event loop ---------------------------------
async def test_caption_images_reads_and_writes_settings_off_the_loop(tui_dataset, monkeypatch):
    import threading

    from fluxgym_coach.settings import load_settings

    loop_thread = threading.current_thread()
    seen: list[tuple[str, bool]] = []
    for name in ("load_settings", "update_settings", "_unreadable"):
        real = getattr(core, name)

        def spy(*args, _real=real, _name=name, **kw):
            seen.append((_name, threading.current_thread() is loop_thread))
            return _real(*args, **kw)

        monkeypatch.setattr(core, name, spy)
    with Dataset(tui_dataset) as ds:
        await asyncio.to_thread(ds.scan)
        captioner = core.captioner_from_settings(None, backend="draft")
        try:
            report = await core.caption_images(ds, None, captioner, mode="refresh")
        finally:
            await captioner.aclose()
        assert report.outcomes  # it captioned
        assert {n for n, _ in seen} == {"load_settings", "update_settings", "_unreadable"}
        assert not [n for n, on_loop in seen if on_loop], seen
        assert load_settings(ds.store).caption.mode == "refresh"
