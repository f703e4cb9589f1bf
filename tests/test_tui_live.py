"""The review's panels stay live (issue 14 items 7, 9, 12): findings follow a change
at once, the list fills while the scan runs, the 80x24 layout keeps every region."""

from __future__ import annotations

import threading

from rich.cells import cell_len

from fluxgym_coach import dataset as dataset_mod
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.store import VariantRecord
from tests.fixtures_tui import settle, wait_until
from tests.helpers_images import photo_like, save

SIZE = (100, 30)


def _codes(row) -> set[str]:
    return {f.code for f in row.findings}


async def test_saving_a_caption_clears_caption_missing_and_leaves_needs_caption(tui_dataset,
                                                                                 make_tui_app):
    app = make_tui_app(tui_dataset)  # scan and audit at start
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.findings_loaded, "the audit")
        await settle(pilot, app)
        assert "caption-missing" in _codes(app.index.by_relpath["astronaut.png"])
        app.set_filter("needs-caption")
        await settle(pilot, app)
        before = len(app.index.view)
        assert app.current.relpath == "astronaut.png"
        await pilot.press("e")
        app.editor.area.insert("an astronaut in a white suit on the moon, holding a flag")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: "caption-missing" not in _codes(
            app.index.by_relpath["astronaut.png"]), "the finding to leave")
        await settle(pilot, app)
        assert len(app.index.view) == before - 1  # the view stops counting it
        assert "astronaut.png" not in {r.relpath for r in app.index.view}
        assert f"{before - 1}/6 needs caption" in app.query_one("#status").plain


async def test_an_accepted_enhanced_variant_is_no_longer_low_resolution(tui_dataset, make_tui_app,
                                                                         tmp_path):
    from fluxgym_coach.tui.app import RowsChanged

    app = make_tui_app(tui_dataset)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.findings_loaded, "the audit")
        await settle(pilot, app)
        rel = "chelsea.png"
        assert "low_resolution" in _codes(app.index.by_relpath[rel])
        app.set_filter("flagged")
        await settle(pilot, app)
        rec = app.dataset.store.image(rel)
        out = tmp_path / "chelsea_x4.png"
        save(photo_like((1804, 1200), seed=3), out)
        app.dataset.store.add_variant(VariantRecord(rel, "k4", rec.digest, "upscale",
                                                    {"scale_factor": 4}, "local", str(out), 1804, 1200))
        app.post_message(RowsChanged([rel], show_latest=True))  # what the enhance job posts
        await settle(pilot, app)
        app.show_relpath(rel)
        await settle(pilot, app)
        await pilot.press("a")
        await wait_until(pilot, lambda: "low_resolution" not in _codes(app.index.by_relpath[rel]),
                         "low_resolution to leave")
        await settle(pilot, app)
        assert not app.index.by_relpath[rel].flagged  # low_resolution was its only flag
        assert rel not in {r.relpath for r in app.index.view}  # it left the "flagged" view


async def test_a_first_open_lists_names_before_the_scan_reads_them(tmp_path, make_tui_app,
                                                                    monkeypatch):
    root = tmp_path / "big"
    names = [f"set{i // 10}/img_{i:02d}.jpg" for i in range(24)]  # threads: under 48 to read
    for i, n in enumerate(names):
        save(photo_like((64 + i, 48), seed=i), root / n)
    release = threading.Event()
    real = dataset_mod._measure_entry

    def held(entry):  # the reads wait until the test has seen the names
        release.wait(30)
        return real(entry)
    monkeypatch.setattr(dataset_mod, "_measure_entry", held)
    app = make_tui_app(root, audit=False)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: len(app.index.view) == len(names), "the names listed")
            rows = app.index.view
            assert [r.relpath for r in rows] == sorted(names)
            assert all(r.record.digest is None for r in rows)  # nothing read yet
            await wait_until(pilot, lambda: all(r.record.width for r in app.index.rows),
                             "the header sizes")
            assert app.index.by_relpath[names[3]].record.width == 67
            line = app.image_list.render_line(0).text
            assert "img_00.jpg" in line and "64x48" in line and "…" in line
            release.set()
            await wait_until(pilot, lambda: all(r.record.digest for r in app.index.rows),
                             "every record read")
            await settle(pilot, app)
            assert "…" not in app.image_list.render_line(0).text
    finally:
        release.set()


