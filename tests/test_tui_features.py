"""TUI features beyond the core flow: captioning from the UI, audit findings, help,
the command palette, and the list at 10,000 images."""

from __future__ import annotations

from fluxgym_coach.dataset import Dataset
from fluxgym_coach.settings import update_settings
from fluxgym_coach.store import ImageRecord
from fluxgym_coach.tui.model import ImageIndex
from fluxgym_coach.tui.screens.help import HelpScreen
from tests.fixtures_tui import settle

SIZE = (100, 32)


def _answer_caption_form(app, **values):
    form = app.screen
    assert form.id == "caption-form"
    for name, value in values.items():
        form.query_one(f"#field-{name}").value = value


async def test_generate_description_of_current_image_with_openai_backend(
        tui_dataset, make_tui_app, fake_openai):
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.current.relpath == "astronaut.png" and app.current.needs_caption
        await pilot.press("g")
        await pilot.pause()
        _answer_caption_form(app, backend="openai", url=fake_openai.url,
                             model="fake-vision", mode="overwrite", trigger="ohwx")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        text = (tui_dataset / "astronaut.txt").read_text(encoding="utf-8")
        assert text.startswith("ohwx, ") and len(text) > len("ohwx, ")
        assert fake_openai.chat_requests
        # the list, the editor and the store show the new caption
        assert app.current.caption == text
        assert app.editor.text == text
        # only this image was captioned
        assert not (tui_dataset / "camera.txt").exists()


