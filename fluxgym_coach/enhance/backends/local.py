"""The embedded default backend: Pillow Lanczos upscaling, no server, no GPU.

It is what runs when no Forge/A1111 server is configured. It upscales by the
item's scale with Lanczos resampling and an optional light unsharp mask. It
cannot colorize: :meth:`LocalBackend.colorize` raises a BackendError saying
that colorization needs a Forge backend, and the pipeline reports it per image.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import PIL

from ... import imaging
from .base import BackendError, EnhanceItem, EnhanceParams, round_scale

COLORIZE_UNSUPPORTED = "colorization needs a Forge backend (run with --api-url URL)"


class LocalBackend:
    """Pillow upscaler implementing :class:`~fluxgym_coach.enhance.backends.base.EnhanceBackend`.

    ``workers``: threads for decoding and resizing (default: CPU count).
    """

    name = "local"
    can_colorize = False
    max_batch = 4
    max_request_bytes = 64 * 1024**2
    concurrency = 1  # one chunk at a time: the chunk's images share the thread pool

    def __init__(self, workers: int | None = None):
        #: What summaries show; ``--backend auto`` adds why it fell back to this one.
        self.label = "Pillow Lanczos resize (no super-resolution model)"
        self.identity = f"local/pillow-{PIL.__version__.split('.')[0]}-lanczos@1"
        self.warnings: list[str] = []
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2,
                                        thread_name_prefix="local-upscale")

    async def check(self, params: EnhanceParams) -> None:
        """Nothing to reach; parameters were validated by EnhanceParams."""

    def cache_params(self, op: str, params: EnhanceParams, item: EnhanceItem) -> dict[str, Any]:
        """Only what changes Pillow's pixels: output size, sharpening, format."""
        w, h = item.target_size()
        return {"op": op, "scale": round_scale(item.scale), "size": [w, h],
                "sharpen": params.sharpen, "format": params.output_format}

    def _upscale_one(self, item: EnhanceItem, params: EnhanceParams) -> bytes:
        rgb = imaging.load_upright_rgb(item.data)
        size = item.target_size()
        out = rgb.resize(size, imaging.Image.Resampling.LANCZOS) if size != rgb.size else rgb
        out = imaging.unsharp(out, params.sharpen)
        return imaging.encode(out, params.output_format)

    async def upscale(self, items: Sequence[EnhanceItem], params: EnhanceParams) -> list[bytes | BackendError]:
        """Upscale each item in a worker thread; a decode failure fills that item's slot."""
        loop = asyncio.get_running_loop()

        async def one(item: EnhanceItem) -> bytes | BackendError:
            try:
                return await loop.run_in_executor(self._pool, self._upscale_one, item, params)
            except imaging.ImageReadError as exc:
                return BackendError(exc.reason)

        return list(await asyncio.gather(*(one(i) for i in items)))

    async def colorize(self, item: EnhanceItem, params: EnhanceParams) -> bytes:
        """Always raises: the embedded backend has no colorization model."""
        raise BackendError(COLORIZE_UNSUPPORTED)

    async def interrupt(self) -> None:
        """Nothing runs remotely; cancellation is handled by the pipeline."""

    async def progress_in_flight(self) -> None:
        """Not tracked: a chunk's images finish together."""
        return None

    async def aclose(self) -> None:
        """Stop the thread pool."""
        self._pool.shutdown(wait=False, cancel_futures=True)
