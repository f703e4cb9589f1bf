"""The realesrgan backend on the CPU: every bundled model on a real photo, tiling, cancel and resume.

Runs the real ncnn engine (ncnn's CPU path, gpu -1). Skipped where the engine
cannot start (libvulkan1 / libomp5 missing: .ci/run installs them).
"""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fluxgym_coach import imaging
from fluxgym_coach.enhance.backends.base import BackendError, EnhanceItem, EnhanceParams
from fluxgym_coach.enhance.backends.realesrgan import MODELS, RealesrganBackend, probe, resolve_model
from fluxgym_coach.enhance.backends.superres import TILE_PAD, upscale_tiled
from fluxgym_coach.events import InFlightProgress
from fluxgym_coach.cache import ImageCache
from fluxgym_coach.enhance.job import Source, run_enhance
from fluxgym_coach.store import Store

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "dataset"
ENGINE = probe()
needs_engine = pytest.mark.skipif(not ENGINE.ok, reason=f"Real-ESRGAN engine unavailable: {ENGINE.reason}")


def chelsea_crop(box=(150, 60, 230, 124)) -> Image.Image:
    """The cat's eye and fur from examples/dataset/chelsea.png (small, so CPU time stays low)."""
    return Image.open(EXAMPLES / "chelsea.png").convert("RGB").crop(box)


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def item_of(im: Image.Image, scale: float, name: str = "chelsea-crop.png") -> EnhanceItem:
    data = png(im)
    return EnhanceItem(name, data, imaging.digest_bytes(data), im.width, im.height, scale)


def test_tiles_with_padding_give_the_same_pixels_as_one_pass():
    # a pixel-local "model" (nearest-neighbour x3): tiling must not change a single pixel
    rgb = np.asarray(chelsea_crop((0, 0, 101, 77)))

    def nearest(tile):
        return tile.repeat(3, axis=0).repeat(3, axis=1)

    seen = []
    tiled = upscale_tiled(rgb, 3, 32, nearest, on_tile=lambda d, t: seen.append((d, t)))
    assert tiled.shape == (77 * 3, 101 * 3, 3)
    assert np.array_equal(tiled, nearest(rgb))
    assert seen[-1] == (12, 12) and [d for d, _ in seen] == list(range(1, 13))


def test_tiles_get_context_around_them():
    rgb = np.zeros((64, 64, 3), np.uint8)
    shapes = []

    def record(tile):
        shapes.append(tile.shape[:2])
        return tile.repeat(2, axis=0).repeat(2, axis=1)

    upscale_tiled(rgb, 2, 32, record)
    assert shapes[0] == (32 + TILE_PAD, 32 + TILE_PAD)  # a corner tile: padded on two sides


def test_model_names_ours_and_forges():
    assert resolve_model("R-ESRGAN 4x+", 2) == "realesrgan-x4plus"
    assert resolve_model("r-esrgan 4x+ anime6b", 4) == "realesrgan-x4plus-anime"
    assert resolve_model("realesr-animevideov3", 1.5) == "realesr-animevideov3-x2"
    assert resolve_model("realesr-animevideov3", 2.25) == "realesr-animevideov3-x3"
    assert resolve_model("R-ESRGAN AnimeVideo", 3.5) == "realesr-animevideov3-x4"
    with pytest.raises(BackendError, match="realesrgan-x4plus"):
        resolve_model("4x-UltraSharp", 4)


@needs_engine
@pytest.mark.parametrize("model", sorted(MODELS))
def test_each_bundled_model_upscales_a_real_photo_sharper_than_lanczos(model):
    crop = chelsea_crop()
    scale = 2.5  # not a native scale: the model's result is resized to the exact size
    backend = RealesrganBackend(gpu="cpu")

    async def go():
        try:
            params = EnhanceParams(upscaler=model, scale_factor=scale)
            await backend.check(params)
            return await backend.upscale([item_of(crop, scale)], params)
        finally:
            await backend.aclose()

    [result] = asyncio.run(go())
    assert isinstance(result, bytes), result
    out = Image.open(io.BytesIO(result))
    assert out.size == (200, 160) and out.mode == "RGB"
    lanczos = crop.resize(out.size, Image.Resampling.LANCZOS)
    diff = np.abs(np.asarray(out, float) - np.asarray(lanczos, float)).mean()
    assert diff > 2.0  # not a resize in disguise
    # the bench's no-reference sharpness figure (variance of the Laplacian)
    sharp = imaging.laplacian_variance(out.convert("L"))
    assert sharp > 1.5 * imaging.laplacian_variance(lanczos.convert("L"))
    assert backend.models_used == {model} and model in backend.label


@needs_engine
def test_unknown_upscaler_and_unreadable_image_are_clear_errors():
    backend = RealesrganBackend(gpu="cpu")

    async def go():
        try:
            with pytest.raises(BackendError, match="unknown upscaler 'nope'"):
                await backend.check(EnhanceParams(upscaler="nope"))
            bad = EnhanceItem("broken.png", b"not an image", "x", 10, 10, 2.0)
            return await backend.upscale([bad], EnhanceParams(upscaler="realesr-animevideov3"))
        finally:
            await backend.aclose()

    [res] = asyncio.run(go())
    assert isinstance(res, BackendError) and not res.retryable and res.reason


