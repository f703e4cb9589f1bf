"""Preview thumbnails: made in worker threads, kept in an LRU in memory and in the result cache.

A thumbnail is an upright RGB :class:`PIL.Image.Image` no larger than
``max_side`` px, decoded with JPEG draft mode where possible. Made once, it is
written to the :class:`~fluxgym_coach.cache.ImageCache` under a key of
the source digest and ``{"op": "thumbnail", "max_side": N}``, so reopening a
dataset does not decode the full images again. Nothing here touches Textual;
:meth:`ThumbnailCache.get` is called from thread workers only.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from .. import imaging
from ..cache import ImageCache

THUMBNAIL_BACKEND = "tui-thumbnail@1"


class ThumbnailCache:
    """LRU of thumbnails in memory (``capacity`` images) over the result cache."""

    def __init__(self, cache: ImageCache | None, max_side: int = 384, capacity: int = 64):
        self.cache = cache
        self.max_side = max_side
        self.capacity = capacity
        self._lru: OrderedDict[tuple[str, int], Image.Image] = OrderedDict()
        self._lock = threading.Lock()
        self.decodes = 0  # full decodes done (for tests and the bench)

    def peek(self, key: str) -> Image.Image | None:
        """The thumbnail if it is in memory (cheap; safe on the UI thread)."""
        with self._lock:
            im = self._lru.get((key, self.max_side))
            if im is not None:
                self._lru.move_to_end((key, self.max_side))
            return im

    def get(self, key: str, path: str | Path, digest: str | None = None) -> Image.Image:
        """The thumbnail of the image at ``path`` (``key`` names it in memory,
        ``digest`` in the result cache). Decodes the file when needed: call it
        from a worker thread. Raises :class:`~fluxgym_coach.imaging.ImageReadError`."""
        im = self.peek(key)
        if im is not None:
            return im
        im = self._from_disk_cache(digest)
        if im is None:
            im = imaging.thumbnail(path, self.max_side)
            self.decodes += 1
            self._to_disk_cache(digest, im)
        with self._lock:
            self._lru[(key, self.max_side)] = im
            while len(self._lru) > self.capacity:
                self._lru.popitem(last=False)
        return im

    def _params(self) -> dict[str, object]:
        return {"op": "thumbnail", "max_side": self.max_side}

    def _from_disk_cache(self, digest: str | None) -> Image.Image | None:
        if self.cache is None or not digest:
            return None
        entry = self.cache.get(self.cache.make_key(digest, self._params(), THUMBNAIL_BACKEND))
        if entry is None:
            return None
        try:
            with Image.open(entry.path) as im:
                return im.convert("RGB")
        except OSError:
            return None

    def _to_disk_cache(self, digest: str | None, im: Image.Image) -> None:
        if self.cache is None or not digest:
            return
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=88)
        try:
            self.cache.put(self.cache.make_key(digest, self._params(), THUMBNAIL_BACKEND),
                           buf.getvalue(), ".jpg", {"op": "thumbnail", "max_side": self.max_side})
        except OSError:
            pass  # a read-only cache only costs a decode next time
