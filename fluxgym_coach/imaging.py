"""Pillow-only image helpers: safe open, header probe, measurements, thumbnails, resizing.

Everything here is synchronous CPU work meant to run in a thread or process
pool, never on an event loop. Nothing here writes to the user's files.

Measurements come from one small decode of the image (:func:`measure`):

* **perceptual hash** (pHash): the DCT hash of Zauner, "Implementation and
  Benchmarking of Perceptual Image Hash Functions" (2010), as popularised by
  ``imagehash.phash``: grayscale, resize to 32x32 with Lanczos, 2-D DCT-II,
  keep the 8x8 lowest frequencies, set a bit where the coefficient is above
  their median. Bits are read row-major, most significant first, so our hex
  string compares directly with ``str(imagehash.phash(img))``.
* **grayscale flag**: largest per-pixel channel spread on a small RGB copy
  (alpha flattened on white).
* **sharpness**: variance of the 4-neighbour Laplacian (Pech-Pacheco et al.,
  "Diatom autofocusing in brightfield microscopy", ICPR 2000) on a grayscale
  copy whose long side is :data:`WORK_SIZE` pixels (smaller images are
  measured at their own size). Higher is sharper.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import xxhash
from PIL import Image, ImageChops, ImageFile, ImageFilter, ImageOps, UnidentifiedImageError

from .errors import FluxgymCoachError

if TYPE_CHECKING:  # numpy is imported where an image is measured: the TUI starts without it
    import numpy as np

#: File extensions (lower case) that a scan accepts.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

#: Long side, in pixels, of the working copy that measurements are taken on.
WORK_SIZE = 256

#: Largest channel spread (0..255) that still counts as gray, per pixel.
GRAY_PIXEL_TOLERANCE = 12
#: Share of pixels allowed above that spread in an image that counts as gray.
GRAY_COLORED_FRACTION = 0.01

EXIF_ORIENTATION = 0x0112


ImageFile.LOAD_TRUNCATED_IMAGES = False

from .limits import (MAX_ASPECT, MAX_FILE_BYTES, MAX_RESIZE_PIXELS, MAX_UPSCALE,  # noqa: E402,F401
                     ResizeLimitError, check_regular_file, check_resize, read_regular_file)


class ImageReadError(FluxgymCoachError):
    """A file could not be read as an image.

    ``path`` names the file, ``reason`` says why in words a user can act on.
    """

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def is_image_name(name: str) -> bool:
    """True if ``name`` has one of :data:`IMAGE_EXTENSIONS`, in any letter case."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def digest_bytes(data: bytes) -> str:
    """The image identity: xxh3-128 of the bytes, as 32 hex digits."""
    return xxhash.xxh3_128_hexdigest(data)


def digest_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """xxh3-128 of a file's bytes (streamed), as 32 hex digits."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(slots=True)
class ImageInfo:
    """What the header says: ``format`` (Pillow's name, e.g. ``"JPEG"``), stored
    ``width``/``height`` in pixels, ``mode``, EXIF ``orientation`` (1..8) and
    ``n_frames`` (1 for still images)."""

    format: str
    width: int
    height: int
    mode: str
    orientation: int
    n_frames: int


@dataclass(slots=True)
class Measurements:
    """Results of :func:`measure`: ``phash`` (16 hex digits), ``is_grayscale``
    and ``sharpness`` (variance of the Laplacian, 0..~10^4)."""

    phash: str
    is_grayscale: bool
    sharpness: float


def _explain(exc: BaseException, size: int | None = None) -> str:
    if size == 0:
        return "empty file (0 bytes): re-export or remove it"
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return (f"too many pixels for a safe decode ({exc}); downscale it with an image "
                "editor before adding it to the dataset")
    if isinstance(exc, UnidentifiedImageError):
        return "not an image Pillow can identify (wrong extension or damaged file)"
    if isinstance(exc, OSError) and "truncated" in str(exc).lower():
        return "truncated image data (incomplete download or copy): re-copy the file"
    if isinstance(exc, PermissionError):
        return "permission denied: make the file readable (chmod u+r)"
    if isinstance(exc, FileNotFoundError):
        return "file vanished or is a broken link"
    if isinstance(exc, OSError):
        return f"cannot read the file ({exc.strerror or exc})"
    return f"corrupt image data ({type(exc).__name__}: {exc})"


def open_image(source: str | Path | bytes, path_for_errors: str | Path | None = None) -> Image.Image:
    """Open an image lazily (header only) with decompression-bomb checks as errors.

    ``source`` is a path or the file's bytes. Raises :class:`ImageReadError`
    for empty, unidentifiable, oversized or unreadable input.
    """
    name = path_for_errors if path_for_errors is not None else (
        source if not isinstance(source, bytes) else "<bytes>")
    try:
        if isinstance(source, bytes):
            if not source:
                raise ImageReadError(name, _explain(OSError(), 0))
            fp: io.BytesIO | str | Path = io.BytesIO(source)
        else:
            if check_regular_file(source).st_size == 0:
                raise ImageReadError(name, _explain(OSError(), 0))
            fp = source
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(fp)
    except ImageReadError:
        raise
    except (Exception, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(name, _explain(exc)) from exc


def probe(im: Image.Image) -> ImageInfo:
    """Read :class:`ImageInfo` from an opened, not yet decoded image."""
    try:
        orientation = int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except Exception:  # malformed EXIF must not hide the image itself
        orientation = 1
    if orientation not in range(1, 9):
        orientation = 1
    return ImageInfo(
        format=im.format or "UNKNOWN",
        width=im.width,
        height=im.height,
        mode=im.mode,
        orientation=orientation,
        n_frames=int(getattr(im, "n_frames", 1) or 1),
    )


def to_rgb(im: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Convert any mode to RGB, flattening transparency onto ``background``.

    16-bit and float grayscale are rescaled to 0..255 from their real range.
    """
    if im.mode == "RGB":
        return im
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        import numpy as np

        arr = np.asarray(im, dtype=np.float64)
        hi = float(arr.max()) or 1.0
        lo = float(arr.min())
        scaled = np.clip((arr - lo) * (255.0 / max(hi - lo, 1e-9)), 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, "L").convert("RGB")
    has_alpha = im.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, background)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return im.convert("RGB")