async def test_generate_captions_for_filtered_set_with_draft_backend(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("f")  # needs caption: 4 images
        assert len(app.index.view) == 4
        before = {p.name: p.read_text() for p in tui_dataset.glob("*.txt")}
        await pilot.press("ctrl+g")
        await pilot.pause()
        _answer_caption_form(app, backend="draft", url="", model="", mode="only-missing",
                             trigger="")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        for name in ("astronaut", "camera", "horse", "rocket"):
            assert (tui_dataset / f"{name}.txt").read_text(encoding="utf-8").strip()
        # existing captions untouched
        assert {n: (tui_dataset / n).read_text() for n in before} == before


async def test_unknown_caption_backend_stays_in_form(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("g")
        await pilot.pause()
        _answer_caption_form(app, backend="nonesuch")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen.id == "caption-form"
        assert "backend" in str(app.screen.query_one("#form-error").render())


async def test_audit_findings_flag_images(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        flagged = [r.relpath for r in app.index.rows if r.flagged]
        assert flagged, "the example photos are below 1024 px: the audit flags them"
        row = app.index.by_relpath[flagged[0]]
        codes = {f.code for f in row.flags()}
        assert codes
        # filter flagged shows exactly those
        app.set_filter("flagged")
        await pilot.pause()
        assert [r.relpath for r in app.index.view] == sorted(flagged)
        # the info panel names the finding
        info = str(app.query_one("#info").render())
        assert any(code in info for code in codes)


async def test_next_unreviewed_skips_reviewed(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("x")  # reject astronaut, move on to camera
        await pilot.press("a")  # accept camera (original)
        await pilot.press("home", "n")
        assert app.current.relpath == "chelsea.png"
        await settle(pilot, app)
        assert Dataset(tui_dataset).store.selection()["camera.png"] == (None, "accepted")


async def test_help_screen_lists_every_bound_key(tui_dataset, make_tui_app):
    from fluxgym_coach.tui.keys import KEYS

    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        # review keys do nothing while the help is open
        await pilot.press("a")
        assert app.current.status == "unreviewed"
        from fluxgym_coach.tui.screens.help import help_table
        from rich.console import Console

        console = Console(width=120, record=True)
        console.print(help_table())
        text = console.export_text()
        for k in KEYS:
            assert k.description[:30] in text
        scroller = app.screen.query_one("VerticalScroll")
        await pilot.press("pagedown")
        await pilot.pause()
        assert scroller.scroll_y > 0, "the help scrolls from the keyboard"
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_runs_an_action(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Filter: enhancement rejected")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.index.filter == "rejected"


def _fake_records(n: int) -> list[ImageRecord]:
    return [ImageRecord(relpath=f"img/{i:05d}.jpg", size=1000 + i, mtime_ns=i, digest=f"{i:032x}",
                        width=512 + i % 700, height=768, format="JPEG", mode="RGB",
                        caption=None if i % 3 else f"photo {i}, tag{i % 17}")
            for i in range(n)]


async def test_ten_thousand_images_open_and_scroll(tmp_path, make_tui_app):
    root = tmp_path / "big"
    root.mkdir()
    ds = Dataset(root)
    ds.store.upsert_images(_fake_records(10_000))
    app = make_tui_app(ds, scan=False, audit=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert len(app.index.view) == 10_000
        await pilot.press("end")
        assert app.current.relpath == "img/09999.jpg"
        assert app.image_list.scroll_offset.y > 9_000
        await pilot.press("pageup", "up")
        assert app.current.relpath < "img/09999.jpg"
        await pilot.press("f")  # needs caption: two thirds
        assert len(app.index.view) == 6_666
        await pilot.press("slash", "1", "2", "3", "4")
        assert all("1234" in r.relpath or "1234" in (r.caption or "") for r in app.index.view)
        assert app.index.view


def test_index_filters_sort_and_targets(tmp_path):
    ds = Dataset(tmp_path)
    ds.store.upsert_images(_fake_records(30))
    ds.store.select_variant("img/00001.jpg", None, "accepted")
    ds.store.select_variant("img/00002.jpg", None, "rejected")
    index = ImageIndex.load(ds)
    counts = index.counts()
    assert counts["all"] == 30 and counts["accepted"] == 1 and counts["rejected"] == 1
    assert counts["unreviewed"] == 28 and counts["needs-caption"] == 20
    index.sort = "size"
    index.apply()
    sides = [r.record.short_side for r in index.view]
    assert sides == sorted(sides, reverse=True)
    index.view[3].marked = True
    assert [r.relpath for r in index.targets()] == [index.view[3].relpath]
    index.query = "tag5"
    index.apply()
    assert {r.relpath for r in index.view} == {"img/00005.jpg", "img/00022.jpg"} - {
        r.relpath for r in index.rows if r.needs_caption}


async def test_plugin_actions_in_palette_run_on_the_view(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False, plugins=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        titles = [t for t, _, _ in app.palette_commands()]
        assert "Plugin notifications" in titles
        assert any(t.startswith("Plugin: Compute vectors") for t in titles)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Compute vectors")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot, app)
        session = app.plugin_session
        assert session.results, "the plugin action ran and returned a result"
        # a result can send the cursor to an image
        app.set_filter("accepted")
        app.show_relpath("horse.png")
        await pilot.pause()
        assert app.current.relpath == "horse.png" and app.index.filter == "all"


async def test_previews_are_decoded_off_the_ui_thread_and_cached(tui_dataset, make_tui_app,
                                                                 monkeypatch):
    import threading

    from fluxgym_coach import imaging

    on_main: list[bool] = []
    real = imaging.thumbnail

    def spy(*args, **kwargs):
        on_main.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(imaging, "thumbnail", spy)
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        for _ in range(3):
            await pilot.press("down")
            await pilot.pause(0.3)
            await settle(pilot, app)
        assert app.query_one("#preview").shown_key.startswith("coffee.png|original")
    assert len(on_main) >= 3 and not any(on_main), "a thumbnail was decoded on the UI thread"
    # reopening finds the thumbnails in the result cache: no decode
    on_main.clear()
    app2 = make_tui_app(tui_dataset, audit=False)
    async with app2.run_test(size=SIZE) as pilot:
        await settle(pilot, app2)
        assert app2.current.relpath == "coffee.png"  # the cursor came back
        await pilot.press("up")
        await pilot.pause(0.3)
        await settle(pilot, app2)
        assert app2.query_one("#preview").shown_key.startswith("chelsea.png|original")
    assert on_main == []


class _MessageLog:
    """Stands in for the app a JobSink posts to: keeps the messages."""

    def __init__(self):
        self.messages = []

    def post_message(self, msg):
        self.messages.append(msg)


def test_job_sink_throttles_ui_updates():
    from fluxgym_coach.events import ItemDone, ItemFailed, JobFinished, JobStarted
    from fluxgym_coach.tui.jobs import JobSink, JobUpdated

    app = _MessageLog()
    sink = JobSink(app, "enhance1", "enhance", "Enhance", interval=3600)
    sink(JobStarted("j", "enhance", 5000))
    for i in range(5000):
        sink(ItemDone("j", f"img{i}.png"))
    sink(ItemFailed("j", "bad.png", "server said no"))
    sink(JobFinished("j", "enhance", "done", 5000, 1))
    assert all(isinstance(m, JobUpdated) for m in app.messages)
    assert len(app.messages) == 2  # the start and the end, nothing per item
    last = app.messages[-1]
    assert (last.progress.done, last.progress.failed, last.progress.status) == (5000, 1, "done")
    assert last.problems == [("bad.png", "server said no", True)]


def test_job_sink_adds_work_done_inside_running_requests():
    from fluxgym_coach.events import InFlightProgress, ItemDone, JobStarted
    from fluxgym_coach.tui.jobs import JobSink

    app = _MessageLog()
    sink = JobSink(app, "enhance1", "enhance", "Enhance", interval=0)
    sink(JobStarted("j", "enhance", 8))
    sink(InFlightProgress("j", 3))  # the server has done 3 of a batch of 8
    shown = [app.messages[-1].progress]
    for i in range(8):  # the batch returns: each finished item replaces in-flight work
        sink(ItemDone("j", f"img{i}.png"))
        shown.append(app.messages[-1].progress)
    totals = [p.done + p.in_flight for p in shown]
    assert totals == [3, 3, 3, 3, 4, 5, 6, 7, 8]  # never backwards
    assert shown[-1].in_flight == 0


async def test_reprocess_form_prefilled_with_learned_defaults(tui_dataset, make_tui_app):
    from fluxgym_coach import feedback

    with Dataset(tui_dataset) as ds:
        ds.scan()
        for rec in ds.images():
            feedback.record_decision(ds.store, feedback.Decision(
                rec.relpath, feedback.ACCEPT, variant=f"k-{rec.relpath}",
                params={"upscaler": "Lanczos", "denoising_strength": 0.3},
                judged={"upscaler": "Lanczos", "denoising_strength": 0.3}, source="cli"))
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await pilot.pause()
        assert app.screen.query_one("#field-upscaler").value == "Lanczos"
        assert "suggested from" in str(app.screen.query_one(".form-note").render())
        # once something ran from the TUI, its values win
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        update_settings(app.dataset.store,
                        enhance={"params": {**app.last_params().to_dict(), "upscaler": "R-ESRGAN 4x+"}})
        await pilot.press("r")
        await pilot.pause()
        assert app.screen.query_one("#field-upscaler").value == "R-ESRGAN 4x+"
        assert "last values used" in str(app.screen.query_one(".form-note").render())


async def test_an_idle_app_draws_nothing(tui_dataset, make_tui_app):
    """No animation while idle (SSH traffic): no screen update once the app rests,
    with the list focused and with the caption editor focused (no cursor blink)."""
    with Dataset(tui_dataset) as ds:
        ds.scan()
    app = make_tui_app(tui_dataset, scan=False, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.pause(0.5)
        frames: list[object] = []
        real = app._display

        def counting(screen, renderable):
            if renderable is not None:
                frames.append(renderable)
            return real(screen, renderable)

        app._display = counting
        await pilot.pause(1.2)
        assert frames == [], f"{len(frames)} updates while idle (list focused)"
        await pilot.press("e")
        await pilot.pause(0.3)
        frames.clear()
        await pilot.pause(1.2)
        assert frames == [], f"{len(frames)} updates while idle (editor focused)"


async def test_click_selects_the_row_under_the_mouse(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        region = app.image_list.content_region
        await pilot.click(offset=(region.x + 3, region.y + 3))  # fourth row
        assert app.current.relpath == "coffee.png"


async def test_preview_off_decodes_nothing(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False, preview="off")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("down")
        await pilot.pause(0.3)
        await settle(pilot, app)
        preview = app.query_one("#preview")
        assert preview.border_title.startswith("Original 512x512")
        assert "preview off" in str(preview.query_one("#preview-text").render())
        assert app.thumbs.decodes == 0


async def test_unreadable_image_is_flagged_and_explained(tui_dataset, make_tui_app):
    (tui_dataset / "aaa_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        row = app.current
        assert row.relpath == "aaa_broken.jpg" and row.flagged
        await pilot.pause(0.3)
        await settle(pilot, app)
        text = str(app.query_one("#preview").query_one("#preview-text").render())
        assert "cannot show this image" in text
        await pilot.press("m")  # next flagged wraps around to the only one
        assert app.current.relpath == "aaa_broken.jpg"
        await pilot.press("p")
        await settle(pilot, app)
        assert any("aaa_broken.jpg" in n.message for n in app._notifications
                   if n.severity == "error")


def _burst(app, text: str, then: str) -> None:
    """Send ``text`` and the key ``then`` as one burst of key events, with no idle wait
    between them: what a terminal delivers for fast typing or a paste."""
    from textual import events

    names = {" ": "space", ",": "comma", ".": "full_stop"}
    for key, char in [*((c if c.isalnum() else names[c], c) for c in text), (then, None)]:
        event = events.Key(key, char)
        event.set_sender(app)
        app._driver.send_message(event)


async def test_keys_typed_in_a_burst_before_ctrl_s_are_all_saved(tui_dataset, make_tui_app):
    """ctrl+s at the end of a burst saves the text typed before it, not the text as it was
    (a priority binding would run before the queued keys reach the editor)."""
    from fluxgym_coach.tui.screens.forms import Field, FormScreen

    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert app.current.relpath == "astronaut.png" and not (tui_dataset / "astronaut.txt").exists()
        await pilot.press("e")
        await pilot.pause()
        _burst(app, "ohwx, a suit", "ctrl+s")
        await settle(pilot, app)
        assert (tui_dataset / "astronaut.txt").read_text(encoding="utf-8") == "ohwx, a suit"
        assert not app.editor.dirty
        # the same in a form
        got = []
        app.push_screen(FormScreen("t", [Field("name", "name", ""), Field("b", "b", "x")]), got.append)
        await pilot.pause()
        assert app.focused is app.screen.query_one("#field-name")  # typing goes to the first field
        _burst(app, "cat toy", "ctrl+s")
        await settle(pilot, app)
        assert got == [{"name": "cat toy", "b": "x"}]


def test_status_line_names_the_server_without_credentials(tui_dataset):
    from fluxgym_coach.tui.app import ReviewApp

    def label(api_url, **kw):
        return ReviewApp(tui_dataset, api_url=api_url, audit=False, plugins=False, **kw)._backend_label()

    assert label(None) == "auto backend"  # the app's default: auto, no server
    assert label(None, backend="local") == "local backend"
    assert label(None, backend="realesrgan") == "realesrgan backend"  # not "local"
    assert label("http://me:secret@gpu-box:7860/") == "forge gpu-box:7860"
    assert label(["http://a:7860", "http://b:7860"]) == "forge a:7860 +1"
