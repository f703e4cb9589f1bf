"""Data safety in the TUI (issue 14, items 1-6): no destructive remembered default,
no silent overwrite of a caption changed on disk, forms that keep every key of a
burst, empty captions, review states that export respects, bulk actions on what is
shown."""

from __future__ import annotations

import json
import os
import socket
import time

from textual import events

from fluxgym_coach.dataset import Dataset
from fluxgym_coach.tui.screens.forms import ChoiceScreen, ConfirmScreen, Field, FormScreen
from tests.fixtures_tui import burst, settle, wait_until

SIZE = (100, 32)


def _fill(app, **values):
    for name, value in values.items():
        app.screen.query_one(f"#field-{name}").value = value


# -- 1. destructive caption mode ---------------------------------------------------------
async def test_overwrite_is_never_the_remembered_default_and_asks_naming_the_count(
        tui_dataset, make_tui_app):
    chelsea = (tui_dataset / "chelsea.txt").read_text(encoding="utf-8")
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("g")  # the single-image form proposes overwrite
        await pilot.pause()
        assert app.screen.query_one("#field-mode").value == "overwrite"
        _fill(app, backend="draft", url="", model="", trigger="")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert (tui_dataset / "astronaut.txt").exists()  # a new caption: nothing to ask
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert app.screen.id == "caption-form"
        assert app.screen.query_one("#field-mode").value == "only-missing"
        _fill(app, mode="overwrite")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        question = app.screen.question
        # chelsea.txt and coffee.txt were written by a person; astronaut's is a draft
        assert "2 captions written or edited by hand" in question
        assert "chelsea.png" in question and "coffee.png" in question
        await pilot.press("n")
        await settle(pilot, app)
        assert (tui_dataset / "chelsea.txt").read_text(encoding="utf-8") == chelsea


# -- 2. changes on disk ----------------------------------------------------------------
async def test_save_after_an_external_edit_shows_both_and_asks(tui_dataset, make_tui_app):
    sidecar = tui_dataset / "chelsea.txt"
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("down", "down")
        await settle(pilot, app)
        assert app.current.relpath == "chelsea.png"
        await pilot.press("e")
        app.editor.area.load_text("mine: a tabby cat")
        await pilot.pause()
        sidecar.write_text("theirs: a cat on a sofa", encoding="utf-8")  # another editor
        os.utime(sidecar, ns=(time.time_ns() + 10**9,) * 2)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceScreen), "the conflict question")
        assert "theirs: a cat on a sofa" in app.screen.question
        assert "mine: a tabby cat" in app.screen.question
        assert sidecar.read_text(encoding="utf-8") == "theirs: a cat on a sofa"  # nothing written yet
        await pilot.press("m")
        await settle(pilot, app)
        assert sidecar.read_text(encoding="utf-8") == "mine: a tabby cat"
        history = app.dataset.store.caption_history("chelsea.png")
        assert history[0]["old_text"] == "theirs: a cat on a sofa"  # their text is not lost
        # "take the one on disk": the editor shows their text and nothing is written
        app.editor.area.load_text("mine again")
        await pilot.pause()
        sidecar.write_text("theirs again", encoding="utf-8")
        os.utime(sidecar, ns=(time.time_ns() + 2 * 10**9,) * 2)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceScreen), "the second question")
        await pilot.press("d")
        await wait_until(pilot, lambda: app.editor.text == "theirs again", "the text on disk")
        assert sidecar.read_text(encoding="utf-8") == "theirs again"
        assert not app.editor.dirty


async def test_the_folder_is_watched_and_changed_rows_refresh(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False, watch_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        (tui_dataset / "coffee.txt").write_text("an espresso cup", encoding="utf-8")
        (tui_dataset / "horse.txt").write_text("a horse in a field", encoding="utf-8")
        await wait_until(pilot, lambda: app.index.by_relpath["coffee.png"].caption == "an espresso cup"
                         and app.index.by_relpath["horse.png"].caption == "a horse in a field",
                         "the watcher to refresh the rows", timeout=30)
        # the editor of the current image follows when it holds no unsaved text
        assert app.current.relpath == "astronaut.png"
        (tui_dataset / "astronaut.txt").write_text("an astronaut", encoding="utf-8")
        await wait_until(pilot, lambda: app.editor.text == "an astronaut", "the editor to follow",
                         timeout=30)
        # one toast per refresh, not one per file
        assert sum("changed on disk" in n.message for n in app._notifications) <= 2


async def test_a_look_that_fails_half_way_is_made_good_by_the_next(tui_dataset, make_tui_app):
    """A look for changes that stored a new caption and then failed (a locked store,
    a vanished file) must not leave the row stale: the next look reloads every row."""
    app = make_tui_app(tui_dataset, audit=False, watch_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        real_scan, failed = app.dataset.scan, []

        def scan_then_fail(*args, **kwargs):
            report = real_scan(*args, **kwargs)
            if report.captions_updated and not failed:
                failed.append(report.captions_updated)
                raise OSError("the store went away after storing the change")
            return report

        app.dataset.scan = scan_then_fail
        (tui_dataset / "coffee.txt").write_text("an espresso cup", encoding="utf-8")
        await wait_until(pilot, lambda: failed, "the look that fails", timeout=30)
        await wait_until(pilot, lambda: app.index.by_relpath["coffee.png"].caption == "an espresso cup",
                         "the next look to reload the row", timeout=30)


async def test_a_second_review_of_the_same_dataset_is_warned(tui_dataset, make_tui_app):
    lock = tui_dataset / ".fluxgym-coach" / "tui.lock"
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert not any("already open" in n.message for n in app._notifications)
    assert not lock.exists()  # removed on exit
    # another live process holds it
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                "started": time.time()}))
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert any("already open in another review" in n.message and str(os.getppid()) in n.message
                   for n in app._notifications)
        assert "also open elsewhere" in str(app.query_one("#status").render())
    assert json.loads(lock.read_text())["pid"] == os.getppid()  # left to its owner


