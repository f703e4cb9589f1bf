"""SimpleTuner's aspect bucketing for one image size (the ``simpletuner`` profile).

A transcription of bghira/SimpleTuner (commit bc8e6ab7, ``docs/buckets.md``):

* ``simpletuner/helpers/multiaspect/image.py``: ``MultiaspectImage``
  ``calculate_new_size_by_pixel_edge`` (``resolution_type`` pixel),
  ``calculate_new_size_by_pixel_area`` (area), ``_round_to_nearest_multiple``,
  ``calculate_image_aspect_ratio`` (aspect rounded to 2 decimals);
* ``simpletuner/helpers/image_manipulation/training_sample.py``:
  ``TrainingSample._set_resolution``, ``calculate_target_size``,
  ``correct_intermediary_square_size``, ``_should_resize_before_crop``,
  ``_calculate_target_downsample_size``, ``crop`` and ``resize`` (the order:
  resize to the intermediary size, then crop the target size out of it);
* ``simpletuner/helpers/image_manipulation/cropping.py``: centre and corner
  crop offsets.

Golden-tested against rows made by running those three files unchanged
(``tests/data/buckets/make_simpletuner.py``): per size, and whole datasets.

The first-seen size per aspect: in area mode SimpleTuner keeps, per
resolution, the first target size it computed for each rounded target aspect
(``StateTracker`` ``get/set_resolution_by_aspect``, saved as
``aspect_resolution_map-<resolution>.json`` in its output dir and reloaded by
later runs) and gives every later image of that aspect that size.
:class:`AspectMap` is that map; :func:`simpletuner_plan` places a dataset in
a given order with one map. SimpleTuner's own order is not reproducible: the
metadata scan (``MetadataBackend.compute_aspect_ratio_bucket_indices``) takes
the new files from a Python ``set`` of paths (string hashing is randomised
per process) and splits them over ``aspect_bucket_worker_count`` (default 12)
threads; so images whose aspect has more than one candidate size are marked
``order_dependent``. :func:`simpletuner_placer` answers for one size as the
first of its aspect.

The random crop (``crop_style`` random, SimpleTuner's default, also with
``crop`` off when the intermediary size is not the target): offsets are drawn
uniformly from 0 to ``resized - bucket`` per axis; placements are marked
``random_crop`` and report the centre of that range. Not simulated:
``crop_style`` face, ``crop_aspect`` random, a model's ``MAXIMUM_CANVAS_SIZE``
(None for FLUX).
"""

from __future__ import annotations

from dataclasses import replace
from math import sqrt
from typing import TYPE_CHECKING, Callable

from .buckets import BucketError, Placement

if TYPE_CHECKING:  # pragma: no cover
    from .buckets import BucketSettings

#: SimpleTuner's area resolutions (megapixels) it maps to a square pixel area
#: (``TrainingSample._set_resolution``), within 0.05.
_AREA_MAP = {0.25: 512 ** 2, 0.5: 768 ** 2, 1.0: 1024 ** 2, 2.0: 1536 ** 2, 4.0: 2048 ** 2}


def _multiple(value: float, m: int) -> int:
    """``_round_to_nearest_multiple``: Python's round (half to even), at least ``m``."""
    return max(round(value / m) * m, m)


def _aspect(w: float, h: float) -> float:
    return round(w / h, 2)


class AspectMap:
    """SimpleTuner's first target size per (resolution, rounded target aspect).

    ``sizes``: {(megapixels, aspect): (w, h)}; ``stored``: a map SimpleTuner saved
    (``{str(aspect): [w, h]}`` of ``aspect_resolution_map-<resolution>.json``) for
    ``megapixels``, taken as fixed. ``candidates`` collects every fresh size seen per
    key, so :meth:`order_dependent` can tell when another order would pick another."""

    def __init__(self, stored: dict[str, list[int]] | None = None, megapixels: float | None = None):
        self.sizes: dict[tuple[float, float], tuple[int, int]] = {}
        self.candidates: dict[tuple[float, float], set[tuple[int, int]]] = {}
        self.fixed: set[tuple[float, float]] = set()
        self.used: list[tuple[float, float]] = []
        for aspect, wh in (stored or {}).items():
            key = (megapixels, float(aspect))
            self.sizes[key] = (int(wh[0]), int(wh[1]))
            self.fixed.add(key)

    def target(self, megapixels: float, fresh: tuple[int, int]) -> tuple[int, int]:
        """The size an image whose freshly computed target is ``fresh`` gets."""
        key = (megapixels, _aspect(*fresh))
        self.used.append(key)
        self.candidates.setdefault(key, set()).add(fresh)
        return self.sizes.setdefault(key, fresh)

    def order_dependent(self, keys: list[tuple[float, float]]) -> bool:
        """True when one of ``keys`` is not fixed and has more than one candidate size."""
        return any(k not in self.fixed and len(self.candidates.get(k, ())) > 1 for k in keys)