def draft_box(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The box to pass to ``Image.draft`` so a ``width`` x ``height`` JPEG decodes at the
    smallest DCT scale (1/2, 1/4, 1/8) whose long side is still >= ``long_side``.

    The box has the image's aspect ratio: Pillow picks the scale from
    ``min(width // box_w, height // box_h)``, so a square box would make a 4:3
    photo decode at twice the scale needed (1024x768 at 1/2 where 1/4 gives
    256x192)."""
    longest = max(width, height, 1)
    if longest <= long_side:
        return width, height
    return (max(1, -(-width * long_side // longest)), max(1, -(-height * long_side // longest)))


def load_small(im: Image.Image, long_side: int = WORK_SIZE) -> Image.Image:
    """Decode ``im`` in place, JPEGs at the smallest DCT scale that keeps the long side
    >= ``long_side`` (:func:`draft_box`); other formats whole. Returns ``im``.
    Raises :class:`ImageReadError` on truncated or corrupt data."""
    try:
        if im.format == "JPEG":
            im.draft("RGB", draft_box(im.width, im.height, long_side))
        im.load()
        return im
    except Exception as exc:
        raise ImageReadError(getattr(im, "filename", "") or "<image>", _explain(exc)) from exc


def work_copy_of_loaded(im: Image.Image, long_side: int = WORK_SIZE) -> Image.Image:
    """RGB copy of a decoded image, long side at most ``long_side`` (bilinear, reducing
    gap 2), alpha flattened on white, EXIF NOT applied. ``im`` is left unchanged."""
    try:
        small = to_rgb(im)
        if max(small.size) > long_side:
            small = small.copy() if small is im else small
            small.thumbnail((long_side, long_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
        return small
    except Exception as exc:
        raise ImageReadError(getattr(im, "filename", "") or "<image>", _explain(exc)) from exc


def load_work_copy(im: Image.Image, long_side: int = WORK_SIZE) -> Image.Image:
    """Decode ``im`` small: RGB, long side at most ``long_side`` px, EXIF NOT applied.

    JPEGs use draft mode (the DCT scaling of libjpeg, :func:`draft_box`), so a
    24 MP photo is decoded at 1/8 size. Others are decoded whole, then reduced.
    Raises :class:`ImageReadError` on truncated or corrupt data.
    """
    return work_copy_of_loaded(load_small(im, long_side), long_side)


_DCT_CACHE: dict[int, np.ndarray] = {}


def _dct_matrix(n: int) -> np.ndarray:
    """Unnormalised DCT-II basis (the convention of scipy.fftpack.dct, type 2)."""
    mat = _DCT_CACHE.get(n)
    if mat is None:
        import numpy as np

        k = np.arange(n)[:, None]
        i = np.arange(n)[None, :]
        mat = 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))
        _DCT_CACHE[n] = mat
    return mat


def phash_gray(gray: Image.Image, hash_size: int = 8, highfreq_factor: int = 4) -> str:
    """pHash of a grayscale (mode ``L``) image as ``hash_size**2 / 4`` hex digits."""
    import numpy as np

    n = hash_size * highfreq_factor
    pixels = np.asarray(gray.resize((n, n), Image.Resampling.LANCZOS), dtype=np.float64)
    d = _dct_matrix(n)
    low = (d @ pixels @ d.T)[:hash_size, :hash_size]
    bits = (low > np.median(low)).flatten()
    if bits.size % 8 == 0:  # most significant bit first, as the loop below
        value = int.from_bytes(np.packbits(bits).tobytes(), "big")
    else:
        value = 0
        for b in bits:
            value = (value << 1) | int(b)
    return f"{value:0{hash_size * hash_size // 4}x}"


def phash_file(source: str | Path | bytes) -> str:
    """pHash of a file, decoding as little as possible.

    JPEGs are decoded as luma only at the smallest DCT scale that keeps at
    least 64 px a side (libjpeg draft mode: no chroma, no full-size IDCT);
    other formats are decoded whole, converted to gray and reduced by an
    integer factor before the final Lanczos resize. Raises ImageReadError.
    """
    im = open_image(source)
    try:
        if im.format == "JPEG":
            im.draft("L", (64, 64))
        gray = im.convert("L") if im.mode not in ("RGBA", "LA", "P", "PA") else to_rgb(im).convert("L")
        factor = min(gray.width, gray.height) // 64
        if factor >= 2:
            gray = gray.reduce(factor)
        return phash_gray(gray)
    except Exception as exc:
        raise ImageReadError(source if not isinstance(source, bytes) else "<bytes>", _explain(exc)) from exc


def is_grayscale_rgb(rgb: Image.Image) -> bool:
    """True if an RGB image has (almost) no colour: see the module docstring.

    The per-pixel channel spread max(R,G,B) - min(R,G,B) is computed with
    Pillow's uint8 channel operations and counted with a histogram."""
    n = rgb.width * rgb.height
    if n == 0 or rgb.mode != "RGB":
        import numpy as np

        arr = np.asarray(rgb.convert("RGB"), dtype=np.int16)
        spread = arr.max(axis=2) - arr.min(axis=2)
        return float((spread > GRAY_PIXEL_TOLERANCE).mean()) <= GRAY_COLORED_FRACTION
    r, g, b = rgb.split()
    hi = ImageChops.lighter(ImageChops.lighter(r, g), b)
    lo = ImageChops.darker(ImageChops.darker(r, g), b)
    hist = ImageChops.subtract(hi, lo).histogram()
    return sum(hist[GRAY_PIXEL_TOLERANCE + 1:]) / n <= GRAY_COLORED_FRACTION


def laplacian(gray: Image.Image) -> np.ndarray | None:
    """The 4-neighbour Laplacian of a mode ``L`` image as int16 (exact: |values| <= 1020),
    shape ``(h - 2, w - 2)``; None for images under 3 px a side."""
    import numpy as np

    a = np.asarray(gray, dtype=np.int16)
    if a.ndim != 2 or a.shape[0] < 3 or a.shape[1] < 3:
        return None
    return a[1:-1, :-2] + a[1:-1, 2:] + a[:-2, 1:-1] + a[2:, 1:-1] - 4 * a[1:-1, 1:-1]


def laplacian_variance(gray: Image.Image, lap: np.ndarray | None = None) -> float:
    """Variance of the 4-neighbour Laplacian of a mode ``L`` image (0 for tiny images).
    ``lap`` is :func:`laplacian` of ``gray`` when already computed."""
    lap = laplacian(gray) if lap is None else lap
    if lap is None:
        return 0.0
    import numpy as np

    return float(lap.astype(np.float64).var())


def measure(im: Image.Image) -> Measurements:
    """pHash, grayscale flag and sharpness from one small decode of ``im``.

    ``im`` is an opened image (see :func:`open_image`); it is decoded here.
    Raises :class:`ImageReadError` on corrupt data.
    """
    return measure_decoded(im)[0]


def measure_decoded(im: Image.Image) -> tuple[Measurements, "WorkCopy"]:
    """:func:`measure`, also returning the :class:`WorkCopy` it measured, so other
    measures can reuse the one decode. ``im`` is decoded in place (draft scale for
    JPEG)."""
    if im.mode in ("L", "1", "LA", "I", "I;16", "F") and im.format != "JPEG":
        gray_flag = True
    else:
        gray_flag = None
    work = load_work_copy(im)
    gray = work.convert("L")
    lap = laplacian(gray)
    if gray_flag is None:
        gray_flag = is_grayscale_rgb(work if max(work.size) <= 96 else _shrink(work, 96))
    m = Measurements(phash=phash_gray(gray), is_grayscale=gray_flag,
                     sharpness=round(laplacian_variance(gray, lap), 3))
    return m, WorkCopy(work, gray, lap)


@dataclass(slots=True)
class WorkCopy:
    """The working copy :func:`measure_decoded` measured: ``rgb`` (long side <=
    :data:`WORK_SIZE`), its ``gray`` (mode L) and the int16 ``laplacian`` of the gray
    (None under 3 px a side), for other measures to reuse."""

    rgb: Image.Image
    gray: Image.Image
    laplacian: np.ndarray | None


def _shrink(im: Image.Image, size: int) -> Image.Image:
    out = im.copy()
    out.thumbnail((size, size), Image.Resampling.BILINEAR)
    return out


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes of equal length."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def load_upright_rgb(source: str | Path | bytes, max_side: int | None = None) -> Image.Image:
    """Open, decode, apply EXIF orientation and flatten to RGB.

    With ``max_side`` the result fits in ``max_side`` x ``max_side`` (JPEG
    draft mode used); otherwise it is full size. Raises :class:`ImageReadError`.
    """
    im = open_image(source)
    try:
        if max_side and im.format == "JPEG":
            im.draft("RGB", draft_box(im.width, im.height, max_side))
        im.load()
        upright = ImageOps.exif_transpose(im)
        rgb = to_rgb(upright)
        if max_side and max(rgb.size) > max_side:
            rgb = rgb.copy() if rgb is im else rgb
            rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return rgb
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(source if not isinstance(source, bytes) else "<bytes>",
                             _explain(exc)) from exc


def thumbnail(source: str | Path | bytes, max_side: int = 512) -> Image.Image:
    """An upright RGB thumbnail that fits in ``max_side`` px (for previews and reports)."""
    return load_upright_rgb(source, max_side=max_side)


def size_for_short_side(width: int, height: int, short: int) -> tuple[int, int]:
    """(w, h) scaled so that the shorter side equals ``short``, aspect kept (rounded)."""
    if width <= height:
        return short, max(1, round(height * short / width))
    return max(1, round(width * short / height)), short


def resize_short_side(im: Image.Image, short: int) -> Image.Image:
    """Resize with Lanczos so that the shorter side equals ``short`` pixels.

    Raises :class:`ResizeLimitError` (see :func:`check_resize`) for an upscale
    beyond :data:`MAX_UPSCALE`, an aspect ratio beyond :data:`MAX_ASPECT` or an
    output over :data:`MAX_RESIZE_PIXELS`."""
    size = size_for_short_side(im.width, im.height, short)
    if size == im.size:
        return im
    check_resize(im.width, im.height, *size)
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def unsharp(im: Image.Image, amount: float) -> Image.Image:
    """Light unsharp mask; ``amount`` 0..1 (0 = none). Radius 1.5 px, threshold 3."""
    if amount <= 0:
        return im
    return im.filter(ImageFilter.UnsharpMask(radius=1.5, percent=int(round(amount * 150)), threshold=3))


def encode(im: Image.Image, fmt: str, quality: int = 95) -> bytes:
    """Encode to ``PNG``, ``JPEG`` or ``WEBP`` bytes (RGB for JPEG)."""
    fmt = normalise_format(fmt)
    buf = io.BytesIO()
    if fmt == "JPEG":
        to_rgb(im).save(buf, "JPEG", quality=quality, optimize=False)
    elif fmt == "WEBP":
        im.save(buf, "WEBP", quality=quality, method=4)
    else:
        im.save(buf, "PNG", compress_level=4)
    return buf.getvalue()


def normalise_format(fmt: str) -> str:
    """``"jpg"``/``"JPG"``/``"jpeg"`` -> ``"JPEG"``; ``"png"`` -> ``"PNG"``; ``"webp"`` -> ``"WEBP"``.

    Raises ValueError for anything else.
    """
    f = fmt.strip().upper()
    if f in ("JPG", "JPEG"):
        return "JPEG"
    if f in ("PNG", "WEBP"):
        return f
    raise ValueError(f"unsupported output format {fmt!r}: use PNG, JPEG or WEBP")


def extension_for(fmt: str) -> str:
    """File extension (with dot, lower case) for an output format."""
    return {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}[normalise_format(fmt)]


def scale_for_short_side(width: int, height: int, short: int) -> float:
    """Smallest scale factor that brings the shorter side to at least ``short`` px."""
    return short / min(width, height)


def ceil_scale(scale: float, step: float = 0.25) -> float:
    """Round a scale factor up to the next ``step`` (keeps cache keys stable)."""
    return math.ceil(scale / step - 1e-9) * step
