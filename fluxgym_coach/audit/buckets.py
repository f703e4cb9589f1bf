"""What a trainer does to each image: its bucket, the size it resizes to, the crop.

A *profile* reproduces one trainer's aspect-ratio bucketing with the same
integers as the trainer's own code (see ``docs/buckets.md`` for the rules and
the exact sources). :func:`place` answers for one image size; every profile
is golden-tested against tables produced by running the trainer's functions
(``tests/data/buckets/``).

Profiles:

``kohya``
    kohya-ss/sd-scripts, branch ``sd3`` (what Fluxgym installs):
    ``library/model_util.py::make_bucket_resolutions``,
    ``library/train_util.py::BucketManager.select_bucket`` / ``round_to_steps``,
    ``BaseDataset.make_buckets`` (the single-bucket path when ``enable_bucket``
    is off), ``adjust_min_max_bucket_reso_by_steps`` and
    ``trim_and_resize_if_required`` (centred crop; ``random_crop`` is not
    simulated). Defaults from ``library/config_util.py``.
``ai-toolkit``
    ostris/ai-toolkit ``toolkit/buckets.py::get_bucket_for_image_size`` and
    ``toolkit/dataloader_mixins.py::BucketsMixin.setup_buckets`` (``scale`` 1,
    centred crop; ``square_crop`` is ``enable_bucket=False`` here).

``diffusion-pipe``
    tdrussell/diffusion-pipe ``utils/dataset.py`` (``dedup_and_sort``,
    ``DirectoryDataset._find_closest_ar_bucket``, ``ARBucketDataset.cache_latents``),
    ``utils/common.py::round_to_nearest_multiple`` and
    ``models/base.py::convert_crop_and_resize`` (``ImageOps.fit``); images only.

``simpletuner``
    bghira/SimpleTuner ``MultiaspectImage`` and ``TrainingSample`` geometry
    (:mod:`fluxgym_coach.audit.bucket_simpletuner`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable

from ..errors import FluxgymCoachError

TRAINERS = ("kohya", "ai-toolkit", "simpletuner", "diffusion-pipe")
#: Trainers named in the CLI that have no exact simulator yet.
NOT_SIMULATED: tuple[str, ...] = ()


class BucketError(FluxgymCoachError, ValueError):
    """Settings the trainer itself rejects, a trainer we do not simulate, or an
    image the trainer cannot bucket (kohya divides by zero for a bucket height of
    0: a height below ``bucket_reso_steps`` with ``bucket_no_upscale``; a width
    below it gives a bucket width of 0, which kohya accepts and we return as is)."""


@dataclass(frozen=True, slots=True)
class BucketSettings:
    """The dataset settings bucketing depends on (kohya's ``dataset.toml`` keys).

    ``resolution`` is the side of the square training area (pixels);
    ``bucket_reso_steps`` is ai-toolkit's ``bucket_tolerance`` and
    diffusion-pipe's rounding multiple (the model's ``pixels_round_to_multiple``,
    16 for most); ai-toolkit ignores ``bucket_no_upscale`` and the min/max
    limits (it never scales area up). ``min_ar``/``max_ar``/``num_ar_buckets``
    are diffusion-pipe's (it has no defaults; these are its example's).
    ``resolution_type`` (pixel, or area: ``resolution``^2 pixels),
    ``crop``, ``crop_style``, ``crop_aspect``, ``crop_aspect_buckets``,
    ``maximum_image_size`` and ``target_downsample_size`` (pixel edges) are
    SimpleTuner's data backend keys, with its defaults; ``bucket_reso_steps``
    is its ``aspect_bucket_alignment``.
    """

    trainer: str = "kohya"
    resolution: int = 1024
    enable_bucket: bool = True
    bucket_no_upscale: bool = False
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    min_ar: float = 0.5
    max_ar: float = 2.0
    num_ar_buckets: int = 7
    resolution_type: str = "pixel"
    crop: bool = False
    crop_style: str = "random"
    crop_aspect: str = "square"
    crop_aspect_buckets: tuple[float, ...] = ()
    maximum_image_size: int | None = None
    target_downsample_size: int | None = None

    def with_(self, **changes) -> "BucketSettings":
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one image of ``size`` (w, h) ends up.

    ``bucket`` (w, h) is the training size; the image is resized to ``resized``
    (w, h), then ``offset`` (x, y) pixels of the resized image are skipped
    before taking ``bucket``. ``crop`` is that window in source pixels
    (left, top, right, bottom; floats). ``random_crop``: the trainer draws the
    offset at random, uniformly from 0 to :attr:`offset_max` on each axis
    (SimpleTuner's ``crop_style`` random); ``offset`` and ``crop`` are then the
    centre of that range, not what the trainer will cut. ``order_dependent``:
    the bucket depends on the order the trainer meets the dataset's images in
    (SimpleTuner's first-seen size per aspect, see
    :func:`~fluxgym_coach.audit.bucket_simpletuner.simpletuner_plan`).
    """

    size: tuple[int, int]
    bucket: tuple[int, int]
    resized: tuple[int, int]
    offset: tuple[int, int]
    window: tuple[float, float, float, float] | None = None  # trainers that crop the source first
    random_crop: bool = False
    order_dependent: bool = False

    @property
    def always_kept(self) -> tuple[float, float, float, float]:
        """The source-pixel box every possible window keeps: :attr:`crop` for a fixed
        offset; for a random one, the overlap of the windows at offset 0 and at
        :attr:`offset_max` (left > right or top > bottom when they do not overlap)."""
        if not self.random_crop or self.window is not None:
            return self.crop
        sx, sy = self.resized[0] / self.size[0], self.resized[1] / self.size[1]
        mx, my = self.offset_max
        return (mx / sx, my / sy, self.bucket[0] / sx, self.bucket[1] / sy)

    @property
    def offset_max(self) -> tuple[int, int]:
        """The largest offset (x, y) a crop of ``bucket`` out of ``resized`` can have."""
        return (max(0, self.resized[0] - self.bucket[0]), max(0, self.resized[1] - self.bucket[1]))

    @property
    def scale(self) -> float:
        """Resize factor (the larger of the two axes' factors; > 1 is an upscale)."""
        return max(self.resized[0] / self.size[0], self.resized[1] / self.size[1])

    @property
    def crop(self) -> tuple[float, float, float, float]:
        """The kept window in source pixels: (left, top, right, bottom)."""
        if self.window is not None:
            return self.window
        sx, sy = self.resized[0] / self.size[0], self.resized[1] / self.size[1]
        x, y = self.offset
        return (x / sx, y / sy, (x + self.bucket[0]) / sx, (y + self.bucket[1]) / sy)

    @property
    def crop_fraction(self) -> float:
        """Share of the resized image cut away (0 = nothing cropped)."""
        return 1.0 - (self.bucket[0] * self.bucket[1]) / (self.resized[0] * self.resized[1])

    @property
    def unchanged(self) -> bool:
        """True when the trainer neither rescales nor crops this image."""
        return self.resized == self.size and self.bucket == self.size

    def as_json(self) -> dict:
        """A JSON-ready dict: size, bucket, resized, offset, crop (rounded to 0.01 px),
        crop_fraction and scale (6 decimals), ``crop_offset`` ("fixed" or "random");
        with a random crop also ``offset_max`` [x, y] (offsets are drawn from 0 to it)
        and ``crop_range`` (the source-pixel box every possible window lies in); and
        ``order_dependent`` when true."""
        out = {"size": list(self.size), "bucket": list(self.bucket), "resized": list(self.resized),
               "offset": list(self.offset), "crop": [round(v, 2) for v in self.crop],
               "crop_fraction": round(self.crop_fraction, 6), "scale": round(self.scale, 6),
               "crop_offset": "random" if self.random_crop and self.offset_max != (0, 0) else "fixed"}
        if out["crop_offset"] == "random":
            sx, sy = self.resized[0] / self.size[0], self.resized[1] / self.size[1]
            mx, my = self.offset_max
            out["offset_max"] = [mx, my]
            out["crop_range"] = [0.0, 0.0, round((mx + self.bucket[0]) / sx, 2), round((my + self.bucket[1]) / sy, 2)]
        if self.order_dependent:
            out["order_dependent"] = True
        return out


