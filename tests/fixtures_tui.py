"""Fixtures for the TUI tests: a clean copy of the example dataset and an app factory."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "dataset"


@pytest.fixture
def tui_dataset(tmp_path) -> Path:
    """A writable copy of ``examples/dataset`` without any project store (6 CC0 photos,
    2 captions: chelsea.txt and coffee.txt)."""
    dst = tmp_path / "dataset"
    shutil.copytree(EXAMPLES, dst, ignore=shutil.ignore_patterns(".fluxgym-coach", "*.md"))
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


@pytest.fixture
def make_tui_app(tmp_path) -> Callable[..., object]:
    """Factory: ``make_tui_app(dataset, **options)`` builds a ReviewApp with the
    half-block renderer, a per-test result cache and no plugins (unless asked)."""
    from fluxgym_coach.tui.app import ReviewApp

    def make(dataset: Path, **options: object) -> ReviewApp:
        options.setdefault("preview", "halfcell")
        options.setdefault("plugins", False)  # test_tui_features turns them on
        options.setdefault("cache_dir", tmp_path / "tui-cache")
        return ReviewApp(dataset, **options)

    return make


async def settle(pilot, app) -> None:
    """Let messages, workers and stored decisions finish (no wall-clock assertion)."""
    import asyncio

    for _ in range(200):  # the panels follow the cursor once it rests (a timer)
        if getattr(app, "_preview_timer", None) is None:
            break
        await pilot.pause(0.05)
    for _ in range(3):
        await pilot.pause()
        await app.workers.wait_for_complete()
        await asyncio.to_thread(app.wait_decisions)
    await pilot.pause()