# -- 3. forms --------------------------------------------------------------------------
def _three_field_form(app, got):
    app.push_screen(FormScreen("t", [Field("scale", "scale"), Field("upscaler", "upscaler"),
                                     Field("strength", "strength")]), got.append)


async def test_a_form_keeps_every_key_of_a_burst_in_order(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False, scan=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        for _ in range(3):
            got: list = []
            _three_field_form(app, got)
            await pilot.pause()
            burst(app, "3", "enter", *"Nearest", "enter", *"0.3", "enter")
            await wait_until(pilot, lambda: got, "the form to run")
            assert got == [{"scale": "3", "upscaler": "Nearest", "strength": "0.3"}]
        # a paste between typed keys lands where it was pasted
        got = []
        _three_field_form(app, got)
        await pilot.pause()
        burst(app, "2", "tab", events.Paste("4x-UltraSharp"), "down", *"0.25", "ctrl+s")
        await wait_until(pilot, lambda: got, "the form to run")
        assert got == [{"scale": "2", "upscaler": "4x-UltraSharp", "strength": "0.25"}]
        # the same with the paste posted to the app
        got = []
        _three_field_form(app, got)
        await pilot.pause()
        burst(app, "5", "tab")
        await pilot.pause()
        app.post_message(events.Paste("Lanczos"))
        burst(app, "tab", *"0.5", "enter")
        await wait_until(pilot, lambda: got, "the form to run")
        assert got == [{"scale": "5", "upscaler": "Lanczos", "strength": "0.5"}]


async def test_form_field_navigation_and_escape_asks(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False, scan=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        got: list = []
        _three_field_form(app, got)
        await pilot.pause()
        form = app.screen
        ids = lambda: app.focused.id  # noqa: E731
        await pilot.press("tab")
        assert ids() == "field-upscaler"
        await pilot.press("down")
        assert ids() == "field-strength"
        await pilot.press("up")
        assert ids() == "field-upscaler"
        await pilot.press("shift+tab")
        assert ids() == "field-scale"
        # escape on an untouched form closes it
        await pilot.press("escape")
        await wait_until(pilot, lambda: got == [None], "the form to close")
        # escape after typing asks; n keeps the form and the text
        got.clear()
        _three_field_form(app, got)
        await pilot.pause()
        form = app.screen
        await pilot.press("4")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is form and form.values()["scale"] == "4" and not got
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("y")
        await wait_until(pilot, lambda: got == [None], "the form to close")


# -- 4. empty caption ------------------------------------------------------------------
async def test_an_empty_caption_removes_the_sidecar_and_undo_brings_it_back(tui_dataset,
                                                                         make_tui_app):
    sidecar = tui_dataset / "coffee.txt"
    text = sidecar.read_text(encoding="utf-8")
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.show_relpath("coffee.png")
        await settle(pilot, app)
        await pilot.press("e")
        app.editor.area.load_text("")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert not sidecar.exists()  # never a 0-byte file kohya refuses
        assert app.current.needs_caption
        assert any("caption removed" in n.message for n in app._notifications)
        await pilot.press("escape", "u")
        await settle(pilot, app)
        assert sidecar.read_text(encoding="utf-8") == text


# -- 5. review states ------------------------------------------------------------------
async def test_excluded_images_are_not_exported_and_the_summary_says_why(tui_dataset, make_tui_app,
                                                                         tmp_path):
    (tui_dataset / "aaa_broken.jpg").write_bytes(b"")
    out = tmp_path / "fluxgym"
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.current.relpath == "aaa_broken.jpg"
        await pilot.press("a")  # unreadable: cannot be accepted, the cursor stays
        await settle(pilot, app)
        assert app.current.relpath == "aaa_broken.jpg" and app.current.status == "unreviewed"
        assert any("cannot be accepted" in n.message for n in app._notifications)
        await pilot.press("down", "d")  # astronaut: excluded, moves on to camera
        assert app.current.relpath == "camera.png"
        await pilot.press("x")  # camera: enhancement rejected (original exported), moves on
        assert app.current.relpath == "chelsea.png"
        await settle(pilot, app)
        sel = Dataset(tui_dataset).store.selection()
        assert sel["astronaut.png"] == (None, "excluded") and sel["camera.png"][1] == "rejected"
        await pilot.press("ctrl+e")
        await pilot.pause()
        _fill(app, out_dir=str(out), name="mylora", trigger="ohwx")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        exported = sorted(p.stem for p in (out / "datasets" / "mylora").glob("*.txt"))
        assert exported == ["camera", "chelsea", "coffee", "horse", "rocket"]
        summary = next(n.message for n in app._notifications if n.title == "export done")
        assert "2 skipped: 1 excluded from the export in the review, 1 unreadable (aaa_broken.jpg)" \
            in summary
        # d again puts it back
        app.show_relpath("astronaut.png")
        await pilot.press("d")
        await settle(pilot, app)
        assert Dataset(tui_dataset).store.selection()["astronaut.png"] == (None, "pending")


# -- 6. bulk actions -------------------------------------------------------------------
async def test_bulk_actions_act_on_marked_and_shown_and_name_hidden_marks(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False)
    before = (tui_dataset / "coffee.txt").read_text(encoding="utf-8")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.show_relpath("chelsea.png")
        await pilot.press("space", "space")  # chelsea and coffee marked
        await pilot.press("slash", *"chel", "enter")  # the search hides coffee
        assert [r.relpath for r in app.index.view] == ["chelsea.png"]
        await pilot.press("t")
        await pilot.pause()
        title = app.screen.form_title
        assert "1 marked image" in title and "1 marked image hidden by the filter or search" in title
        _fill(app, trigger="ohwx")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert (tui_dataset / "chelsea.txt").read_text(encoding="utf-8").startswith("ohwx, ")
        assert (tui_dataset / "coffee.txt").read_text(encoding="utf-8") == before
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert "1 marked image" in app.screen.form_title


# -- flow: names, palette, footer, variants, job rows ------------------------------------
def test_names_are_cut_in_the_middle_and_aligned_by_cell_width():
    from rich.cells import cell_len

    from fluxgym_coach.tui.widgets.image_list import _cut_middle, _fit

    long = "portraits/2024-summer/holiday/IMG_20240712_183355_final.jpg"
    cut = _cut_middle(long, 30)
    assert cell_len(cut) == 30 and cut.startswith("portraits") and cut.endswith("_final.jpg")
    for name in ("猫の写真/ねこ.png", "🐱cat🐈.png", "plain.png", "写真" * 20 + ".png"):
        for width in (12, 20, 31):
            assert cell_len(_cut_middle(name, width)) == width, (name, width)
            assert cell_len(_fit(name, width)) == width


async def test_palette_shows_titles_and_keys_and_the_editor_footer_hides_typing_keys(
        tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        helps = {title: help_text for title, _, help_text in app.palette_commands()}
        assert not any(h.startswith("action ") for h in helps.values())
        assert helps["Edit the caption"] == "key e / enter"
        shown = {b.binding.action for b in app.active_bindings.values() if b.binding.show}
        assert "help" in shown
        await pilot.press("e")
        await pilot.pause()
        assert app.focused is app.editor.area
        footer = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
        assert "help" not in footer and "search" not in footer and "quit" not in footer


def test_job_rows_never_read_zero_of_zero():
    from fluxgym_coach.tui.widgets.jobs_panel import JobProgress, progress_text

    assert progress_text(JobProgress("scan1", "scan", "Scan", 0)).startswith("starting")
    done = JobProgress("scan1", "scan", "Scan", 0, status="done")
    assert progress_text(done) == "nothing to do"
    assert progress_text(JobProgress("e1", "enhance", "Enhance", 4, 1)).startswith("1/4")


async def test_save_drafts_and_quit(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("e")
        app.editor.area.insert("an astronaut")
        await pilot.press("escape", "down", "e")
        app.editor.area.insert("a camera man")
        await pilot.press("escape", "q")
        await wait_until(pilot, lambda: app.screen.id == "quit-question", "the quit question")
        assert "2 captions with unsaved edits" in app.screen.question
        await pilot.press("s")
        await wait_until(pilot, lambda: not app.is_running, "the app to quit")
    assert (tui_dataset / "astronaut.txt").read_text(encoding="utf-8") == "an astronaut"
    assert (tui_dataset / "camera.txt").read_text(encoding="utf-8").startswith("a camera man")


async def test_one_notification_per_job_outcome_and_the_problems_log(tui_dataset, make_tui_app):
    from fluxgym_coach.tui.screens.problems import ProblemsScreen

    for i in range(8):
        (tui_dataset / f"broken{i}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        scan_toasts = [n for n in app._notifications if n.title.startswith("Scan")]
        assert len(scan_toasts) == 1, [n.title for n in app._notifications]
        assert "failed" not in scan_toasts[0].title.split(":")[0]  # the scan worked
        assert "8 failed" in scan_toasts[0].title and "l lists them" in scan_toasts[0].message
        await pilot.press("f", "f")  # filters: no toast each
        assert len(app._notifications) == 1
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, ProblemsScreen)
        text = str(app.screen.render_text())
        assert all(f"broken{i}.jpg" in text for i in range(8))
