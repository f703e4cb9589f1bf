"""The review flow of seed 002 driven from the keyboard with Textual's Pilot, on real
images, against the real fake Forge server: open, filter, caption, enhance, before/after,
accept, reject, reprocess, export, quit and reopen."""

from __future__ import annotations

import asyncio

from fluxgym_coach import feedback
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.settings import update_settings
from fluxgym_coach.tui.model import ACCEPTED, REJECTED
from fluxgym_coach.tui.widgets.jobs_panel import JobsPanel
from fluxgym_coach.tui.widgets.preview import Preview
from tests.fixtures_tui import settle

SIZE = (100, 32)


async def test_open_filter_search(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert [r.relpath for r in app.index.view] == [
            "astronaut.png", "camera.png", "chelsea.png", "coffee.png", "horse.png", "rocket.jpg"]
        await pilot.press("f")  # all -> needs caption
        assert app.index.filter == "needs-caption"
        assert {r.relpath for r in app.index.view} == {"astronaut.png", "camera.png", "horse.png",
                                                        "rocket.jpg"}
        await pilot.press("f", "f", "f", "f", "f", "f", "f")  # back to all
        assert app.index.filter == "all"
        await pilot.press("slash", "c", "o")
        assert [r.relpath for r in app.index.view] == ["coffee.png"]
        await pilot.press("escape")
        assert len(app.index.view) == 6
        # search matches caption text too (chelsea.txt mentions a cat)
        caption = (tui_dataset / "chelsea.txt").read_text().split()[-1].strip(",.").lower()
        await pilot.press("slash", *caption, "enter")
        assert "chelsea.png" in [r.relpath for r in app.index.view]
        assert app.focused is app.image_list


async def test_caption_save_undo_and_dirty_marker(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.current.relpath == "astronaut.png"
        await pilot.press("e")
        assert app.focused is app.editor.area
        await pilot.press("a", "n")
        app.editor.area.insert(" astronaut in a white suit")
        await pilot.pause()
        assert app.editor.dirty and "unsaved" in app.editor.border_title
        assert app.current.draft is not None
        await pilot.press("ctrl+s")
        await pilot.pause()
        sidecar = tui_dataset / "astronaut.txt"
        assert sidecar.read_text(encoding="utf-8") == "an astronaut in a white suit"
        assert not app.editor.dirty and app.current.draft is None
        assert app.current.caption == "an astronaut in a white suit"
        await settle(pilot, app)
        edits = [d for d in feedback.decisions(app.dataset.store, "astronaut.png")
                 if d.decision == feedback.CAPTION_EDIT]
        assert edits and edits[-1].params["caption"] == "an astronaut in a white suit"
        # second save, then undo it: back to the first text; undo again: no sidecar
        app.editor.area.load_text("an astronaut, space suit")
        await pilot.press("ctrl+s", "escape")
        assert sidecar.read_text(encoding="utf-8") == "an astronaut, space suit"
        await pilot.press("u")
        assert sidecar.read_text(encoding="utf-8") == "an astronaut in a white suit"
        assert app.editor.text == "an astronaut in a white suit"
        await pilot.press("u")
        assert not sidecar.exists()


async def test_tag_autocomplete_adds_tag(tui_dataset, make_tui_app):
    (tui_dataset / "horse.txt").write_text("horse, meadow, sunlight", encoding="utf-8")
    app = make_tui_app(tui_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("end")  # rocket.jpg
        assert app.current.relpath == "rocket.jpg"
        await pilot.press("e", "ctrl+t", "m", "e")
        await settle(pilot, app)
        tag_input = app.editor.query_one("#tag-input")
        await pilot.press("right")  # accept the suggestion "meadow"
        assert tag_input.value == "meadow"
        await pilot.press("enter")
        assert app.editor.text == "meadow"
        await pilot.press("escape", "ctrl+s")
        assert (tui_dataset / "rocket.txt").read_text(encoding="utf-8") == "meadow"


async def test_enhance_review_reprocess_against_fake_forge(tui_dataset, make_tui_app, fake_forge):
    app = make_tui_app(tui_dataset, api_url=fake_forge.url)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("down")  # camera.png, 512x512 grayscale
        row = app.current
        assert row.relpath == "camera.png" and not row.variants
        await pilot.press("p")
        await settle(pilot, app)
        assert fake_forge.images_processed >= 1
        assert len(row.variants) == 1
        first = row.variants[0]
        assert (first.width, first.height) == (1024, 1024)
        preview = app.query_one(Preview)
        assert preview.border_title.startswith("After")
        # before / after
        await pilot.press("v")
        await settle(pilot, app)
        assert app.shown_variant(row) is None and preview.border_title.startswith("Original")
        await pilot.press("v")
        await settle(pilot, app)
        assert app.shown_variant(row) == first.cache_key
        # accept: the enhanced variant is selected for export
        await pilot.press("a")
        await settle(pilot, app)
        assert app.dataset.store.selection()["camera.png"] == (first.cache_key, "accepted")
        assert row.status == ACCEPTED
        assert app.current.relpath == "chelsea.png"  # a moves on
        await pilot.press("up")
        # reprocess with other parameters, from the form
        await pilot.press("r")
        await pilot.pause()
        form = app.screen
        assert form.id == "params-form"
        form.query_one("#field-scale_factor").value = "1.5"
        form.query_one("#field-steps").value = "12"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert len(row.variants) == 2
        newest = row.variants[0]
        assert (newest.width, newest.height) == (768, 768)
        assert app.shown_variant(row) == newest.cache_key
        # v cycles through every variant, then the original
        for expected in (row.variants[1].cache_key, None, newest.cache_key):
            await pilot.press("v")
            assert app.shown_variant(row) == expected
        reprocess = [d for d in feedback.decisions(app.dataset.store, "camera.png")
                     if d.decision == feedback.REPROCESS]
        assert reprocess and reprocess[-1].params["scale_factor"] == 1.5
        assert reprocess[-1].params["steps"] == 12
        # the form is pre-filled with the last used values next time
        await pilot.press("r")
        await pilot.pause()
        assert app.screen.query_one("#field-scale_factor").value == "1.5"
        await pilot.press("escape")
        # reject another image
        await pilot.press("down")
        await pilot.press("x")
        await settle(pilot, app)
        assert app.dataset.store.selection()["chelsea.png"] == (None, "rejected")


async def test_bad_params_stay_in_form(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, scan=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await pilot.pause()
        app.screen.query_one("#field-denoising_strength").value = "2"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen.id == "params-form"
        assert "denoising strength" in str(app.screen.query_one("#form-error").render())
        await pilot.press("escape")
        assert not app.current.variants


async def test_server_error_is_notified_with_image_and_reason(tui_dataset, make_tui_app,
                                                               make_fake_forge):
    server = make_fake_forge()
    app = make_tui_app(tui_dataset, api_url=server.url)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        update_settings(app.dataset.store, enhance={"params": {"upscaler": "No Such Upscaler"}})
        await pilot.press("p")
        await settle(pilot, app)
        messages = [n.message for n in app._notifications]
        assert any("No Such Upscaler" in m or "upscaler" in m.lower() for m in messages), messages
        assert not app.current.variants


async def test_quit_with_running_job_asks(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, scan=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        sink = app._new_job("enhance", "Enhance", 3)  # a job that is still running
        await pilot.press("q")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmScreen"
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and type(app.screen).__name__ != "ConfirmScreen"
        sink.finish("done")
        await settle(pilot, app)
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running


async def test_cancel_enhancement_job(tui_dataset, make_tui_app, make_fake_forge):
    from fluxgym_coach.testing.fake_forge import Faults

    server = make_fake_forge(faults=Faults(image_latency=0.4))
    app = make_tui_app(tui_dataset, api_url=server.url)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("b")  # all 6 images: asks first
        await pilot.pause()
        assert "Enhance 6 images" in app.screen.question
        await pilot.press("y")
        await pilot.pause()
        key = app.running_jobs()[0]
        await pilot.pause()
        footer = app.query_one("Footer")
        for job_row in app.query_one(JobsPanel).query("JobRow"):  # each row visible
            assert job_row.region.height == 1 and not job_row.region.overlaps(footer.region)
        for _ in range(200):  # wait until the server works on the batch
            if server.job_requests:
                break
            await pilot.pause(0.02)
        await pilot.press("c")
        await settle(pilot, app)
        assert key not in app.running_jobs()
        assert app.query_one(JobsPanel).jobs[key].status == "cancelled"
        assert sum(1 for r in app.index.rows if r.variants) < 6


async def test_bulk_trigger_prepend(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("slash", "c", "h", "e", "enter")  # chelsea only
        await pilot.press("t")
        await pilot.pause()
        app.screen.query_one("#field-trigger").value = "ohwx"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert (tui_dataset / "chelsea.txt").read_text(encoding="utf-8").startswith("ohwx, ")
        assert (tui_dataset / "coffee.txt").read_text(encoding="utf-8").startswith("ohwx") is False
        # the edit is the core's bulk job: each change recorded as a review decision
        edits = await asyncio.to_thread(lambda: [d for d in feedback.decisions(app.dataset.store)
                                                 if d.decision == feedback.CAPTION_EDIT])
        assert [(d.relpath, d.source, d.params["bulk"]) for d in edits] == [
            ("chelsea.png", "tui", "trigger-first")]
        # search and replace on marked rows only
        await pilot.press("escape")
        app.query_one("#search").value = ""
        await pilot.pause()
        await pilot.press("home", "space")  # mark astronaut (no caption): unchanged
        await pilot.press("w")
        await pilot.pause()
        app.screen.query_one("#field-find").value = "ohwx"
        app.screen.query_one("#field-replace").value = "sks"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert (tui_dataset / "chelsea.txt").read_text(encoding="utf-8").startswith("ohwx, ")
        assert not (tui_dataset / "astronaut.txt").exists()


async def test_quit_and_reopen_restores_state(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("down", "p")
        await settle(pilot, app)
        await pilot.press("a", "x", "o")  # accept camera, reject chelsea (each moves on), sort by size
        await pilot.press("f", "f", "f", "f")  # filter: accepted
        assert [r.relpath for r in app.index.view] == ["camera.png"]
        await pilot.press("q")
        await pilot.pause()
    app2 = make_tui_app(tui_dataset)
    async with app2.run_test(size=SIZE) as pilot:
        await settle(pilot, app2)
        assert app2.index.filter == "accepted" and app2.index.sort == "size"
        assert app2.current.relpath == "camera.png"
        assert app2.current.status == ACCEPTED and app2.current.selected_variant
        assert app2.index.by_relpath["chelsea.png"].status == REJECTED
        assert app2.query_one(Preview).border_title.startswith("After")


async def test_export_from_the_ui(tui_dataset, make_tui_app, tmp_path):
    out = tmp_path / "fluxgym"
    app = make_tui_app(tui_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("down", "p")
        await settle(pilot, app)
        await pilot.press("a")
        await pilot.press("ctrl+e")
        await pilot.pause()
        form = app.screen
        form.query_one("#field-out_dir").value = str(out)
        form.query_one("#field-name").value = "mylora"
        form.query_one("#field-trigger").value = "ohwx"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
        assert files, "export wrote nothing"
        captions = list((out / "datasets" / "mylora").glob("*.txt"))
        assert len(captions) == 6
        assert all(p.read_text(encoding="utf-8").startswith("ohwx") for p in captions)
        assert list(out.rglob("dataset.toml"))
        # a second export into the same folder without overwrite is refused, with the reason
        await pilot.press("ctrl+e")
        await pilot.pause()
        assert app.screen.query_one("#field-out_dir").value == str(out)  # remembered
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert any("export stopped" in n.message for n in app._notifications)
    assert Dataset(tui_dataset).store.selection()["camera.png"][1] == "accepted"


async def test_whole_review_flow_in_one_session_against_fake_forge(tui_dataset, make_tui_app,
                                                                   fake_forge, tmp_path):
    """The issue's list, in order, in one session: open, filter, edit and save a caption,
    enhance, before/after, accept, reject, reprocess, export, quit; then reopen."""
    out = tmp_path / "export"
    app = make_tui_app(tui_dataset, api_url=fake_forge.url)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        assert app._backend_label() == "forge " + fake_forge.url.split("://")[1]
        await pilot.press("f")  # needs caption
        assert app.current.relpath == "astronaut.png"
        await pilot.press("e")
        app.editor.area.insert("ohwx, astronaut, white suit")
        await pilot.press("ctrl+s", "escape")
        assert (tui_dataset / "astronaut.txt").read_text(encoding="utf-8") == "ohwx, astronaut, white suit"
        await pilot.press("f", "f", "f", "f", "f", "f", "f")  # back to all images
        assert app.index.filter == "all"
        await pilot.press("home", "p")
        await settle(pilot, app)
        row = app.current
        assert row.relpath == "astronaut.png" and row.variants
        assert fake_forge.images_processed >= 1
        await pilot.press("v", "v")
        await settle(pilot, app)
        await pilot.press("r")
        await pilot.pause()
        app.screen.query_one("#field-scale_factor").value = "3"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert len(row.variants) == 2 and (row.variants[0].width, row.variants[0].height) == (1536, 1536)
        await pilot.press("a")
        accepted_key = row.variants[0].cache_key
        await pilot.press("x")  # a moved on to camera.png: reject it
        await pilot.press("ctrl+e")
        await pilot.pause()
        app.screen.query_one("#field-out_dir").value = str(out)
        app.screen.query_one("#field-name").value = "astro"
        app.screen.query_one("#field-trigger").value = "ohwx"
        app.screen.query_one("#field-only_accepted").value = "y"
        app.screen.query_one("#field-vram").value = "12g"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert "--split_mode" in (out / "outputs" / "astro" / "train.sh").read_text()
        images = sorted(p.name for p in out.rglob("*") if p.suffix in (".png", ".jpg", ".jpeg", ".webp"))
        assert [n.rsplit(".", 1)[0] for n in images] == ["astronaut"], images
        from PIL import Image

        with Image.open(next(out.rglob("astronaut.*g"))) as im:
            assert max(im.size) > 512, "the accepted enhanced variant was exported, not the original"
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running
    app2 = make_tui_app(tui_dataset, api_url=fake_forge.url)
    async with app2.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app2)
        assert app2.current.relpath == "chelsea.png"  # x moved on from camera.png
        astro = app2.index.by_relpath["astronaut.png"]
        assert astro.status == ACCEPTED and astro.selected_variant == accepted_key
        assert app2.index.by_relpath["camera.png"].status == REJECTED
        assert astro.caption == "ohwx, astronaut, white suit"


async def test_server_renamed_upscaler_is_notified(tui_dataset, make_tui_app, fake_forge):
    app = make_tui_app(tui_dataset, api_url=fake_forge.url, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        update_settings(app.dataset.store, enhance={"params": {"upscaler": "r-esrgan 4x+"}})
        await pilot.press("p")
        await settle(pilot, app)
        assert app.current.variants, "the job ran with the server's spelling"
        messages = [n.message for n in app._notifications]
        assert any("is called" in m and "R-ESRGAN 4x+" in m for m in messages), messages


async def test_quit_with_unsaved_caption_asks_and_keeps_the_sidecar(tui_dataset, make_tui_app):
    before = (tui_dataset / "chelsea.txt").read_text(encoding="utf-8")
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("down", "down", "e")
        app.editor.area.insert(" EDITED")
        await pilot.press("escape", "down")  # leave the image: the draft stays
        assert app.index.by_relpath["chelsea.png"].draft is not None
        await pilot.press("up")
        await pilot.pause(0.3)
        await settle(pilot, app)
        assert "EDITED" in app.editor.text and app.editor.dirty
        await pilot.press("q")
        await pilot.pause()
        assert app.screen.id == "quit-question"
        assert "chelsea.png" in str(app.screen.question)
        await pilot.press("y")  # quit, drafts lost
        await pilot.pause()
    assert not app.is_running
    assert (tui_dataset / "chelsea.txt").read_text(encoding="utf-8") == before


async def test_tag_field_shows_proposals_from_the_folder(tui_dataset, make_tui_app):
    for name in ("astronaut", "camera", "chelsea", "coffee"):
        (tui_dataset / f"{name}.txt").write_text(f"ohwx, {name}, studio light", encoding="utf-8")
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("end")  # rocket.jpg, no caption
        await pilot.press("e", "ctrl+t")
        await settle(pilot, app)
        assert "studio light" in app.editor.proposals and "ohwx" in app.editor.proposals
        assert "studio light" in str(app.editor.query_one("#tag-proposals").render())
        await pilot.press("s", "t")
        await settle(pilot, app)
        await pilot.press("right", "enter", "escape", "ctrl+s")
        assert (tui_dataset / "rocket.txt").read_text(encoding="utf-8") == "studio light"
