"""Per-image audit rules: file, resolution, kohya bucket and quality findings (no I/O).

:func:`image_findings` turns one image's stored record (:mod:`fluxgym_coach.dataset`'s
scan) and its extra measures (:mod:`fluxgym_coach.audit.measures`) into
:class:`~fluxgym_coach.findings.Finding` objects, each compared with a field of
:class:`Thresholds`. Where kohya puts the image comes from the bucket simulator
(:mod:`fluxgym_coach.audit.buckets`, kohya with bucketing at its defaults), the
one bucket rule of the code base; the per-trainer-profile findings (faces cut,
upscales past the enhancer's result, small buckets) are
:mod:`fluxgym_coach.audit.trainer_rules`'. :mod:`fluxgym_coach.audit.rules`
assembles the whole audit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .. import imaging
from ..findings import Finding, Severity
from ..store import ImageRecord
from .buckets import BucketSettings, place
from .measures import ExtraMeasures

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

#: File formats kohya sd-scripts trains on (``IMAGE_EXTENSIONS`` in ``library/train_util.py``).
KOHYA_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "BMP"})
_EXTENSION_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                      ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF"}

@dataclass(slots=True)
class Thresholds:
    """Every audit threshold, with its source.

    * ``blur_variance`` (default 100): an image is blurry when the variance of
      its 4-neighbour Laplacian, measured by the scan on a grayscale copy whose
      long side is 256 px (:data:`fluxgym_coach.imaging.WORK_SIZE`), is below
      this. Published values for the same statistic: 100 (Rosebrock, "Blur
      detection with OpenCV", PyImageSearch 2015) and 150 (fastdup's blur
      flag). On the real images the motion-blurred clock measures 13.3 and the
      sharp photographs 123 (retina, a smooth fundus photo) to 1570
      (motorcycle); 150 would flag the retina, so 100 is kept.
    * ``dark_p99`` (0.32) and ``light_p5`` (0.95): cleanvision's dark/light
      issue. Brightness per pixel is sqrt(0.241 R² + 0.691 G² + 0.068 B²)/255;
      an image is too dark when its 99th percentile is below ``dark_p99``, too
      bright when its 5th percentile is above ``light_p5`` (cleanvision: 1 - p5
      < 0.05). Real images: p99 from 0.54 (Hubble deep field, a dark sky that
      is rightly *not* flagged) to 1.0.
    * ``min_aspect`` (0.35): cleanvision's odd-aspect-ratio issue,
      min(w/h, h/w) < 0.35 (about 1:2.9). kohya's buckets at 64-px steps reach
      1:4 at resolution 1024, but such images lose most of their pixels.
    * ``min_entropy`` (3.0 bits): cleanvision's low-information issue,
      Pillow ``Image.entropy()`` of the RGB image (histogram of all bands) times
      0.1 below 0.3. Real images: 3.17 (horse, a line drawing) to 9.3.
    * ``near_duplicate_distance`` (10 bits of 64): imagededup's default maximum
      Hamming distance for pHash duplicates (cleanvision uses 0, exact hash
      match only). Real images: the motorcycle stereo pair is at 4, unrelated
      photos at 20 or more.
    * ``max_crop`` (0.10): share of the resized image's area that kohya's
      bucket crop may cut before a finding is raised (our choice: Fluxgym
      issues #168/#455 are about centre crops cutting heads off).
    * ``max_upscale`` (4.0): above this upscale factor the finding becomes an
      error: a 4x model (R-ESRGAN 4x+, the seed's default upscaler) invents
      detail beyond that.
    * ``upscale_tolerance`` (1.05): upscaling by at most 5 % is not reported
      (Lanczos handles it without visible loss).
    """

    blur_variance: float = 100.0
    dark_p99: float = 0.32
    light_p5: float = 0.95
    min_aspect: float = 0.35
    min_entropy: float = 3.0
    near_duplicate_distance: int = 10
    max_crop: float = 0.10
    max_upscale: float = 4.0
    upscale_tolerance: float = 1.05

    def to_dict(self) -> dict[str, Any]:
        """The thresholds as a plain dict."""
        return asdict(self)


# ---------------------------------------------------------------------------
# kohya buckets

@dataclass(slots=True, frozen=True)
class Bucket:
    """Where kohya puts an image: ``size`` = the bucket (w, h) in px,
    ``resized`` = the image size after scaling to cover the bucket, ``scale``
    = that scaling factor (> 1 means upscaled), ``crop`` = share of the
    resized area cut off (0..1)."""

    size: tuple[int, int]
    resized: tuple[int, int]
    scale: float
    crop: float


def kohya_bucket(width: int, height: int, resolution: int) -> Bucket:
    """The bucket kohya sd-scripts picks for an upright ``width`` x ``height`` image
    with bucketing at its defaults (``enable_bucket``, upscaling allowed,
    ``min/max_bucket_reso`` 256/1024, steps 64): :func:`fluxgym_coach.audit.buckets.place`
    (``BucketManager.select_bucket``). ``scale`` is kohya's cover factor
    max(bucket_w / w, bucket_h / h). Raises ValueError for non-positive sizes or a
    resolution kohya rejects (below 256 or above 1024 is fine: max_bucket_reso
    is raised to it)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    s = BucketSettings(resolution=resolution, max_bucket_reso=max(1024, resolution))
    p = place((width, height), s)
    scale = max(p.bucket[0] / width, p.bucket[1] / height)
    return Bucket(size=p.bucket, resized=p.resized, scale=scale, crop=max(0.0, p.crop_fraction))


#: Every finding code this module emits, with its category (caption rule codes come in addition).
CODES = {
    "unreadable": "file", "animated": "file", "cmyk": "file", "high_bit_depth": "file",
    "alpha": "file", "exif_rotated": "file", "format_not_trained": "file",
    "extension_mismatch": "file",
    "low_resolution": "resolution", "bucket_crop": "resolution", "odd_aspect": "resolution",
    "trainer_face_cut": "resolution", "trainer_upscale": "resolution", "trainer_small_area": "resolution",
    "blurry": "quality", "too_dark": "quality", "too_bright": "quality", "grayscale": "quality",
    "low_information": "quality",
    "exact_duplicate": "duplicate", "near_duplicate": "duplicate",
    "no_caption": "caption",
}
# Caption rule codes are those of fluxgym_coach.captions.text with a "caption-" prefix.


def category_of(rec: ImageRecord, extra: ExtraMeasures | None, small_below: int = 1024) -> str:
    """The learning-loop category of an image: ``"<bw|colour>/<small|large>/<photo|drawing>"``.

    ``small`` when the upright shorter side is below ``small_below`` px (1024,
    the resolution FLUX LoRAs are usually trained at); ``drawing`` per
    :attr:`ExtraMeasures.is_drawing` (``photo`` when not measured).
    """
    tone = "bw" if rec.is_grayscale else "colour"
    short = rec.short_side or 0
    size = "small" if short < small_below else "large"
    kind = "drawing" if extra is not None and extra.is_drawing else "photo"
    return f"{tone}/{size}/{kind}"


def _pct(x: float) -> str:
    p = x * 100
    return f"{p:.0f} %" if p >= 1 or p == 0 else f"{p:.2g} %"


def image_findings(rec: ImageRecord, extra: ExtraMeasures | None, resolution: int,
                   th: Thresholds) -> tuple[list[Finding], Bucket | None]:
    """Findings of one image from its stored record and extra measures (no I/O).

    Returns ``(findings, bucket)`` (bucket None when the image is unreadable);
    duplicates, caption rules and trainer findings are added by
    :func:`fluxgym_coach.audit.rules.build_report`, which sees the whole dataset.
    """
    error = rec.error or (extra.error if extra else None)
    if error or not rec.width or not rec.height:
        return [Finding("unreadable", ERROR, f"cannot be read as an image: {error or 'no size'}",
                        value=error, fix="re-copy or re-export the file, or remove it",
                        category="file")], None
    w, h = rec.display_size or (rec.width, rec.height)
    out = file_findings(rec, extra)
    found, bucket = resolution_findings(w, h, resolution, th)
    out.extend(found)
    out.extend(quality_findings(rec, extra, th))
    return out, bucket


def file_findings(rec: ImageRecord, extra: ExtraMeasures | None) -> list[Finding]:
    """File-level findings of a readable image: animation, CMYK, bit depth, alpha,
    EXIF rotation, a format kohya skips, an extension that lies about the format."""
    out: list[Finding] = []
    name = rec.relpath.rpartition("/")[2]
    ext = "." + name.rpartition(".")[2].lower() if "." in name.lstrip(".") else ""
    if (rec.n_frames or 1) > 1:
        out.append(Finding("animated", WARNING, f"animated image with {rec.n_frames} frames: only the "
                           "first frame is used", value=rec.n_frames, threshold=1,
                           fix="export a still of the frame you want", category="file"))
    if rec.mode == "CMYK":
        out.append(Finding("cmyk", WARNING, "CMYK image: colours shift when converted to RGB without "
                           "its colour profile", value=rec.mode, threshold="RGB",
                           fix="convert to sRGB in an image editor that applies the ICC profile",
                           category="file"))
    if extra is not None and (extra.bit_depth or 8) > 8:
        out.append(Finding("high_bit_depth", INFO, f"{extra.bit_depth}-bit image: export writes 8 bits "
                           "per channel", value=extra.bit_depth, threshold=8,
                           fix="nothing to do unless the tones matter; export converts it",
                           category="file"))
    if extra is not None and extra.alpha_fraction is not None:
        if extra.alpha_fraction > 0:
            out.append(Finding("alpha", WARNING, f"{_pct(extra.alpha_fraction)} of the pixels are "
                               "transparent: they will be flattened onto white (RGBA crashes Fluxgym "
                               "when saved as JPEG, issue #109)", value=round(extra.alpha_fraction, 4),
                               threshold=0.0, fix="check the image on white, or give it a background",
                               category="file"))
        else:
            out.append(Finding("alpha", INFO, "alpha channel present but fully opaque: export drops it",
                               value=0.0, threshold=0.0, fix="nothing to do", category="file"))
    if rec.orientation not in (None, 1):
        out.append(Finding("exif_rotated", INFO, f"EXIF orientation {rec.orientation}: Fluxgym's resize "
                           "drops EXIF and would train it sideways", value=rec.orientation, threshold=1,
                           fix="export applies the rotation; nothing to do", category="file"))
    if rec.format and rec.format not in KOHYA_FORMATS:
        out.append(Finding("format_not_trained", INFO, f"{rec.format} is silently ignored by kohya "
                           "sd-scripts", value=rec.format, threshold=sorted(KOHYA_FORMATS),
                           fix="export converts it to PNG", category="file"))
    expected = _EXTENSION_FORMATS.get(ext)
    if expected and rec.format and rec.format != expected:
        out.append(Finding("extension_mismatch", WARNING, f"the file is {rec.format} but named {ext}",
                           value=rec.format, threshold=expected,
                           fix="rename it with the right extension; export writes the real format",
                           category="file"))
    return out


def resolution_findings(w: int, h: int, resolution: int, th: Thresholds) -> tuple[list[Finding], Bucket]:
    """Upscale, bucket crop and aspect findings of an upright ``w`` x ``h`` image at
    ``resolution``, and its kohya :class:`Bucket` (:func:`kohya_bucket`)."""
    out: list[Finding] = []
    bucket = kohya_bucket(w, h, resolution)
    if bucket.scale > th.upscale_tolerance:
        factor = imaging.ceil_scale(bucket.scale)
        sev = ERROR if bucket.scale > th.max_upscale else WARNING
        out.append(Finding("low_resolution", sev, f"{w}x{h} is below resolution {resolution}: kohya would "
                           f"stretch it x{bucket.scale:.2f} to fill its {bucket.size[0]}x{bucket.size[1]} "
                           "bucket", value=round(bucket.scale, 3), threshold=th.upscale_tolerance,
                           fix=(f"upscale x{factor:g} before training (enhance or prepare does it)"
                                if sev == WARNING else
                                f"find a larger source: x{bucket.scale:.1f} exceeds what a 4x upscaler "
                                "restores" + (f" (beyond x{imaging.MAX_UPSCALE:g} fluxgym-coach refuses "
                                              "to resize it)" if bucket.scale > imaging.MAX_UPSCALE
                                              else "")),
                           category="resolution",
                           detail={"short_side": min(w, h), "scale_factor": factor}))
    if bucket.crop > th.max_crop:
        out.append(Finding("bucket_crop", WARNING, f"the {bucket.size[0]}x{bucket.size[1]} bucket crops "
                           f"{_pct(bucket.crop)} of the image", value=round(bucket.crop, 4),
                           threshold=th.max_crop, fix="crop it yourself to keep what matters",
                           category="resolution", detail={"bucket": list(bucket.size)}))
    aspect = min(w / h, h / w)
    if aspect < 1 / imaging.MAX_ASPECT:
        out.append(Finding("odd_aspect", ERROR, f"extreme aspect ratio 1:{1 / aspect:.1f}: beyond "
                           f"{imaging.MAX_ASPECT:g}:1 fluxgym-coach refuses to resize it",
                           value=round(aspect, 3), threshold=round(1 / imaging.MAX_ASPECT, 3),
                           fix="crop it to a ratio between 1:2.9 and 2.9:1, or remove it",
                           category="resolution"))
    elif aspect < th.min_aspect:
        out.append(Finding("odd_aspect", WARNING, f"unusual aspect ratio 1:{1 / aspect:.1f}",
                           value=round(aspect, 3), threshold=th.min_aspect,
                           fix="crop to a ratio between 1:2.9 and 2.9:1", category="resolution"))
    return out, bucket


def quality_findings(rec: ImageRecord, extra: ExtraMeasures | None, th: Thresholds) -> list[Finding]:
    """Exposure, grayscale, entropy and blur findings (blur drops to info on a
    low-contrast image, whose Laplacian variance is low whatever the focus)."""
    out: list[Finding] = []
    if extra is not None and extra.bright_p99 is not None:
        if extra.bright_p99 < th.dark_p99:
            out.append(Finding("too_dark", WARNING, "99 % of the pixels are below "
                               f"{_pct(extra.bright_p99)} brightness", value=extra.bright_p99,
                               threshold=th.dark_p99, fix="brighten it (levels/curves) or reject it",
                               category="quality"))
        elif extra.bright_p5 is not None and extra.bright_p5 > th.light_p5:
            out.append(Finding("too_bright", WARNING, "95 % of the pixels are above "
                               f"{_pct(extra.bright_p5)} brightness", value=extra.bright_p5,
                               threshold=th.light_p5, fix="darken it (levels/curves) or reject it",
                               category="quality"))
    if rec.is_grayscale:
        out.append(Finding("grayscale", WARNING, "black-and-white image: the LoRA learns to draw in "
                           "black and white", value=True, threshold=False,
                           fix="colorize it (enhance with a Forge backend), or keep it if black and "
                               "white is the style", category="quality"))
    if extra is not None and extra.entropy is not None and extra.entropy < th.min_entropy:
        out.append(Finding("low_information", WARNING, f"entropy {extra.entropy:.2f} bits: "
                           "nearly blank or flat",
                           value=extra.entropy, threshold=th.min_entropy,
                           fix="check it is not blank or a flat placeholder", category="quality"))
    if rec.sharpness is not None and rec.sharpness < th.blur_variance:
        # The variance of the Laplacian scales with contrast: on a dark, washed-out or
        # flat image it is low whatever the focus, so the finding drops to info there.
        low_contrast = any(f.code in ("too_dark", "too_bright", "low_information") for f in out)
        out.append(Finding("blurry", INFO if low_contrast else WARNING,
                           f"variance of the Laplacian {rec.sharpness:.1f} (256-px copy): "
                           + ("low, but so is the contrast; fix the exposure first" if low_contrast
                              else "soft or motion-blurred"),
                           value=rec.sharpness, threshold=th.blur_variance,
                           fix="replace with a sharper shot, or reject it", category="quality"))
    return out
