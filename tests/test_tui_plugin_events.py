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
