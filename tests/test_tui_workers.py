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


async def test_tui_trigger_first_records_review_decisions(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.show_relpath("chelsea.png")
        await pilot.press("space")
        await pilot.press("t")
        await pilot.pause()
        app.screen.query_one("#field-trigger").value = "ohwx"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert (tui_dataset / "chelsea.txt").read_text(encoding="utf-8").startswith("ohwx, ")
        edits = await asyncio.to_thread(lambda: [d for d in feedback.decisions(app.dataset.store)
                                                 if d.decision == feedback.CAPTION_EDIT])
        assert [(d.relpath, d.source, d.params["bulk"]) for d in edits] == [
            ("chelsea.png", "tui", "trigger-first")]