async def test_80x24_keeps_every_region_also_after_a_resize(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset)  # scan and audit: two job rows
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.findings_loaded, "the audit")
        await settle(pilot, app)
        await pilot.resize_terminal(80, 24)
        await settle(pilot, app)
        await pilot.press("down", "down")
        await settle(pilot, app)
        status, footer = app.query_one("#status"), app.query_one("Footer")
        preview, info = app.query_one("#preview"), app.query_one("#info")
        caption, main = app.query_one("#caption"), app.query_one("#main")
        assert status.region.y == 0 and status.region.height == 1
        assert footer.region.y == 23 and footer.region.height == 1
        assert preview.region.height >= 9  # at least 7 rows of image inside the border
        assert caption.region.bottom <= main.region.bottom  # its bottom border is on screen
        assert caption.query_one("#caption-area").region.height == 3  # not the tall layout's 6
        assert "-short" in app.screen.classes and "-tall" not in app.screen.classes
        text = status.plain
        assert cell_len(text) <= status.content_region.width and "6/6" in text
        assert not text.endswith("…")


async def test_wide_names_stay_aligned_and_long_paths_keep_folder_and_name(tmp_path, make_tui_app):
    root = tmp_path / "names"
    names = ["猫の写真.png", "🐱cat🐈.png", "plain.png",
             "portraits/2024-summer/holiday/IMG_20240712_183355_final.png"]
    for i, n in enumerate(names):
        save(photo_like((64, 48), seed=i), root / n)
    with Dataset(root) as ds:
        ds.scan()
    app = make_tui_app(root, scan=False, audit=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        lst = app.image_list
        width = lst.scrollable_content_region.width
        lines = [lst.render_line(y).text for y in range(len(names))]
        assert all(cell_len(t) == width for t in lines), lines
        # the caption column starts at the same cell on every row
        cols = {cell_len(t[: t.rindex("none")]) for t in lines}
        assert len(cols) == 1, lines
        long = next(t for t in lines if "portrai" in t)  # the folder's start, then the name's end
        assert "portrai…" in long and "_final.png" in long


async def test_the_last_search_is_kept_across_a_reopen(tui_dataset, make_tui_app):
    from textual.widgets import Input

    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("slash", "a", "s", "t", "r", "o", "enter")
        await settle(pilot, app)
        assert [r.relpath for r in app.index.view] == ["astronaut.png"]
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, "the app to quit")
    app2 = make_tui_app(tui_dataset, scan=False, audit=False)
    async with app2.run_test(size=SIZE) as pilot:
        await settle(pilot, app2)
        field = app2.query_one("#search", Input)
        assert field.value == "astro" and field.has_class("visible")
        assert [r.relpath for r in app2.index.view] == ["astronaut.png"]
        assert "search “astro”" in app2.query_one("#status").plain


async def test_an_interrupted_enhancement_is_named_on_reopen_and_resumed(tui_dataset, make_tui_app):
    import time

    from fluxgym_coach.jobs import Journal
    from fluxgym_coach.tui.live import LAST_JOBS_KEY

    rels = ["astronaut.png", "camera.png", "horse.png"]
    with Dataset(tui_dataset) as ds:  # what an enhancement started in the review leaves after a kill
        ds.scan()
        ds.store.set_setting(LAST_JOBS_KEY, {"enhance": {
            "relpaths": rels, "settings": {"scale_factor": 2.0}, "started_at": time.time()}})
        journal = Journal(ds.store, "enhance-abc", "enhance", {"scale_factor": 2.0}, 3)
        journal.mark("astronaut.png", "done", {})
    app = make_tui_app(tui_dataset, scan=False, audit=False)
    started: list[tuple[list[str], object]] = []
    async with app.run_test(size=SIZE) as pilot:
        app._enhance_worker = lambda sink, relpaths, params: started.append((relpaths, params))
        await settle(pilot, app)
        notes = [n for n in app._notifications if n.title == "interrupted job"]
        assert len(notes) == 1 and "1 of 3 done" in notes[0].message
        titles = {t: cb for t, cb, _ in app.palette_commands()}
        titles["Resume the interrupted enhancement"]()
        await settle(pilot, app)
        assert started and started[0][0] == rels and started[0][1].scale_factor == 2.0
    with Dataset(tui_dataset) as ds:  # once the journal is closed, nothing is offered
        Journal(ds.store, "enhance-abc", "enhance", {}, 3).close("done")
    app2 = make_tui_app(tui_dataset, scan=False, audit=False)
    async with app2.run_test(size=SIZE) as pilot:
        await settle(pilot, app2)
        assert not [n for n in app2._notifications if n.title == "interrupted job"]
        assert "Resume the interrupted enhancement" not in {t for t, _, _ in app2.palette_commands()}
