"""Zero-crop framing: the size each image is exported at and the window it keeps.

The export writes every image at exactly a size kohya keeps unchanged with
``bucket_no_upscale = true`` (both sides multiples of ``bucket_reso_steps``,
area at most ``resolution``^2: kohya's ``BucketManager.select_bucket`` then
sets ``resized = bucket = size``, see :mod:`fluxgym_coach.audit.buckets`). This
module picks that size and the few source pixels the grid forces us to drop.

Size (:func:`zero_crop_bucket`): among ``(bw, bh)`` multiples of ``steps`` with
``bw <= W``, ``bh <= H`` (never upscaled past the source, which is the
enhancer's result when there is one) and ``bw * bh <= resolution^2``, the one
with the best ``area / resolution^2 - 2 * crop``, where ``crop = 1 -
min(ar_bucket / ar_source, ar_source / ar_bucket)`` is the share of the scaled
source cut away. A 3:2 photo at 1024 gets 1216x832 (96 % of 1 MP, 2.6 % cut),
16:9 gets 1344x768 (98 %, 1.5 %).

Window (:func:`choose_window`): subject first. Detected faces (source pixels)
are kept whole with a margin of :data:`FACE_MARGIN` (the fallback drops the
margin first) when their union fits, else the largest face; without faces,
the window with the most gradient energy (a cheap saliency measure) when it
beats the centred one by :data:`SALIENCY_GAIN`; else the centre.
"""

from __future__ import annotations

import math
from typing import Callable
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from .. import imaging

#: A saliency window must hold this much more gradient energy than the centred
#: window to be preferred (flat or symmetric content stays centred).
SALIENCY_GAIN = 1.02

#: Margin kept around a face box (share of its width/height) when the window allows.
FACE_MARGIN = 0.15

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Frame:
    """``bucket`` (w, h): the exported size; ``window``: the source pixels kept
    (left, top, right, bottom; floats), resized to ``bucket``; ``reason``:
    ``"exact"`` (nothing dropped), ``"faces"``, ``"face"`` (largest face only),
    ``"saliency"`` or ``"centre"``."""

    bucket: tuple[int, int]
    window: Box
    reason: str

    @property
    def scale(self) -> float:
        """Exported pixels per source pixel (<= 1)."""
        return self.bucket[0] / (self.window[2] - self.window[0])


