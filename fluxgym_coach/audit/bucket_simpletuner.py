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
(``tests/data/buckets/make_simpletuner.py``). Not simulated: the random crop
position (``crop_style`` random, SimpleTuner's default, even with ``crop`` off:
the window is reported centred), ``crop_style`` face, ``crop_aspect`` random,
a model's ``MAXIMUM_CANVAS_SIZE`` (None for FLUX), and SimpleTuner's
per-dataset cache of the first target size seen for each rounded aspect (each
size is computed as if it came first; see ``docs/buckets.md``).
"""

from __future__ import annotations

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


def _by_edge(aspect: float, resolution: int, size: tuple[int, int], m: int):
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


def _by_area(aspect: float, megapixels: float, size: tuple[int, int], m: int):
    """``calculate_new_size_by_pixel_area`` (with an empty per-aspect cache): (target, intermediary)."""
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


def simpletuner_placer(s: "BucketSettings") -> Callable[[int, int], Placement]:
    """(w, h) -> :class:`~fluxgym_coach.audit.buckets.Placement` for SimpleTuner.

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

    def target_size(w: int, h: int):
        """``calculate_target_size``: (target, intermediary)."""
        aspect = _aspect(w, h)
        if crop and crop_aspect == "square":
            _, inter = calc(1.0, res, (w, h), m)
            if inter[0] < pixel_res:
                inter = (pixel_res, pixel_res)
            return (pixel_res, pixel_res), inter
        if crop and crop_aspect == "closest":
            aspect = min(s.crop_aspect_buckets, key=lambda b: abs(b - aspect))
        target, inter = calc(aspect, res, (w, h), m)
        if _aspect(*target) == 1.0:
            if inter[0] < pixel_res:
                inter = (pixel_res, pixel_res)
            target = (pixel_res, pixel_res)
        return target, (int(inter[0]), int(inter[1]))

    def before_crop(w: int, h: int, target, inter):
        """``_downsample_before_crop``: the size the crop is cut from."""
        if not downsample:
            return inter
        if area:
            should = w * h != target_area or w < target[0] or h < target[1]
        else:
            should = (w, h) != (pixel_res, pixel_res)
        if not should:
            return inter
        _, got = calc(_aspect(w, h), tds, (w, h), m)
        if got[0] < target[0]:
            got = (target[0], int(got[1] * (target[0] / got[0])))
        elif got[1] < target[1]:
            got = (int(got[0] * (target[1] / got[1])), target[1])
        return got

    def place(w: int, h: int) -> Placement:
        try:
            target, inter = target_size(w, h)
        except ZeroDivisionError:
            raise BucketError(f"{w}x{h}: SimpleTuner divides by zero (aspect rounds to 0)") from None
        if crop:
            resized = before_crop(w, h, target, inter)
        elif target != inter:
            resized = inter
        else:  # resized straight to the target: no crop (the aspect may change)
            return Placement((w, h), target, target, (0, 0))
        if s.crop_style == "corner":
            offset = (0, 0)
        else:  # center; random is reported centred
            offset = (max(0, int((resized[0] - target[0]) / 2)), max(0, int((resized[1] - target[1]) / 2)))
        return Placement((w, h), target, resized, offset)

    return place
