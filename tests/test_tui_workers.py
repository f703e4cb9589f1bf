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