def zero_crop_bucket(width: int, height: int, resolution: int, steps: int = 32,
                     exhaustive: bool = False) -> tuple[int, int] | None:
    """The exported size for a ``width`` x ``height`` source (see the module docstring),
    or None when a side is below ``steps`` (no bucket can hold it).

    Only widths from 0.6x to 1.25x the ideal width (the source's aspect at the
    target area) are scored: outside that band the crop alone costs more than
    any area gain (a test checks it against ``exhaustive=True``, which scores
    every width)."""
    max_area = resolution * resolution
    if width < steps or height < steps:
        return None
    ar = width / height
    best: tuple[float, int, tuple[int, int]] | None = None
    top_w = min(width // steps * steps, max_area // steps // steps * steps)
    bw = steps
    if not exhaustive:
        ideal_w = math.sqrt(min(width * height, max_area) * ar)
        bw = max(steps, int(ideal_w * 0.6) // steps * steps)
        top_w = min(top_w, int(ideal_w * 1.25) // steps * steps + steps)
    while bw <= top_w:
        bh_max = min(height // steps * steps, (max_area // bw) // steps * steps)
        if bh_max >= steps:
            ideal = bw / ar
            cands = {bh_max, min(bh_max, max(steps, int(ideal // steps) * steps)),
                     min(bh_max, max(steps, int(math.ceil(ideal / steps)) * steps))}
            for bh in cands:
                a = bw / bh
                crop = 1.0 - min(a / ar, ar / a)
                score = bw * bh / max_area - 2.0 * crop
                key = (score, bw * bh, (bw, bh))
                if best is None or key[:2] > best[:2]:
                    best = key
        bw += steps
    return best[2] if best else None


def _fit_interval(lo: float, hi: float, window: float, limit: float, centred: float) -> float | None:
    """Start of a ``window`` inside [0, limit] that contains [lo, hi], closest to
    ``centred``; None when [lo, hi] is longer than the window."""
    if hi - lo > window + 1e-6:
        return None
    start_min, start_max = max(0.0, hi - window), min(lo, limit - window)
    if start_min > start_max + 1e-6:
        return None
    return min(max(centred, start_min), start_max)


def _place_axis(boxes: Sequence[tuple[float, float]], window: float, limit: float) -> tuple[float, str] | None:
    centred = (limit - window) / 2
    if not boxes:
        return None
    lo, hi = min(b[0] for b in boxes), max(b[1] for b in boxes)
    start = _fit_interval(lo, hi, window, limit, centred)
    if start is not None:
        return start, "faces"
    big = max(boxes, key=lambda b: b[1] - b[0])
    start = _fit_interval(big[0], big[1], window, limit, centred)
    if start is None:  # even one face is larger than the window: centre on it
        start = min(max(0.0, (big[0] + big[1]) / 2 - window / 2), limit - window)
    return start, "face"


def _energy_profiles(im: Image.Image, side: int = 256) -> tuple[np.ndarray, np.ndarray, float]:
    """Column and row sums of gradient magnitude on a small grey copy, and the
    factor from source pixels to that copy."""
    f = min(1.0, side / max(im.size))
    small = im.convert("L")
    if f < 1.0:
        small = small.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.BILINEAR)
    g = np.asarray(small, dtype=np.float32)
    energy = np.zeros_like(g)
    energy[:, 1:] += np.abs(np.diff(g, axis=1))
    energy[1:, :] += np.abs(np.diff(g, axis=0))
    return energy.sum(axis=0), energy.sum(axis=1), small.width / im.width


def _salient_start(profile: np.ndarray, window: float, limit: float, factor: float) -> float | None:
    n = len(profile)
    win = max(1, min(n, int(round(window * factor))))
    if win >= n:
        return None
    sums = np.convolve(profile, np.ones(win, dtype=np.float64), mode="valid")
    centre_i = (n - win) // 2
    best = float(sums.max())
    if best <= sums[centre_i] * SALIENCY_GAIN:
        return None
    ties = np.flatnonzero(sums >= best - 1e-9)
    i = int(ties[np.argmin(np.abs(ties - centre_i))])
    return min(max(0.0, i / factor), limit - window)


def choose_window(im: Image.Image, bucket: tuple[int, int], faces: Sequence[Box] = ()) -> Frame:
    """The source window (subject first) that is resized to ``bucket``.

    ``im`` is the upright source; ``faces`` are boxes in its pixels. The
    window has the bucket's aspect ratio and is as large as the source allows.
    """
    w, h = im.size
    s = max(bucket[0] / w, bucket[1] / h)
    cw, ch = min(w, bucket[0] / s), min(h, bucket[1] / s)
    x0, y0 = (w - cw) / 2, (h - ch) / 2
    if cw >= w - 1e-6 and ch >= h - 1e-6:
        return Frame(bucket, (0.0, 0.0, float(w), float(h)), "exact")
    reason = "centre"
    if faces:
        padded = [(max(0.0, l - FACE_MARGIN * (r - l)), max(0.0, t - FACE_MARGIN * (b - t)),
                   min(w, r + FACE_MARGIN * (r - l)), min(h, b + FACE_MARGIN * (b - t))) for l, t, r, b in faces]
        for axis, size, limit in ((0, cw, w), (1, ch, h)):
            if size >= limit:
                continue
            got = _place_axis([(b[axis], b[axis + 2]) for b in padded], size, limit)
            if got and got[1] != "faces":  # the margin does not fit: try the bare boxes
                bare = _place_axis([(b[axis], b[axis + 2]) for b in faces], size, limit)
                got = bare if bare and bare[1] == "faces" else got
            if got:
                if axis == 0:
                    x0 = got[0]
                else:
                    y0 = got[0]
                reason = got[1]
    else:
        cols, rows, factor = _energy_profiles(im)
        sx = _salient_start(cols, cw, w, factor) if cw < w else None
        sy = _salient_start(rows, ch, h, factor) if ch < h else None
        if sx is not None or sy is not None:
            reason = "saliency"
            x0 = sx if sx is not None else x0
            y0 = sy if sy is not None else y0
    return Frame(bucket, (x0, y0, x0 + cw, y0 + ch), reason)


def render(im: Image.Image, frame: Frame) -> Image.Image:
    """``im`` cut to ``frame.window`` and resized to ``frame.bucket`` in one
    resample (LANCZOS; no resample at all when the window is the whole image at
    the bucket size)."""
    if frame.reason == "exact" and im.size == frame.bucket:
        return im
    return im.resize(frame.bucket, Image.LANCZOS, box=frame.window)


def decode_upright(data: bytes, name: str,
                   bucket_of: Callable[[int, int], tuple[int, int] | None]) -> tuple[Image.Image, tuple[int, int]]:
    """Decode ``data`` upright and RGB, a JPEG at the smallest DCT scale (Pillow's
    ``draft``) that still covers its bucket; returns (image, full upright size).

    ``bucket_of(w, h)`` gives the bucket (or None) of the full upright size.
    The EXIF rotation is done in place (no copy when nothing rotates). Raises
    :class:`~fluxgym_coach.imaging.ImageReadError` naming ``name``."""
    im = imaging.open_image(data, name)
    try:
        orientation = im.getexif().get(0x0112, 1) if im.format in ("JPEG", "PNG", "WEBP", "TIFF") else 1
        turned = orientation in (5, 6, 7, 8)
        full = (im.height, im.width) if turned else im.size
        if im.format == "JPEG":
            bucket = bucket_of(*full)
            if bucket is not None:
                s = max(bucket[0] / full[0], bucket[1] / full[1])
                need = (math.ceil(full[0] * s), math.ceil(full[1] * s))
                im.draft("RGB", (need[1], need[0]) if turned else need)
        im.load()
        if orientation != 1:
            ImageOps.exif_transpose(im, in_place=True)
        return imaging.to_rgb(im), full
    except imaging.ImageReadError:
        raise
    except Exception as exc:
        raise imaging.ImageReadError(name, imaging._explain(exc)) from exc