@needs_engine
def test_a_crashed_worker_fails_one_image_and_the_next_one_works():
    backend = RealesrganBackend(gpu="cpu")
    params = EnhanceParams(upscaler="realesr-animevideov3-x2", scale_factor=2)
    small = item_of(chelsea_crop((0, 0, 40, 30)), 2)

    async def go():
        try:
            first = await backend.upscale([small], params)
            backend._worker.proc.kill()  # the native engine dies (driver crash, OOM killer)
            second = await backend.upscale([small], params)
            third = await backend.upscale([small], params)
            return first + second + third
        finally:
            await backend.aclose()

    first, second, third = asyncio.run(go())
    assert isinstance(first, bytes) and isinstance(third, bytes) and first == third
    assert isinstance(second, BackendError) and "worker stopped" in second.reason


class CountingRealesrgan(RealesrganBackend):
    """The real backend; counts tiles and asks for a cancel after ``cancel_after`` of them."""

    def __init__(self, *a, cancel_after=None, on_cancel=None, **kw):
        super().__init__(*a, **kw)
        self.tiles = 0
        self.tiles_at_interrupt: int | None = None
        self.cancel_after, self.on_cancel = cancel_after, on_cancel
        self._lock = threading.Lock()

    def run_tile(self, tile):
        out = super().run_tile(tile)
        with self._lock:
            self.tiles += 1
            if self.cancel_after is not None and self.tiles == self.cancel_after:
                self.on_cancel()
        return out

    async def interrupt(self):
        self.tiles_at_interrupt = self.tiles
        await super().interrupt()


@needs_engine
def test_cancel_stops_within_one_tile_and_the_job_resumes(tmp_path):
    src = tmp_path / "chelsea.png"
    Image.open(EXAMPLES / "chelsea.png").convert("RGB").crop((0, 0, 192, 160)).save(src)
    sources = [Source("chelsea.png", src)]
    params = EnhanceParams(upscaler="realesr-animevideov3-x2", scale_factor=2)
    cache, store = ImageCache(tmp_path / "cache"), Store(tmp_path / "jobs.sqlite")
    progress: list[float] = []

    async def first_run():
        cancel = asyncio.Event()
        loop = asyncio.get_running_loop()
        backend = CountingRealesrgan(gpu="cpu", tile=32, cancel_after=8,
                                     on_cancel=lambda: loop.call_soon_threadsafe(cancel.set))
        try:
            report = await run_enhance(sources, backend, params, cache, store=store, cancel=cancel,
                                       progress_interval=0.02,
                                       on_event=lambda e: isinstance(e, InFlightProgress)
                                       and progress.append(e.items))
        finally:
            await backend.aclose()
        return report, backend

    report, backend = asyncio.run(first_run())
    assert report.cancelled and report.outcomes["chelsea.png"].status == "skipped"
    assert backend.tiles_at_interrupt is not None
    assert backend.tiles <= backend.tiles_at_interrupt + 1 < 30  # 30 tiles in all
    assert progress and all(0 < p < 1 for p in progress)

    async def second_run():
        backend = RealesrganBackend(gpu="cpu", tile=32)
        try:
            return await run_enhance(sources, backend, params, cache, store=store)
        finally:
            await backend.aclose()

    again = asyncio.run(second_run())
    outcome = again.outcomes["chelsea.png"]
    assert not again.cancelled and outcome.status == "enhanced" and outcome.size == (384, 320)
    assert outcome.params["model"] == "realesr-animevideov3-x2"
    store.close()


@needs_engine
def test_ctrl_c_stops_the_engine_within_one_tile_and_the_job_resumes(tmp_path):
    # Ctrl-C under asyncio.run cancels the job's task: the pipeline interrupts the backend
    src = tmp_path / "chelsea.png"
    Image.open(EXAMPLES / "chelsea.png").convert("RGB").crop((0, 0, 160, 128)).save(src)
    sources = [Source("chelsea.png", src)]
    params = EnhanceParams(upscaler="realesr-animevideov3-x2", scale_factor=2)
    cache, store = ImageCache(tmp_path / "cache"), Store(tmp_path / "jobs.sqlite")

    async def interrupted():
        loop = asyncio.get_running_loop()
        job: list[asyncio.Task] = []
        backend = CountingRealesrgan(gpu="cpu", tile=32, cancel_after=5,
                                     on_cancel=lambda: loop.call_soon_threadsafe(job[0].cancel))
        job.append(asyncio.create_task(run_enhance(sources, backend, params, cache, store=store)))
        with pytest.raises(asyncio.CancelledError):
            await job[0]
        await backend.aclose()  # returns once the worker thread is idle
        return backend

    backend = asyncio.run(interrupted())
    assert backend.tiles_at_interrupt is not None
    assert backend.tiles <= backend.tiles_at_interrupt + 1 < 20  # 20 tiles in all

    async def resumed():
        backend = RealesrganBackend(gpu="cpu", tile=32)
        try:
            return await run_enhance(sources, backend, params, cache, store=store)
        finally:
            await backend.aclose()

    outcome = asyncio.run(resumed()).outcomes["chelsea.png"]
    assert outcome.status == "enhanced" and outcome.size == (320, 256)
    store.close()