def _by_edge(aspect: float, resolution: int, size: tuple[int, int], m: int, amap: AspectMap | None = None):
    """``calculate_new_size_by_pixel_edge``: (target, intermediary)."""
    w0, h0 = size
    raw = w0 / h0
    if w0 < h0:
        wt = resolution
        ht = int(wt / aspect)
    else:
        ht = resolution
        wt = int(ht * aspect)
    wa, ha = _multiple(wt, m), _multiple(ht, m)
    if raw >= 1.0:
        hi = max(ha, ht)
        wi = int(hi * raw)
        if wi < wa:
            wi = wa
            hi = int(wi / raw)
    else:
        wi = max(wa, wt)
        hi = int(wi / raw)
        if hi < ha:
            hi = ha
            wi = int(hi * raw)
    return (wa, ha), (wi, hi)


def _by_area(aspect: float, megapixels: float, size: tuple[int, int], m: int, amap: AspectMap | None = None):
    """``calculate_new_size_by_pixel_area``: (target, intermediary); the target taken from
    ``amap`` where it already has one for this aspect (none: as if this size came first)."""
    edge = _multiple(int(sqrt(megapixels * 1e6)), m)
    w0, h0 = size
    if aspect == 1.0 and w0 == h0:
        return (edge, edge), (edge, edge)
    wt, ht = _multiple(edge * sqrt(aspect), m), _multiple(edge / sqrt(aspect), m)
    raw = w0 / h0
    if wt < ht:
        wi = wt
        hi = int(wi / raw)
    else:
        hi = ht
        wi = int(hi * raw)
    if amap is not None:  # the intermediary above is from the fresh target, as in SimpleTuner
        wt, ht = amap.target(megapixels, (wt, ht))
    if wt > wi or ht > hi:
        if wt > wi:
            wd = wt - wi
            hd = int(wd / raw)
        else:
            hd = ht - hi
            wd = int(hd * raw)
        hi += hd
        wi += wd
    return (wt, ht), (wi, hi)


def _check(s: "BucketSettings") -> None:
    if s.resolution_type not in ("pixel", "area"):
        raise BucketError(f"resolution_type must be pixel or area, got {s.resolution_type!r}")
    if s.crop_style not in ("center", "corner", "random"):
        raise BucketError(f"crop_style {s.crop_style!r} is not simulated (center, corner, random)")
    if s.crop_aspect not in ("square", "preserve", "closest"):
        raise BucketError(f"crop_aspect {s.crop_aspect!r} is not simulated (square, preserve, closest)")
    if s.crop_aspect == "closest" and s.crop and not s.crop_aspect_buckets:
        raise BucketError("crop_aspect closest needs crop_aspect_buckets (SimpleTuner raises too)")
    if s.resolution <= 0 or s.bucket_reso_steps <= 0:
        raise BucketError("resolution and aspect_bucket_alignment must be positive")


