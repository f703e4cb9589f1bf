"""What we send to image servers, and how we check what they send back.

**Upload conversion.** Servers decode uploads with their own rules: Forge and
A1111 (Pillow 9.5) turn every mode other than RGB/RGBA into RGB with
``Image.convert("RGB")``, which *clips* 16-bit and 32-bit values to 0..255,
so a 16-bit scan comes back white; CMYK, palette and alpha images are
converted in ways we do not control either. :func:`server_image` makes the
one conversion we trust, and :func:`server_upload` writes it as the 8-bit
PNG that servers receive (Forge upscale/colorize; the OpenAI captioner
encodes the same pixels as JPEG), unless the file is already an 8-bit RGB or
L PNG/JPEG without transparency or rotation, which every server decodes alike
and which is sent unchanged:

* upright (EXIF orientation applied, so the server's own transpose is a no-op);
* ``L`` for single-channel images (1, L, LA, I;16*, I, F), ``RGB`` otherwise;
* integer images above 8 bits (``I;16``, ``I;16B``, ``I;16L``, ``I``) are
  divided by the full scale of the smallest bit depth that holds their
  largest value (10, 12, 14, 16, 24 or 32 bits: a 12-bit scan stored in
  16 bits keeps its tones); negative ``I`` values and float ``F`` images
  outside 0..1 are stretched from their minimum to their maximum; ``F``
  within 0..1 is multiplied by 255. Nothing is clipped;
* transparency (``LA``, ``RGBA``, ``PA``, palette with a transparent index)
  is flattened onto :data:`BACKGROUND` (white);
* CMYK, YCbCr, LAB, HSV and palette images go through Pillow's RGB conversion.

**Result checks.** :func:`signature` reduces an image to a small luminance
grid (:data:`SIGNATURE_SIDE` px square, values 0..255);
:func:`check_result` refuses a result that is flat (luminance standard
deviation under :data:`FLAT_STD` while the source is not) or whose signature
correlates with the source's less than :data:`MIN_CORRELATION`;
:func:`match_results` assigns a batch's results to its inputs by that
correlation, so a server that reorders a batch never gives one image
another's result.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import FluxgymCoachError
from .. import imaging

#: Colour transparent pixels are flattened onto.
BACKGROUND = (255, 255, 255)
#: Side (px) of the luminance grid compared between a source and a result.
SIGNATURE_SIDE = 32
#: A result whose luminance standard deviation (0..255) is below this is flat.
FLAT_STD = 2.0
#: Least Pearson correlation between a source's and a result's luminance grids.
MIN_CORRELATION = 0.5
#: PNG compression level of uploads (1: fast; the network is rarely the bottleneck).
PNG_LEVEL = 1

_INT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_SINGLE_CHANNEL = ("1", "L", "LA", "La", "F", *_INT_MODES)


class ResultCheckError(FluxgymCoachError, ValueError):
    """A server's result does not belong to its source; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _deep_to_l(im: Image.Image) -> Image.Image:
    """A 16/32-bit integer or float image as 8-bit L, scaled from its real range."""
    arr = np.asarray(im, dtype=np.float64)
    if arr.size == 0:
        return Image.new("L", im.size)
    lo, hi = float(arr.min()), float(arr.max())
    if im.mode == "F" and lo >= 0.0 and hi <= 1.0:
        scaled = arr * 255.0
    elif im.mode == "F" or lo < 0:
        scaled = (arr - lo) * (255.0 / max(hi - lo, 1e-12))
    else:
        full = 255.0
        for bits in (8, 10, 12, 14, 16, 24, 32):
            full = float(2 ** bits - 1)
            if hi <= full:
                break
        scaled = arr * (255.0 / full)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _flatten(im: Image.Image, gray: bool) -> Image.Image:
    if gray:
        la = im.convert("LA")
        canvas = Image.new("L", la.size, BACKGROUND[0])
        canvas.paste(la.getchannel("L"), mask=la.getchannel("A"))
        return canvas
    rgba = im.convert("RGBA")
    canvas = Image.new("RGB", rgba.size, BACKGROUND)
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    return canvas


