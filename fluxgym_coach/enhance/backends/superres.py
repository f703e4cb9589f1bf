"""What the super-resolution backends share: tiling, progress, cancellation, the Protocol plumbing.

A super-resolution model upscales by its *native* scale (2, 3 or 4). To give
any requested scale, the image is run through the model once and the result
resized to the exact target size with Lanczos (Pillow). Large images are cut
into tiles so they fit in (V)RAM; each tile is read with a margin of
:data:`TILE_PAD` input pixels on every side and only its centre is kept, so
tile seams do not show (the ``tile`` / ``tile_pad`` scheme of Real-ESRGAN's
``inference_realesrgan.py``, Wang et al., "Real-ESRGAN: Training Real-World
Blind Super-Resolution with Pure Synthetic Data", ICCVW 2021).

Tiling is ours, not the engine's, for two reasons: progress moves per tile
(``progress_in_flight``, polled by the pipeline) and a cancel stops after at
most one tile (the engines cannot stop inside a call).

:class:`SuperResBackend` implements
:class:`~fluxgym_coach.enhance.backends.base.EnhanceBackend` around one method,
:meth:`SuperResBackend.run_tile`, that subclasses provide. Work runs in one
worker thread, never on the event loop; one image per call (``max_batch`` 1).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ...errors import FluxgymCoachError
from ... import imaging
from .base import BackendError, EnhanceItem, EnhanceParams, round_scale

#: Margin in input pixels read around each tile and thrown away after the model.
TILE_PAD = 10
CANCELLED = "cancelled before this image finished"
COLORIZE_UNSUPPORTED = "colorization needs a Forge backend (run with --api-url URL)"


class Stopped(FluxgymCoachError):
    """Raised inside the worker thread when a cancel was asked between two tiles."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One super-resolution model: ``name`` (what summaries and manifests show),
    ``native_scale`` (2, 3 or 4), ``digest`` (xxh3-128 of its weight files) and
    ``files`` (their paths, as strings)."""

    name: str
    native_scale: int
    digest: str
    files: tuple[str, ...] = ()


def tile_boxes(width: int, height: int, tile: int) -> Iterator[tuple[int, int, int, int]]:
    """Boxes ``(left, top, right, bottom)`` (px) covering a ``width`` x ``height``
    image in tiles of at most ``tile`` px per side, row by row."""
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            yield left, top, min(left + tile, width), min(top + tile, height)


def upscale_tiled(rgb: np.ndarray, scale: int, tile: int, run_tile: Callable[[np.ndarray], np.ndarray],
                  on_tile: Callable[[int, int], None] = lambda done, total: None,
                  stop: threading.Event | None = None) -> np.ndarray:
    """Upscale an ``(h, w, 3)`` uint8 array by ``scale`` through ``run_tile``, tile by tile.

    ``run_tile`` maps an ``(th, tw, 3)`` uint8 tile to ``(th*scale, tw*scale, 3)``.
    Each tile is passed with :data:`TILE_PAD` px of context on each side (less at
    the image border) and cropped back. ``on_tile(done, total)`` is called after
    every tile. When ``stop`` is set, raises :class:`Stopped` before the next tile.
    Returns an ``(h*scale, w*scale, 3)`` uint8 array. Raises ValueError when the
    engine returns a tile of the wrong shape.
    """
    h, w = rgb.shape[:2]
    out = np.empty((h * scale, w * scale, 3), dtype=np.uint8)
    boxes = list(tile_boxes(w, h, tile))
    for n, (left, top, right, bottom) in enumerate(boxes):
        if stop is not None and stop.is_set():
            raise Stopped()
        pl, pt = max(0, left - TILE_PAD), max(0, top - TILE_PAD)
        pr, pb = min(w, right + TILE_PAD), min(h, bottom + TILE_PAD)
        res = run_tile(np.ascontiguousarray(rgb[pt:pb, pl:pr]))
        want = ((pb - pt) * scale, (pr - pl) * scale, 3)
        if res.shape != want:
            raise ValueError(f"the model returned a {res.shape} tile for {want}")
        y0, x0 = (top - pt) * scale, (left - pl) * scale
        out[top * scale:bottom * scale, left * scale:right * scale] = \
            res[y0:y0 + (bottom - top) * scale, x0:x0 + (right - left) * scale]
        on_tile(n + 1, len(boxes))
    return out


class SuperResBackend:
    """Base of the embedded super-resolution backends (see the module docstring).

    Subclasses set ``name``, ``identity`` and ``label`` and implement
    :meth:`model_for` (which model an upscale by ``scale`` uses),
    :meth:`run_tile` and optionally :meth:`prepare_model` / :meth:`close_engine`.
    ``tile`` is the tile side in input pixels.
    """

    name = "superres"
    identity = "superres"
    label = "super-resolution"
    device = "cpu"
    can_colorize = False
    max_batch = 1
    max_request_bytes = 256 * 1024**2
    concurrency = 1

    def __init__(self, tile: int = 256):
        self.tile = max(32, int(tile))
        self.warnings: list[str] = []
        #: Models that made the results of this backend's jobs (run now or found cached).
        self.models_used: set[str] = set()
        self._stop = threading.Event()
        self._progress = 0.0
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-upscale")

    # -- what subclasses provide ---------------------------------------------------
    def model_for(self, params: EnhanceParams, scale: float) -> ModelInfo:
        """The model used for ``params.upscaler`` at ``scale``; raises BackendError."""
        raise NotImplementedError

    def prepare_model(self, model: ModelInfo) -> None:
        """Load ``model`` into the engine (blocking, worker thread); raises BackendError."""

    def run_tile(self, tile: np.ndarray) -> np.ndarray:
        """Upscale one ``(h, w, 3)`` uint8 tile by the loaded model's native scale."""
        raise NotImplementedError

    def close_engine(self) -> None:
        """Release the engine (worker process, GPU memory)."""

    # -- EnhanceBackend -------------------------------------------------------------
    async def check(self, params: EnhanceParams) -> None:
        """Fail fast when the upscaler name is unknown; clears an earlier cancel."""
        self._stop.clear()
        self.model_for(params, max(2.0, params.scale_factor or 2.0))

    def cache_params(self, op: str, params: EnhanceParams, item: EnhanceItem) -> dict[str, Any]:
        """Output size, the model (name and weight digest), device kind, tiling, sharpening, format."""
        w, h = item.target_size()
        model = self.model_for(params, item.scale)
        self.models_used.add(model.name)  # cached results too: the summary names their model
        return {"op": op, "scale": round_scale(item.scale), "size": [w, h], "model": model.name,
                "model_digest": model.digest, "device": self.device, "tile": self.tile,
                "sharpen": params.sharpen, "format": params.output_format}

    async def progress_in_flight(self) -> float:
        """Share (0..1) of the running image's tiles done, in items (the pipeline
        polls it and shows it as :class:`~fluxgym_coach.events.InFlightProgress`)."""
        return self._progress

    def _upscale_one(self, item: EnhanceItem, params: EnhanceParams) -> bytes:
        model = self.model_for(params, item.scale)
        self.prepare_model(model)
        self.models_used.add(model.name)
        rgb = np.asarray(imaging.load_upright_rgb(item.data))

        def on_tile(done: int, total: int) -> None:
            self._progress = done / total

        self._progress = 0.0
        try:
            big = upscale_tiled(rgb, model.native_scale, self.tile, self.run_tile, on_tile, self._stop)
        finally:
            self._progress = 0.0
        out = Image.fromarray(big, "RGB")
        size = item.target_size()
        if out.size != size:
            out = out.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        return imaging.encode(imaging.unsharp(out, params.sharpen), params.output_format)

    async def upscale(self, items: Sequence[EnhanceItem], params: EnhanceParams) -> list[bytes | BackendError]:
        """Upscale each item in the worker thread. A cancel leaves the rest as
        retryable BackendErrors (the pipeline keeps them pending)."""
        loop = asyncio.get_running_loop()
        results: list[bytes | BackendError] = []
        for item in items:
            if self._stop.is_set():
                results.append(BackendError(CANCELLED, retryable=True))
                continue
            try:
                results.append(await loop.run_in_executor(self._pool, self._upscale_one, item, params))
            except Stopped:
                results.append(BackendError(CANCELLED, retryable=True))
            except BackendError as exc:
                results.append(exc)
            except imaging.ImageReadError as exc:
                results.append(BackendError(exc.reason))
            except (ValueError, OSError, MemoryError, RuntimeError) as exc:  # RuntimeError: torch (OOM)
                results.append(BackendError(f"{self.label} failed: {exc}"))
        return results

    async def colorize(self, item: EnhanceItem, params: EnhanceParams) -> bytes:
        """Always raises: these models only upscale."""
        raise BackendError(COLORIZE_UNSUPPORTED)

    async def interrupt(self) -> None:
        """Stop after the running tile; the image stays pending."""
        self._stop.set()

    async def aclose(self) -> None:
        """Stop the worker thread (after the running tile) and release the engine. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        await asyncio.get_running_loop().run_in_executor(self._pool, self.close_engine)
        self._pool.shutdown(wait=False, cancel_futures=True)