def _offset(style: str, resized: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """The crop offset (x, y): corner 0, center the middle; random: the centre of the
    range SimpleTuner draws it from."""
    if style == "corner":
        return (0, 0)
    return (max(0, int((resized[0] - target[0]) / 2)), max(0, int((resized[1] - target[1]) / 2)))


def simpletuner_placer(s: "BucketSettings", aspect_map: AspectMap | None = None) -> Callable[[int, int], Placement]:
    """(w, h) -> :class:`~fluxgym_coach.audit.buckets.Placement` for SimpleTuner. With
    ``aspect_map`` every call reads and fills that :class:`AspectMap` (sizes met in
    call order); without, each size is placed as the first of its aspect.
    ``s.resolution`` is the pixel edge; with ``resolution_type`` area it means
    ``resolution``^2 pixels (SimpleTuner's ``pixel_area``: ``resolution``^2 / 1e6
    megapixels), and ``maximum_image_size`` / ``target_downsample_size`` are
    pixel edges converted the same way. ``bucket_reso_steps`` is
    ``aspect_bucket_alignment`` (64, which FLUX enforces). ``enable_bucket``
    False means ``crop`` with ``crop_aspect`` square. Raises
    :class:`~fluxgym_coach.audit.buckets.BucketError` for settings not simulated."""
    _check(s)
    m, area = s.bucket_reso_steps, s.resolution_type == "area"
    crop, crop_aspect = (s.crop, s.crop_aspect) if s.enable_bucket else (True, "square")

    def unit(edge: float | None) -> float | None:
        return None if edge is None else (edge * edge / 1e6 if area else edge)

    res = unit(s.resolution)
    calc = _by_area if area else _by_edge
    if area:
        target_area = next((v for k, v in _AREA_MAP.items() if abs(res - k) < 0.05), res * 1e6)
        pixel_res = int(_multiple(sqrt(target_area), m))
    else:
        target_area, pixel_res = res, int(res)
    downsample = crop and s.maximum_image_size and s.target_downsample_size
    tds = unit(s.target_downsample_size)

    def target_size(w: int, h: int, amap: AspectMap):
        """``calculate_target_size``: (target, intermediary)."""
        aspect = _aspect(w, h)
        if crop and crop_aspect == "square":
            _, inter = calc(1.0, res, (w, h), m, amap)
            if inter[0] < pixel_res:
                inter = (pixel_res, pixel_res)
            return (pixel_res, pixel_res), inter
        if crop and crop_aspect == "closest":
            aspect = min(s.crop_aspect_buckets, key=lambda b: abs(b - aspect))
        target, inter = calc(aspect, res, (w, h), m, amap)
        if _aspect(*target) == 1.0:
            if inter[0] < pixel_res:
                inter = (pixel_res, pixel_res)
            target = (pixel_res, pixel_res)
        return target, (int(inter[0]), int(inter[1]))

    def before_crop(w: int, h: int, target, inter, amap: AspectMap):
        """``_downsample_before_crop``: the size the crop is cut from."""
        if not downsample:
            return inter
        if area:
            should = w * h != target_area or w < target[0] or h < target[1]
        else:
            should = (w, h) != (pixel_res, pixel_res)
        if not should:
            return inter
        _, got = calc(_aspect(w, h), tds, (w, h), m, amap)
        if got[0] < target[0]:
            got = (target[0], int(got[1] * (target[0] / got[0])))
        elif got[1] < target[1]:
            got = (int(got[0] * (target[1] / got[1])), target[1])
        return got

    def place(w: int, h: int) -> Placement:
        amap = aspect_map if aspect_map is not None else AspectMap()
        try:
            target, inter = target_size(w, h, amap)
        except ZeroDivisionError:
            raise BucketError(f"{w}x{h}: SimpleTuner divides by zero (aspect rounds to 0)") from None
        if crop:
            resized = before_crop(w, h, target, inter, amap)
        elif target != inter:
            resized = inter
        else:  # resized straight to the target: no crop (the aspect may change)
            return Placement((w, h), target, target, (0, 0))
        return Placement((w, h), target, resized, _offset(s.crop_style, resized, target),
                         random_crop=s.crop_style == "random")

    return place


def simpletuner_plan(sizes: list[tuple[int, int]], s: "BucketSettings",
                     aspect_map: AspectMap | None = None) -> list[Placement | BucketError]:
    """SimpleTuner's placements of a whole dataset whose images it meets in the order of ``sizes``.

    One :class:`AspectMap` (``aspect_map``, e.g. loaded from a saved
    ``aspect_resolution_map-<resolution>.json``, or a new one) serves every size,
    so in area mode each rounded aspect keeps the first target size met.
    Placements whose bucket another order could change are marked
    ``order_dependent`` (SimpleTuner's own order is not reproducible: see the
    module docstring). A size SimpleTuner cannot place gives its
    :class:`~fluxgym_coach.audit.buckets.BucketError` in its slot. Raises
    BucketError for settings not simulated."""
    amap = aspect_map if aspect_map is not None else AspectMap()
    fn = simpletuner_placer(s, amap)
    placed: list[tuple[Placement | BucketError, list]] = []
    for w, h in sizes:
        amap.used = []
        try:
            if w < 1 or h < 1:
                raise BucketError(f"image size {w}x{h} is empty")
            placed.append((fn(w, h), list(amap.used)))
        except BucketError as exc:
            placed.append((exc, []))
    return [replace(p, order_dependent=True) if isinstance(p, Placement) and amap.order_dependent(keys) else p
            for p, keys in placed]