def server_image(im: Image.Image) -> Image.Image:
    """``im`` (any Pillow mode, EXIF orientation not yet applied) as the upright
    8-bit ``L`` or ``RGB`` image servers receive (rules in the module docstring).
    Decodes the image. Raises OSError/ValueError from Pillow for a broken file."""
    im.load()
    up = ImageOps.exif_transpose(im)
    mode = up.mode
    if mode in ("L", "RGB"):
        return up
    if mode in _INT_MODES or mode == "F":
        return _deep_to_l(up)
    if mode == "1":
        return up.convert("L")
    alpha = mode in ("LA", "La", "RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in up.info)
    if alpha:
        gray = mode in ("LA", "La")
        return _flatten(up, gray)
    return up.convert("RGB")


def _decoded_alike(im: Image.Image) -> bool:
    """Whether every server decodes this file to the pixels we mean: an 8-bit RGB or
    L PNG or JPEG, no transparency, no EXIF rotation."""
    return (im.format in ("PNG", "JPEG") and im.mode in ("L", "RGB")
            and "transparency" not in im.info and im.getexif().get(0x0112, 1) in (0, 1))


def server_upload(source: bytes | str | Path) -> bytes:
    """The bytes sent to a server for an image file (bytes or path).

    A file every server decodes alike (an 8-bit RGB or L PNG or JPEG without
    transparency or EXIF rotation) is sent as it is: converting it would
    change nothing but cost time and bytes. Anything else is converted by
    :func:`server_image` and encoded as PNG. CPU work: call it in a thread.
    Raises :class:`~fluxgym_coach.imaging.ImageReadError`."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    im = imaging.open_image(data, None if isinstance(source, bytes) else source)
    try:
        if _decoded_alike(im):
            return data
        out = server_image(im)
        buf = io.BytesIO()
        out.save(buf, "PNG", compress_level=PNG_LEVEL)
        return buf.getvalue()
    except (OSError, ValueError) as exc:
        raise imaging.ImageReadError("<bytes>" if isinstance(source, bytes) else source,
                                     imaging._explain(exc)) from exc


def _luma(source: bytes | Image.Image) -> np.ndarray:
    im = source if isinstance(source, Image.Image) else imaging.open_image(source)
    if im.format == "JPEG":
        im.draft("L", (SIGNATURE_SIDE * 2, SIGNATURE_SIDE * 2))
    small = server_image(im).convert("L").resize((SIGNATURE_SIDE, SIGNATURE_SIDE),
                                                Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64)


def signature(source: bytes | Image.Image) -> np.ndarray:
    """The luminance grid of an image (:data:`SIGNATURE_SIDE` squared values,
    0..255, float64, shape ``(SIGNATURE_SIDE, SIGNATURE_SIDE)``), whatever its
    size and aspect. Raises ImageReadError for unreadable bytes."""
    return _luma(source)


def flat_signature() -> np.ndarray:
    """A black, flat signature (stands for an unreadable result)."""
    return np.zeros((SIGNATURE_SIDE, SIGNATURE_SIDE))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two signatures (-1..1); 1.0 when both are flat
    with the same mean (within 8 levels), 0.0 when only one is flat."""
    sa, sb = float(a.std()), float(b.std())
    if sa < FLAT_STD or sb < FLAT_STD:
        both = sa < FLAT_STD and sb < FLAT_STD
        return 1.0 if both and abs(float(a.mean()) - float(b.mean())) <= 8 else 0.0
    return float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))


def check_result(source_sig: np.ndarray, result: bytes | np.ndarray, name: str = "") -> None:
    """Raise :class:`ResultCheckError` unless ``result`` (bytes or a signature)
    is a plausible result for the source with signature ``source_sig``: not
    flat when the source is not (std >= :data:`FLAT_STD`), and luminance
    correlation >= :data:`MIN_CORRELATION`."""
    sig = result if isinstance(result, np.ndarray) else signature(result)
    label = f" for {name}" if name else ""
    std = float(sig.std())
    if std < FLAT_STD and float(source_sig.std()) >= FLAT_STD:
        raise ResultCheckError(
            f"the server returned a flat image{label} (mean {sig.mean():.0f}, std {std:.1f}): the "
            f"server could not read the upload or failed; result not used")
    corr = correlation(source_sig, sig)
    if corr < MIN_CORRELATION:
        raise ResultCheckError(
            f"the server's result{label} does not look like its source (luminance correlation "
            f"{corr:.2f} < {MIN_CORRELATION}): results may be mixed up; result not used")


def match_results(inputs: Sequence[np.ndarray], results: Sequence[np.ndarray]) -> list[int | None]:
    """Assign results to inputs by signature correlation: per input, the index
    of its result, or None when none correlates at least :data:`MIN_CORRELATION`.

    Greedy on the correlation matrix (highest pair first, each result used
    once); among equal correlations the result at the input's own position
    wins, so identical inputs keep their order."""
    n, k = len(inputs), len(results)
    pairs = []
    for i in range(n):
        for j in range(k):
            c = correlation(inputs[i], results[j])
            if c >= MIN_CORRELATION:
                pairs.append((-round(c, 6), 0 if i == j else 1, i, j))
    pairs.sort()
    assigned: list[int | None] = [None] * n
    used: set[int] = set()
    for _, _, i, j in pairs:
        if assigned[i] is None and j not in used:
            assigned[i] = j
            used.add(j)
    return assigned


