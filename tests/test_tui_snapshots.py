"""SVG snapshots of the main screen, the help screen and the parameters form.

The half-block renderer is forced so the preview is the same on every
machine; nothing on these screens depends on time (no ETA, no job running,
cursor blink off). A snapshot is ``app.export_screenshot()`` stored under
``tests/snapshots/``. To accept a change on purpose, run::

    TUI_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_tui_snapshots.py

and review the SVG files (they open in any browser) before committing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from textual.widgets import Input

from fluxgym_coach.dataset import Dataset
from tests.fixtures_tui import settle

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("TUI_UPDATE_SNAPSHOTS") == "1"


def _normalise(svg: str) -> str:
    # Rich names the SVG's CSS classes after a hash of the content; keep them, but
    # drop the random-free title line differences between terminals' font lists.
    return re.sub(r"\s+\n", "\n", svg).strip() + "\n"


def assert_snapshot(app, name: str) -> None:
    for inp in app.screen.query(Input):
        inp.cursor_blink = False
    svg = _normalise(app.export_screenshot(title="fluxgym-coach"))
    path = SNAPSHOTS / f"{name}.svg"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(svg, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"no snapshot {path.name}: run with TUI_UPDATE_SNAPSHOTS=1 and review it")
    expected = path.read_text(encoding="utf-8")
    if svg != expected:
        (SNAPSHOTS / f"{name}.actual.svg").write_text(svg, encoding="utf-8")
        pytest.fail(f"{name}: the screen changed; compare {path.name} with {name}.actual.svg")


@pytest.fixture
def scanned(tui_dataset):
    with Dataset(tui_dataset) as ds:
        ds.scan()
    return tui_dataset


async def _open(make_tui_app, dataset, size):
    app = make_tui_app(dataset, scan=False, audit=False, preview="halfcell")
    return app


@pytest.mark.parametrize("size", [(100, 30), (80, 24)], ids=["100x30", "80x24"])
async def test_main_screen_snapshot(scanned, make_tui_app, size):
    app = make_tui_app(scanned, scan=False, audit=False, preview="halfcell")
    async with app.run_test(size=size) as pilot:
        await settle(pilot, app)
        await pilot.press("down", "down")  # chelsea.png: has a caption
        await pilot.pause(0.3)
        await settle(pilot, app)
        assert app.query_one("#preview").shown_key.startswith("chelsea.png|original")
        assert_snapshot(app, f"main_{size[0]}x{size[1]}")


async def test_help_screen_snapshot(scanned, make_tui_app):
    app = make_tui_app(scanned, scan=False, audit=False, preview="halfcell")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("f1")
        await settle(pilot, app)
        assert_snapshot(app, "help")


async def test_params_form_snapshot(scanned, make_tui_app):
    app = make_tui_app(scanned, scan=False, audit=False, preview="halfcell")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("r")
        await settle(pilot, app)
        assert app.screen.id == "params-form"
        assert_snapshot(app, "params_form")
