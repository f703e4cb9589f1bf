"""How much each image is enlarged: the one size decision behind every enhancement job.

:func:`decide_scale` is called by the job planner
(:meth:`fluxgym_coach.enhance.job.EnhanceJob.plan`) for every source, through
:meth:`~fluxgym_coach.enhance.backends.base.EnhanceParams.decide`, before
anything is read or sent, whatever the backend (embedded, Real-ESRGAN,
spandrel, Forge). Three modes, in this order of precedence:

``target_short_side`` (px) set
    the smallest scale (rounded up to 0.25) that brings the shorter side to
    that many pixels (Panoptic's and the plugin's explicit size).
``scale_factor`` set
    that factor for every image (``enhance --scale N``, the TUI's reprocess form).
neither (the default)
    **to the training resolution** (``resolution``, px; the dataset's
    ``resolution`` setting, :data:`DEFAULT_RESOLUTION` without a dataset): the
    scale that gives the image ``resolution`` x ``resolution`` pixels at its own
    aspect ratio (:func:`needed_scale`), rounded up to 0.25. This is an
    *area* rule, not a short-side one, because that is what the export needs:
    the zero-crop export (:func:`fluxgym_coach.export.framing.zero_crop_bucket`)
    writes each image at a bucket of at most ``resolution`` x ``resolution`` pixels
    that is never larger than the image, and kohya's ``bucket_no_upscale``
    bucketing is bounded by the same area; so a 3:2 photo needs about
    1254x836 for its 1216x832 bucket, not a 1024-px short side (1536x1024
    would be enlarged only for the export to shrink it again). An image that
    needs at most :data:`ENOUGH_TOLERANCE` is large enough and kept as it is:
    it holds at least 90 % of the area, so its export is never flagged "below
    resolution" (the export's threshold is 80 %).

Limits (:func:`fluxgym_coach.imaging.check_resize`): in the two target modes
the scale is capped at :data:`~fluxgym_coach.imaging.MAX_UPSCALE` and the
image is flagged (it stays below the target: a larger source is the fix); an
explicit factor beyond it, an aspect ratio beyond
:data:`~fluxgym_coach.imaging.MAX_ASPECT` or an output beyond
:data:`~fluxgym_coach.imaging.MAX_RESIZE_PIXELS` is refused: the image is
failed by name with the fix and never read or sent, so a 10000x10 strip costs
no large allocation.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

from .. import imaging

#: Training resolution (px) used when no dataset says otherwise: Fluxgym's and
#: kohya's default, and :class:`~fluxgym_coach.settings.DatasetSettings`' default.
DEFAULT_RESOLUTION = 1024
#: Largest stretch to its training bucket that still counts as large enough
#: (5 %): the audit's ``Thresholds.upscale_tolerance``. The smallest enlarging
#: step (x1.25) would cost a request for at most 5 % more pixels.
ENOUGH_TOLERANCE = 1.05
#: Start of the reason of an image kept because it is large enough
#: (:meth:`~fluxgym_coach.enhance.results.EnhanceReport.summary_lines` counts them).
LARGE_ENOUGH = "already large enough"
#: Start of the reason of an image refused by the resize limits.
REFUSED = "not enlarged:"
#: In the warning of an image whose scale was capped at the limit.
CAPPED = "(the limit)"


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    """What :func:`decide_scale` decided for one image.

    ``scale``: the factor applied (1.0: not enlarged); ``size``: the output
    (w, h) in px; ``kept``: why it is not enlarged (empty when it is);
    ``warning``: a note for the user (the scale was capped); ``refused``: why
    the resize is refused (the limits, with the fix): such an image is failed
    and nothing is sent."""

    scale: float
    size: tuple[int, int]
    kept: str = ""
    warning: str = ""
    refused: str = ""


def needed_scale(width: int, height: int, resolution: int) -> float:
    """The factor that gives a ``width`` x ``height`` image ``resolution`` x ``resolution``
    pixels at its own aspect ratio (> 1: the image is too small for the export's
    buckets, see the module docstring)."""
    return resolution / math.sqrt(width * height)


def _size(width: int, height: int, scale: float) -> tuple[int, int]:
    """Output size of an upscale, rounded as :meth:`EnhanceItem.target_size` does."""
    return max(1, round(width * scale)), max(1, round(height * scale))


def decide_scale(width: int, height: int, *, scale_factor: float | None = None,
                 target_short_side: int | None = None,
                 resolution: int | None = None) -> ScaleDecision:
    """The scale of a ``width`` x ``height`` (upright px) image (see the module docstring).

    Never raises for an image size: a resize beyond the limits is a decision
    with ``refused`` set. Raises ValueError for a non-positive size."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    warning = ""
    if target_short_side is not None:
        short = min(width, height)
        if short >= target_short_side:
            return ScaleDecision(1.0, (width, height), kept=f"already at the target short side "
                                 f"({short} >= {target_short_side} px): kept")
        needed = target_short_side / short
        goal = f"a {target_short_side}-px short side"
    elif scale_factor is not None:
        if scale_factor <= 1.0:
            return ScaleDecision(1.0, (width, height), kept="scale factor 1 and nothing to colorize")
        needed, goal = float(scale_factor), ""
    else:
        resolution = resolution or DEFAULT_RESOLUTION
        needed = needed_scale(width, height, resolution)
        if needed <= ENOUGH_TOLERANCE:
            share = width * height / resolution ** 2
            held = "at least" if share >= 1 else f"{share:.0%} of"
            return ScaleDecision(1.0, (width, height), kept=f"{LARGE_ENOUGH} for resolution {resolution} "
                                 f"({held} {resolution}x{resolution} pixels): kept")
        goal = f"resolution {resolution} ({resolution}x{resolution} pixels)"
    scale = needed if not goal else imaging.ceil_scale(needed)
    if goal and scale > imaging.MAX_UPSCALE:
        scale = imaging.MAX_UPSCALE
        capped = _size(width, height, scale)
        warning = (f"{width}x{height} needs x{needed:.1f} to reach {goal}; enlarged only "
                   f"x{imaging.MAX_UPSCALE:g} {CAPPED} to {capped[0]}x{capped[1]}, so it stays below "
                   "it: use a larger source image, or leave this one out")
    size = _size(width, height, scale)
    try:
        imaging.check_resize(width, height, *size)
    except imaging.ResizeLimitError as exc:
        return ScaleDecision(scale, size, refused=f"{REFUSED} {exc}")
    return ScaleDecision(scale, size, warning=warning)


__all__ = ["CAPPED", "DEFAULT_RESOLUTION", "ENOUGH_TOLERANCE", "LARGE_ENOUGH", "REFUSED", "ScaleDecision", "decide_scale",
           "needed_scale"]