#: Upscalers that *are* a plain resize (their result may equal one): no plain-resize check.
RESIZE_UPSCALERS = frozenset({"None", "Lanczos", "Nearest"})
#: A result within this many levels (0..255) of our own Lanczos resize of the upload, at
#: every pixel compared, is that resize (Pillow's Lanczos is exact to rounding; a model
#: differs by tens of levels at edges and textures).
PLAIN_RESIZE_LEVELS = 2
#: Side (output px) of the window compared (the whole result when smaller).
PLAIN_RESIZE_WINDOW = 384
#: Below this mean gradient (levels per pixel, |dx| + |dy| of the gray window) the window
#: has too little detail to tell a model from a resize: the check answers False
#: (inconclusive, the result is kept).
PLAIN_RESIZE_MIN_DETAIL = 2.0


def _gradient(gray: np.ndarray) -> np.ndarray:
    """|dx| + |dy| of a 2-D array (shape minus one each way)."""
    g = gray.astype(np.int16)
    return np.abs(np.diff(g, axis=1))[:-1, :] + np.abs(np.diff(g, axis=0))[:, :-1]


def _detailed_window(src: Image.Image, big: tuple[int, int], window: tuple[int, int]) -> tuple[int, int]:
    """Top-left (output px) of the window, among a 3x3 grid of positions, whose source
    region holds the most gradient energy (where a model and a resize differ most)."""
    (w, h), (big_w, big_h), (cw, ch) = src.size, big, window
    energy = _gradient(np.asarray(src.convert("L")))
    best, best_xy = -1.0, (0, 0)
    for x0 in sorted({0, (big_w - cw) // 2, big_w - cw}):
        for y0 in sorted({0, (big_h - ch) // 2, big_h - ch}):
            sx0, sy0 = int(x0 * w / big_w), int(y0 * h / big_h)
            sx1, sy1 = -(-(x0 + cw) * w // big_w), -(-(y0 + ch) * h // big_h)
            e = float(energy[sy0:sy1, sx0:sx1].mean()) if energy.size else 0.0
            if e > best:
                best, best_xy = e, (x0, y0)
    return best_xy


def is_plain_resize(upload: bytes, result: bytes) -> bool:
    """True when ``result`` is, to rounding, Pillow's Lanczos resize of ``upload`` to the
    result's size: what Forge / A1111 return, with a 200, for an image whose model upscale
    was interrupted (``modules/upscaler.py`` ``Upscaler.upscale`` leaves its loop on
    ``state.interrupted`` and resizes with LANCZOS; ``upscaler_utils.upscale_with_model``
    returns its input between tiles). Telling it by content does not depend on reading
    ``/progress`` before another client's job resets the flag.

    Compares the window of at most :data:`PLAIN_RESIZE_WINDOW` output pixels a side with
    the most detail (:func:`_detailed_window`; ``Image.resize(box=...)`` gives exactly that
    crop of the full resize, so the cost does not grow with the image). Inconclusive
    (False) for a window without detail (:data:`PLAIN_RESIZE_MIN_DETAIL`), a result with
    lossy compression, or bytes that do not decode. CPU work: call it in a thread."""
    try:
        src = imaging.open_image(upload).convert("RGB")
        out = imaging.open_image(result).convert("RGB")
    except (imaging.ImageReadError, OSError, ValueError):
        return False
    (w, h), (big_w, big_h) = src.size, out.size
    cw, ch = min(big_w, PLAIN_RESIZE_WINDOW), min(big_h, PLAIN_RESIZE_WINDOW)
    x0, y0 = _detailed_window(src, (big_w, big_h), (cw, ch))
    box = (x0 * w / big_w, y0 * h / big_h, (x0 + cw) * w / big_w, (y0 + ch) * h / big_h)
    ref_im = src.resize((cw, ch), Image.Resampling.LANCZOS, box=box)
    detail = _gradient(np.asarray(ref_im.convert("L")))
    if not detail.size or float(detail.mean()) < PLAIN_RESIZE_MIN_DETAIL:
        return False
    ref = np.asarray(ref_im, dtype=np.int16)
    got = np.asarray(out.crop((x0, y0, x0 + cw, y0 + ch)), dtype=np.int16)
    return int(np.abs(ref - got).max()) <= PLAIN_RESIZE_LEVELS
