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
def one_image(tmp_path) -> Path:
    """A scanned dataset of one photo (``astronaut.png``), for the tests that run the
    TUI in real terminals."""
    from fluxgym_coach.dataset import Dataset

    dst = tmp_path / "dataset"
    dst.mkdir()
    shutil.copy(EXAMPLES / "astronaut.png", dst)
    with Dataset(dst) as ds:
        ds.scan()
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
        options.setdefault("watch_interval", None)  # tests that watch the folder turn it on
        # what `tui` resolves from --backend / FLUXGYM_COACH_BACKEND (conftest: local, the
        # Pillow resize) and --api-url (auto then means forge); the app reads no variable
        options.setdefault("backend", "auto" if options.get("api_url") else "local")
        return ReviewApp(dataset, **options)

    return make


async def settle(pilot, app) -> None:
    """Let messages, workers and stored decisions finish (no wall-clock assertion)."""
    import asyncio

    for _ in range(200):  # the panels follow the cursor once it rests (a timer)
        if getattr(app, "_preview_timer", None) is None:
            break
        await pilot.pause(0.05)
    from textual.worker import WorkerCancelled

    for _ in range(3):
        await pilot.pause()
        for _ in range(50):
            # every worker but the folder watcher (it runs until the app exits)
            busy = [w for w in app.workers if w.group != "watch"]
            if not busy:  # (an empty list would mean "all workers")
                break
            try:
                await app.workers.wait_for_complete(busy)
                break
            except WorkerCancelled:  # an exclusive worker (a preview) replaced: wait for the rest
                await pilot.pause()
        await asyncio.to_thread(app.wait_decisions)
    await pilot.pause()


def burst(app, *keys: object) -> None:
    """Send ``keys`` (Textual key names, single characters, or events such as
    ``events.Paste``) as one burst of
    events with no idle wait between them: what a terminal delivers for fast
    typing, or what SSH batches into one packet."""
    from textual import events

    names = {" ": "space", ",": "comma", ".": "full_stop", "-": "minus"}
    for key in keys:
        if isinstance(key, events.Event):  # e.g. events.Paste, as the terminal sends it
            event = key
        elif len(key) == 1:
            event = events.Key(key if key.isalnum() else names[key], key)
        else:
            event = events.Key(key, None)
        event.set_sender(app)
        app._driver.send_message(event)


def burst_text(app, text: str) -> None:
    """:func:`burst` of each character of ``text``."""
    burst(app, *text)


async def wait_until(pilot, predicate, what: str, timeout: float = 30.0) -> None:
    """Pause until ``predicate()`` is true; fails naming ``what`` after ``timeout`` s."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