def area_fraction(p: Placement, resolution: int) -> float:
    """Bucket area of ``p`` as a share of ``resolution``^2."""
    return p.bucket[0] * p.bucket[1] / (resolution * resolution)


# --- kohya sd-scripts ---------------------------------------------------------------

def kohya_adjust_limits(s: BucketSettings) -> tuple[int, int]:
    """min/max bucket reso rounded to ``bucket_reso_steps`` (min down, max up) and
    checked against the resolution, as ``adjust_min_max_bucket_reso_by_steps`` does."""
    steps, mn, mx = s.bucket_reso_steps, s.min_bucket_reso, s.max_bucket_reso
    if steps <= 0:
        raise BucketError(f"bucket_reso_steps must be positive, got {steps}")
    if mn % steps:
        mn -= mn % steps
    if mx % steps:
        mx += steps - mx % steps
    if s.resolution < mn:
        raise BucketError(f"min_bucket_reso {mn} is above the resolution {s.resolution} (kohya asserts)")
    if s.resolution > mx:
        raise BucketError(f"max_bucket_reso {mx} is below the resolution {s.resolution} (kohya asserts)")
    return mn, mx


@lru_cache(maxsize=64)
def kohya_bucket_list(resolution: int, min_size: int, max_size: int, steps: int) -> tuple[tuple[int, int], ...]:
    """kohya's predefined buckets for a square ``resolution`` (sorted (w, h) pairs),
    as ``model_util.make_bucket_resolutions`` builds them."""
    max_area = resolution * resolution
    resos = {(int(math.sqrt(max_area) // steps) * steps,) * 2}
    width = min_size
    while width <= max_size:
        height = min(max_size, int((max_area // width) // steps) * steps)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
        width += steps
    return tuple(sorted(resos))


def _cover(w: int, h: int, bucket: tuple[int, int]) -> tuple[int, int]:
    """kohya's cover resize: match height when the image is wider than the bucket."""
    ar = w / h
    scale = bucket[1] / h if ar > bucket[0] / bucket[1] else bucket[0] / w
    return int(w * scale + 0.5), int(h * scale + 0.5)


def _centre_offset(resized: tuple[int, int], bucket: tuple[int, int]) -> tuple[int, int]:
    return (max(0, resized[0] - bucket[0]) // 2, max(0, resized[1] - bucket[1]) // 2)


def _kohya_round(x: float, steps: int) -> int:
    x = int(x + 0.5)
    return x - x % steps


def _kohya_no_upscale(w: int, h: int, max_area: int, steps: int) -> tuple[tuple[int, int], tuple[int, int]]:
    ar = w / h
    if w * h > max_area:
        rw = math.sqrt(max_area * ar)
        rh = max_area / rw
        bw = _kohya_round(rw, steps)
        bh_w = _kohya_round(bw / ar, steps)
        bh = _kohya_round(rh, steps)
        bw_h = _kohya_round(bh * ar, steps)
        if bh_w == 0 or bh == 0:
            raise BucketError(f"{w}x{h}: kohya divides by zero bucketing this aspect ratio")
        if abs(bw / bh_w - ar) < abs(bw_h / bh - ar):
            resized = (bw, int(bw / ar + 0.5))
        else:
            resized = (int(bh * ar + 0.5), bh)
    else:
        resized = (w, h)
    bucket = (resized[0] - resized[0] % steps, resized[1] - resized[1] % steps)
    if bucket[1] == 0:  # kohya's ar_error divides by the bucket height
        raise BucketError(f"{w}x{h}: a height below bucket_reso_steps ({steps}) gives kohya a bucket "
                          f"height of 0 (it fails with ZeroDivisionError); enlarge the image")
    return bucket, resized


def _nearest_ar(ars: tuple[float, ...], ar: float) -> int:
    best, err = 0, abs(ars[0] - ar)
    for i in range(1, len(ars)):
        e = abs(ars[i] - ar)
        if e < err:
            best, err = i, e
    return best


def kohya_placer(s: BucketSettings) -> Callable[[int, int], Placement]:
    """A function (w, h) -> :class:`Placement` for kohya with settings ``s``.

    Raises :class:`BucketError` for settings kohya rejects; the returned function
    raises it for a size kohya cannot bucket."""
    if s.resolution <= 0:
        raise BucketError(f"resolution must be positive, got {s.resolution}")
    if not s.enable_bucket:
        buckets: tuple[tuple[int, int], ...] = ((s.resolution, s.resolution),)
    elif s.bucket_no_upscale:
        kohya_adjust_limits(s)
        max_area, steps = s.resolution * s.resolution, s.bucket_reso_steps

        def place_nu(w: int, h: int) -> Placement:
            bucket, resized = _kohya_no_upscale(w, h, max_area, steps)
            return Placement((w, h), bucket, resized, _centre_offset(resized, bucket))
        return place_nu
    else:
        mn, mx = kohya_adjust_limits(s)
        buckets = kohya_bucket_list(s.resolution, mn, mx, s.bucket_reso_steps)
    known = set(buckets)
    ars = tuple(bw / bh for bw, bh in buckets)

    def place(w: int, h: int) -> Placement:
        bucket = (w, h) if (w, h) in known else buckets[_nearest_ar(ars, w / h)]
        resized = _cover(w, h, bucket)
        return Placement((w, h), bucket, resized, _centre_offset(resized, bucket))
    return place


# --- ai-toolkit ------------------------------------------------------------------------

def _aitk_bucket(w: int, h: int, resolution: int, div: int) -> tuple[int, int]:
    target = min(w * h, resolution * resolution)
    k = (target / (w * h)) ** 0.5
    w_raw, h_raw = w * k / div, h * k / div
    fw, cw, fh, ch = math.floor(w_raw) * div, math.ceil(w_raw) * div, math.floor(h_raw) * div, math.ceil(h_raw) * div
    cands = [(a, b) for a, b in ((fw, fh), (fw, ch), (cw, fh), (cw, ch))
             if a > 0 and b > 0 and a * b <= resolution * resolution]
    if not cands:
        cands = [(max(div, fw), max(div, fh))]
    return min(cands, key=lambda wh: abs(wh[0] * wh[1] - target))


def aitk_placer(s: BucketSettings) -> Callable[[int, int], Placement]:
    """(w, h) -> :class:`Placement` for ai-toolkit (bucketing, or ``square_crop``
    when ``enable_bucket`` is False). ``bucket_reso_steps`` is ``bucket_tolerance``."""
    res, div = s.resolution, s.bucket_reso_steps

    def place(w: int, h: int) -> Placement:
        if not s.enable_bucket:
            f = max(res / w, res / h)
            rw, rh = math.ceil(w * f), math.ceil(h * f)
            off = (int(rw / 2 - res / 2), 0) if w > h else (0, int(rh / 2 - res / 2))
            return Placement((w, h), (res, res), (rw, rh), off)
        bucket = _aitk_bucket(w, h, res, div)
        f = max(bucket[0] / w, bucket[1] / h)
        rw, rh = int(math.ceil(w * f)), int(math.ceil(h * f))
        return Placement((w, h), bucket, (rw, rh), (int((rw - bucket[0]) / 2), int((rh - bucket[1]) / 2)))
    return place


# --- diffusion-pipe --------------------------------------------------------------------

def dpipe_placer(s: BucketSettings) -> Callable[[int, int], Placement]:
    """(w, h) -> :class:`Placement` for diffusion-pipe: aspect buckets
    ``np.geomspace(min_ar, max_ar, num_ar_buckets)`` rounded to 3 decimals
    (``[1.0]`` with ``enable_ar_bucket`` off), the closest in log space; the
    bucket side pair of area ``resolution``^2 at that aspect, each rounded to the
    nearest multiple; then ``ImageOps.fit``: the largest centred source window of
    the bucket's aspect, resized to the bucket."""
    import numpy as np

    if s.enable_bucket:
        raw = np.geomspace(s.min_ar, s.max_ar, num=s.num_ar_buckets)
        ars = np.array(sorted({round(float(x), 3) for x in raw}))
    else:
        ars = np.array([1.0])
    log_ars, m, area = np.log(ars), s.bucket_reso_steps, s.resolution ** 2

    def place(w: int, h: int) -> Placement:
        ar = ars[int(np.argmin(np.abs(np.log(w / h) - log_ars)))]
        bw0 = math.sqrt(area * ar)
        bw, bh = int(round(bw0 / m) * m), int(round(area / bw0 / m) * m)
        if bw <= 0 or bh <= 0:
            raise BucketError(f"{w}x{h}: diffusion-pipe's bucket has a side of 0 at resolution {s.resolution}")
        out, live = bw / bh, w / h
        if live == out:
            cw, ch = float(w), float(h)
        elif live >= out:
            cw, ch = out * h, float(h)
        else:
            cw, ch = float(w), w / out
        left, top = (w - cw) * 0.5, (h - ch) * 0.5
        k = bw / cw
        return Placement((w, h), (bw, bh), (round(w * k), round(h * k)), (round(left * k), round(top * k)),
                         (left, top, left + cw, top + ch))
    return place


def _simpletuner_placer(s: BucketSettings) -> Callable[[int, int], Placement]:
    from .bucket_simpletuner import simpletuner_placer  # it imports this module

    return simpletuner_placer(s)


_PLACERS = {"kohya": kohya_placer, "ai-toolkit": aitk_placer, "diffusion-pipe": dpipe_placer,
            "simpletuner": _simpletuner_placer}


def placer(settings: BucketSettings) -> Callable[[int, int], Placement]:
    """The (w, h) -> :class:`Placement` function of ``settings.trainer``.

    Raises :class:`BucketError` for an unknown or not simulated trainer and for
    settings the trainer rejects."""
    name = settings.trainer
    if name in NOT_SIMULATED:
        raise BucketError(f"{name} has no exact simulator yet: use --trainer kohya, ai-toolkit or diffusion-pipe "
                          "(docs/buckets.md lists its rules)")
    if name not in _PLACERS:
        raise BucketError(f"unknown trainer {name!r}: use one of {', '.join(TRAINERS)}")
    return _PLACERS[name](settings)


def place(size: tuple[int, int], settings: BucketSettings) -> Placement:
    """The :class:`Placement` of one image ``size`` (w, h) under ``settings``.

    Raises :class:`BucketError` (see :func:`placer`), or for a size below 1 px."""
    w, h = size
    if w < 1 or h < 1:
        raise BucketError(f"image size {w}x{h} is empty")
    return placer(settings)(w, h)


def place_many(sizes: list[tuple[int, int]], settings: BucketSettings) -> list[Placement | BucketError]:
    """:func:`place` for many sizes, in order; a size the trainer cannot bucket
    gives its :class:`BucketError` in its slot instead of raising.

    For SimpleTuner the sizes are one dataset, met in this order: each aspect's
    first target size is reused for the later ones
    (:func:`~fluxgym_coach.audit.bucket_simpletuner.simpletuner_plan`); a single
    size is placed as the first of its aspect."""
    if settings.trainer == "simpletuner":
        from .bucket_simpletuner import simpletuner_plan  # it imports this module
        return simpletuner_plan(sizes, settings)
    fn = placer(settings)
    out: list[Placement | BucketError] = []
    for w, h in sizes:
        try:
            if w < 1 or h < 1:
                raise BucketError(f"image size {w}x{h} is empty")
            out.append(fn(w, h))
        except BucketError as exc:
            out.append(exc)
    return out


# --- the crop rectangle (TUI) ---------------------------------------------------------

def crop_rectangle(size: tuple[int, int], settings: BucketSettings) -> tuple[float, float, float, float] | None:
    """The window ``settings.trainer`` keeps of an image of ``size`` (source pixels,
    left, top, right, bottom), for drawing in a preview; None when it cannot bucket it."""
    try:
        return place(size, settings).crop
    except BucketError:
        return None
