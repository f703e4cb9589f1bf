"""Shared fixtures. Each area may add its own fixtures in ``tests/fixtures_<area>.py``;
those modules are loaded automatically (no need to edit this file)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Before any test module imports the CLI: its Rich consoles read these when created, and
# wide enough that a long tmp path (xdist adds popen-gwN) does not wrap a message;
# under pytest-xdist the modules are imported at collection, before any fixture runs.
os.environ["COLUMNS"] = "200"
os.environ["NO_COLOR"] = "1"
# The TUI's status line names the terminal's renderer and colour depth, read from these:
# every test sees the same plain terminal (CI's, a developer's kitty or tmux alike), and
# the tests of terminal detection pass the environment they describe explicitly.
os.environ["TERM"] = "xterm"
for _name in ("COLORTERM", "TERM_PROGRAM", "VTE_VERSION", "XTERM_VERSION", "TMUX", "TMUX_PANE",
              "TEXTUAL_COLOR_SYSTEM", "KITTY_WINDOW_ID", "WT_SESSION"):
    os.environ.pop(_name, None)

TESTS = Path(__file__).parent
REPO = TESTS.parent
EXAMPLES = REPO / "examples" / "dataset"
# the real photos: the six of examples/dataset plus the rest of the CC0 / public-domain
# set (and the Middlebury stereo pair, tests only) in tests/data/real-images
REAL_IMAGES_EXTRA = TESTS / "data" / "real-images"

pytest_plugins = sorted(f"tests.{p.stem}" for p in TESTS.glob("fixtures_*.py"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own result cache, never the user's."""
    monkeypatch.setenv("FLUXGYM_COACH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("NO_COLOR", "1")
    # `prepare --backend auto` runs Real-ESRGAN on the CPU (tens of seconds per run);
    # tests of other things get the Pillow resize. tests/test_upscale_auto.py clears it.
    monkeypatch.setenv("FLUXGYM_COACH_BACKEND", "local")
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def example_dataset(tmp_path) -> Path:
    """A writable copy of ``examples/dataset`` (6 CC0 photos, 2 captions)."""
    dst = tmp_path / "dataset"
    # the README command leaves a store in examples/dataset: never carry it into a test
    shutil.copytree(EXAMPLES, dst, ignore=shutil.ignore_patterns(".fluxgym-coach"))
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


@pytest.fixture(scope="session")
def real_images_dir(tmp_path_factory) -> Path:
    """A read-only view of the 13 real photos (examples/dataset + tests/data/real-images),
    the team's CC0 / public-domain set, copied into the repository (nothing outside it is read)."""
    dst = tmp_path_factory.mktemp("real-images")
    for src in (EXAMPLES, REAL_IMAGES_EXTRA):
        for p in src.iterdir():
            if p.suffix.lower() in {".png", ".jpg", ".jpeg"}:
                shutil.copy(p, dst / p.name)
    return dst


@pytest.fixture
def real_dataset(tmp_path, real_images_dir) -> Path:
    """A writable copy of all 13 real images."""
    dst = tmp_path / "real"
    dst.mkdir()
    for p in real_images_dir.iterdir():
        if p.suffix.lower() in {".png", ".jpg", ".jpeg"}:
            shutil.copy(p, dst / p.name)
            (dst / p.name).chmod(0o644)
    return dst


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker more than the usable CPUs. Many tests wait on a child
    process, a local server or a terminal emulator, so a spare worker keeps the cores
    busy (measured on 2 cores: 215 s with 2 workers, 178 s with 3, 179 s with 4)."""
    return len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) + 1
