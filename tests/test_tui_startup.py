"""The TUI's start-up path (issue 14: first names on screen in under a second).

The first screen needs only what the list draws: importing the app loads no
numpy, pydantic or textual-image (they come with the first image, the first
setting read, the first measure), and a first open lists the first names the
folder walk finds in its first screen, before the plugins load and the scan
starts. The timings are
in ``bench/tui.py --first-names`` (docs/performance.md); nothing here times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from PIL import Image

from tests.fixtures_tui import settle, wait_until

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "pydantic", "textual_image", "multiprocessing")


def _loaded_after(statement: str) -> list[str]:
    """The modules of :data:`HEAVY` that ``statement`` loads in a fresh interpreter
    (stdout a pipe: no terminal, so textual-image's terminal probe is not imported)."""
    code = (f"import sys, json\n{statement}\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_review_app_loads_no_numpy_pydantic_or_textual_image():
    assert _loaded_after("import fluxgym_coach.tui.app") == []


def test_the_heavy_modules_still_come_where_they_are_used():
    # the check above could pass by a module never being needed: these load them
    assert "pydantic" in _loaded_after("from fluxgym_coach.settings import DatasetSettings")
    assert "numpy" in _loaded_after("from fluxgym_coach.audit.measures import read_and_measure")
    assert "textual_image" in _loaded_after("import fluxgym_coach.tui.widgets.renderers")


def test_settings_load_and_update_without_importing_the_models_first(tmp_path):
    from fluxgym_coach import settings
    from fluxgym_coach.store import Store

    with Store(tmp_path / "s.db") as store:
        store.migrate()
        assert settings.load_settings(store).resolution == 1024
        new = settings.update_settings(store, trigger="ohwx", export={"vram": "16G"})
        assert isinstance(new, settings.DatasetSettings)  # the lazily imported class
        assert settings.load_settings(store).export.vram == "16G"
        assert settings.load_settings(store).trigger == "ohwx"


def _make(root: Path, n: int) -> list[str]:
    names = []
    for i in range(n):
        rel = f"sub{i % 2}/img_{i:03d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 6), (i * 20 % 256, 90, 40)).save(root / rel)
        names.append(rel)
    return names


def test_first_images_lists_the_walk_without_reading_or_storing(tmp_path):
    from fluxgym_coach.dataset import Dataset

    root = tmp_path / "ds"
    names = _make(root, 6)
    with Dataset(root) as ds:
        first = ds.first_images(limit=4)
        assert len(first) == 4 and set(first) <= set(names)
        rel = next(iter(first))
        assert first[rel] == {"size": (root / rel).stat().st_size,
                              "mtime_ns": (root / rel).stat().st_mtime_ns}
        assert set(ds.first_images(limit=100)) == set(names)
        assert ds.first_images(limit=0) == {}
        assert ds.store.images() == []  # nothing stored, nothing read


async def test_a_first_open_shows_names_before_the_scan_starts(tmp_path, make_tui_app, monkeypatch):
    from fluxgym_coach.dataset import Dataset

    root = tmp_path / "ds"
    names = _make(root, 5)
    release = threading.Event()
    scanning = threading.Event()
    real_scan = Dataset.scan

    def held_scan(self, *args, **kwargs):  # the scan starts only when the test says so
        scanning.set()
        release.wait(30)
        return real_scan(self, *args, **kwargs)
    monkeypatch.setattr(Dataset, "scan", held_scan)
    app = make_tui_app(root, audit=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: len(app.index.view) == len(names), "the first names")
            assert sorted(r.relpath for r in app.index.view) == sorted(names)
            assert all(r.record.digest is None for r in app.index.rows)  # listed, not read
            assert app.current is not None and app.current.relpath in names
            await wait_until(pilot, scanning.is_set, "the scan started after the names")
            release.set()
            await settle(pilot, app)
            assert all(r.record.digest for r in app.index.rows)  # then read by the scan
            assert len(app.index.rows) == len(names)
    finally:
        release.set()


async def test_a_reopen_lists_the_store_at_once_and_the_preview_mounts_its_image(tmp_path, make_tui_app):
    from fluxgym_coach.dataset import Dataset
    from fluxgym_coach.tui.widgets.preview import Preview

    root = tmp_path / "ds"
    names = _make(root, 3)
    with Dataset(root) as ds:
        ds.scan()
    app = make_tui_app(root, audit=False, scan=False)
    async with app.run_test(size=(100, 30)) as pilot:
        assert sorted(r.relpath for r in app.index.view) == sorted(names)
        preview = app.query_one(Preview)
        await wait_until(pilot, lambda: preview.plain is not None, "the first thumbnail")
        await settle(pilot, app)
        assert preview._image_widget is not None and preview._image_widget.image is preview.plain


def test_the_walk_lists_the_first_folders_first(tmp_path):
    """A first open shows the walk's first names: those a sorted list starts with, not the
    last sub-folder's (``set09/`` before ``set00/`` made the cursor start at the bottom)."""
    from PIL import Image

    from fluxgym_coach.dataset import Dataset

    root = tmp_path / "ds"
    for folder in ("set02", "set00", "set01"):
        for i in range(3):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8)).save(root / folder / f"{i}.png")
    Image.new("RGB", (8, 8)).save(root / "top.png")
    with Dataset(root) as ds:
        assert list(ds.first_images(limit=5)) == ["top.png", "set00/0.png", "set00/1.png",
                                                  "set00/2.png", "set01/0.png"]
