"""The TUI's scan tells its plugins about new images (issue 6: events fired by scans)."""

from __future__ import annotations

import asyncio

from fluxgym_coach.store import Store
from tests.fixtures_tui import settle

SIZE = (100, 30)


async def test_tui_scan_fires_import_events_once_plugins_started(tui_dataset, make_tui_app):
    app = make_tui_app(tui_dataset, audit=False, plugins=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        session = app.plugin_session
        assert session.started.is_set()
        await session.project.task_queue.join()  # similarity computes vectors of imported images
        await settle(pilot, app)
        store: Store = app.dataset.store
        digests = {r.digest for r in store.images() if r.digest}
        vectors = {r[0] for r in await asyncio.to_thread(
            store.execute, "SELECT DISTINCT sha1 FROM plugin_vectors")}
        assert digests and vectors == digests


async def test_an_image_first_found_by_a_tui_scan_gets_vectors_through_core_scan(
        tui_dataset, make_tui_app, monkeypatch):
    """F5 runs the core's scan (as the CLI's ``scan`` does), which tells the plugins the app
    runs: a photo added while the review is open gets the similarity plugin's vectors."""
    from PIL import Image

    from fluxgym_coach import core
    from tests.fixtures_tui import wait_until

    calls: list[object] = []
    real_scan = core.scan

    async def spy(dataset, on_event=None, **kw):
        calls.append(kw.get("plugins"))
        return await real_scan(dataset, on_event, **kw)

    monkeypatch.setattr(core, "scan", spy)
    app = make_tui_app(tui_dataset, audit=False, plugins=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        store: Store = app.dataset.store

        async def vectors() -> set[str]:
            return {r[0] for r in await asyncio.to_thread(
                store.execute, "SELECT DISTINCT sha1 FROM plugin_vectors")}

        await app.plugin_session.project.task_queue.join()
        with Image.open(tui_dataset / "chelsea.png") as im:
            im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tui_dataset / "chelsea_flipped.png")
        await pilot.press("f5")
        await wait_until(pilot, lambda: "chelsea_flipped.png" in app.index.by_relpath, "the new row")
        await settle(pilot, app)
        await app.plugin_session.project.task_queue.join()
        new = store.image("chelsea_flipped.png").digest
        assert new in await vectors()
        assert len(calls) == 2 and all(c is not None and c.project is app.plugin_session.project
                                       for c in calls)


async def test_an_image_the_watcher_finds_gets_vectors(tui_dataset, make_tui_app):
    """A photo another program adds while the review is open is stored by the watcher;
    the plugins hear of it through the core's scan, as after F5."""
    from PIL import Image

    from tests.fixtures_tui import wait_until

    app = make_tui_app(tui_dataset, audit=False, plugins=True, watch_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        store: Store = app.dataset.store
        with Image.open(tui_dataset / "horse.png") as im:
            im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tui_dataset / "horse_flipped.png")
        await wait_until(pilot, lambda: "horse_flipped.png" in app.index.by_relpath, "the watcher's row")
        digest = store.image("horse_flipped.png").digest

        def has_vectors() -> bool:
            rows = store.execute("SELECT 1 FROM plugin_vectors WHERE sha1 = ?", (digest,))
            return bool(rows)

        await wait_until(pilot, has_vectors, "the similarity vectors of the new photo")
