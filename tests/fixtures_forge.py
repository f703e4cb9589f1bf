"""Fixtures for the Forge backend tests: a real fake Forge server on 127.0.0.1 and small images."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from fluxgym_coach.testing.fake_forge import FakeForge, Faults


@pytest.fixture
def fake_forge() -> Iterator[FakeForge]:
    """A running fake Forge server (Forge dialect, no auth, no latency) on a free port."""
    with FakeForge(faults=Faults()) as server:
        yield server


@pytest.fixture
def make_fake_forge() -> Iterator[Callable[..., FakeForge]]:
    """Factory: ``make_fake_forge(auth=..., dialect=..., faults=...)`` starts another server;
    all are stopped at the end of the test."""
    started: list[FakeForge] = []

    def make(**kwargs) -> FakeForge:
        server = FakeForge(**kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def draw_image(path: Path, size: tuple[int, int], *, gray: bool = False, seed: int = 0) -> Path:
    """Write a small test picture: coloured shapes (or gray ones) on a gradient."""
    w, h = size
    im = Image.new("RGB", size)
    px = im.load()
    for y in range(h):
        for x in range(w):
            v = (x * 255 // max(1, w - 1) + seed * 37) % 256
            px[x, y] = (v, v, v) if gray else (v, (y * 255 // max(1, h - 1)), (seed * 53) % 256)
    d = ImageDraw.Draw(im)
    d.ellipse([w // 4, h // 4, w * 3 // 4, h * 3 // 4], fill=(200, 200, 200) if gray else (220, 30, 40))
    if gray:
        im = im.convert("L")
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


@pytest.fixture
def small_images(tmp_path) -> list[Path]:
    """Five small PNGs in ``tmp_path/in``: four in colour of assorted sizes, one grayscale."""
    folder = tmp_path / "in"
    sizes = [(40, 30), (33, 47), (64, 64), (50, 21)]
    paths = [draw_image(folder / f"c{i}.png", s, seed=i) for i, s in enumerate(sizes)]
    paths.append(draw_image(folder / "bw.png", (36, 28), gray=True))
    return paths
