"""Everything measured from one image file, from one read and one decode.

:func:`read_and_measure` is the scan's unit of work (run in a thread or a
worker process): it checks that the path is a regular file of bounded size,
reads the bytes once (xxh3-128 digest), reads the header (size, format, mode,
EXIF orientation, frames, bit depth) and decodes the pixels once, small
(JPEG: libjpeg's DCT scaling, see :func:`fluxgym_coach.imaging.draft_box`).
That one decoded copy gives the scan's measures (pHash, grayscale flag,
sharpness: :func:`fluxgym_coach.imaging.measure_decoded`) and the audit's
extra measures (:class:`ExtraMeasures`: brightness percentiles, entropy,
flatness, transparency), so a cold audit decodes each image once.

The extra measures are stored by image digest in the schema component
``audit`` (table ``audit_measures``), registered here so the scan can write
them in the same transaction as the image rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import imaging
from ..store import ImageRecord, Store, register_schema

#: Version of the extra measures' definitions; rows of another version are measured again.
MEASURE_VERSION = 1

register_schema(
    "audit",
    [
        """
        CREATE TABLE audit_measures (
            digest          TEXT PRIMARY KEY,
            version         INTEGER NOT NULL,
            bright_p5       REAL,
            bright_p99      REAL,
            bright_mean     REAL,
            entropy         REAL,
            flat_fraction   REAL,
            top4_share      REAL,
            alpha_fraction  REAL,
            bit_depth       INTEGER,
            error           TEXT,
            measured_at     REAL NOT NULL
        );
        """,
    ],
)


@dataclass(slots=True)
class ExtraMeasures:
    """What the audit needs beyond the scan's pHash, grayscale flag and sharpness.

    ``bright_p5``/``bright_p99``/``bright_mean``: cleanvision brightness (0..1)
    percentiles and mean; ``entropy``: Pillow ``entropy()`` of the RGB copy, in
    bits (0..~10); ``flat_fraction``: share of pixels whose 4-neighbour
    Laplacian is at most 2 gray levels (flat areas: drawings, blur);
    ``top4_share``: share of pixels in the 4 most frequent gray levels;
    ``alpha_fraction``: share of pixels not fully opaque (None when the image
    has no alpha channel); ``bit_depth``: bits per channel as stored (1, 8, 16,
    32); ``error`` when the image could not be decoded. All on the 256-px
    working copy, except bit depth (header).
    """

    bright_p5: float | None = None
    bright_p99: float | None = None
    bright_mean: float | None = None
    entropy: float | None = None
    flat_fraction: float | None = None
    top4_share: float | None = None
    alpha_fraction: float | None = None
    bit_depth: int | None = None
    error: str | None = None

    @property
    def is_drawing(self) -> bool:
        """A simple photo/drawing measure: large flat areas (``flat_fraction``
        >= 0.6) made of few gray levels (``top4_share`` >= 0.5). On the real
        images only the horse clipart (0.90, 0.95) passes; photos reach at
        most 0.73 (blurred clock) and 0.64 (Hubble's black sky), never both."""
        return (self.flat_fraction or 0.0) >= 0.6 and (self.top4_share or 0.0) >= 0.5


_ALPHA_MODES = ("RGBA", "LA", "La", "RGBa", "PA")


def bit_depth(im: Image.Image, data: bytes) -> int:
    """Bits per channel as stored: PNG's IHDR byte, else from the mode or TIFF tag 258."""
    if data[12:16] == b"IHDR" and len(data) > 24:  # PNG header: bit depth at byte 24
        return int(data[24])
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return 16
    if im.mode in ("I", "F"):
        return 32
    if im.mode == "1":
        return 1
    tag = getattr(im, "tag_v2", None)
    if tag is not None and 258 in tag:  # TIFF BitsPerSample
        bits = tag[258]
        return int(max(bits) if isinstance(bits, tuple) else bits)
    return 8


def has_alpha(im: Image.Image) -> bool:
    """True when the (decoded) image has an alpha channel or palette transparency."""
    return im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)


_LUT_INDEX = np.arange(256, dtype=np.float64) / 255.0
#: cleanvision's brightness weights applied to each 8-bit level: the same float64
#: operations as on the whole image (``w * (v / 255) ** 2``), looked up per pixel.
_BRIGHT_LUT = [w * _LUT_INDEX ** 2 for w in (0.241, 0.691, 0.068)]


def extra_from_decoded(im: Image.Image, work: imaging.WorkCopy | None, depth: int) -> ExtraMeasures:
    """Extra measures from a decoded image ``im`` (draft scale at most) and, for
    images without alpha, the scan's working copy ``work`` (the same pixels the
    audit used to decode on its own, with their gray copy and Laplacian). Images
    with alpha are reduced as RGBA first, then flattened on white, as before.
    Raises on decoder errors."""
    alpha_fraction = None
    if has_alpha(im):
        rgba = im.convert("RGBA")
        rgba.thumbnail((imaging.WORK_SIZE,) * 2, Image.Resampling.BILINEAR)
        alpha_fraction = float((np.asarray(rgba.getchannel("A")) < 255).mean())
        work = None
        rgb_im = imaging.to_rgb(rgba)
    else:
        rgb_im = work.rgb if work is not None else imaging.work_copy_of_loaded(im)
    if work is None:
        gray = rgb_im.convert("L")
        lap = imaging.laplacian(gray)
    else:
        gray, lap = work.gray, work.laplacian
    px = np.asarray(rgb_im)
    bright = np.sqrt(_BRIGHT_LUT[0][px[..., 0]] + _BRIGHT_LUT[1][px[..., 1]]
                     + _BRIGHT_LUT[2][px[..., 2]])
    flat = 1.0 if lap is None else float((np.abs(lap) <= 2).mean())
    hist = np.asarray(gray.histogram(), dtype=np.float64)
    top4 = float(np.sort(hist)[-4:].sum() / max(1.0, hist.sum()))
    p5, p99 = np.percentile(bright, [5, 99])
    return ExtraMeasures(
        bright_p5=round(float(p5), 4), bright_p99=round(float(p99), 4),
        bright_mean=round(float(bright.mean()), 4),
        entropy=round(float(rgb_im.entropy()), 4),
        flat_fraction=round(flat, 4), top4_share=round(top4, 4),
        alpha_fraction=None if alpha_fraction is None else round(alpha_fraction, 6),
        bit_depth=depth)


def read_and_measure(path: str, relpath: str, size: int, mtime_ns: int,
                     extras: bool = True) -> tuple[ImageRecord, ExtraMeasures | None]:
    """Read ``path`` once and measure it: ``(record, extra measures or None)``.

    The record carries digest, header fields, pHash, grayscale flag and
    sharpness, or ``error`` (a sentence naming the problem) when the path is
    not a regular file, exceeds :data:`fluxgym_coach.imaging.MAX_FILE_BYTES`,
    or is not a decodable image; the extra measures then carry the same error
    when the digest is known. Never raises for bad files.
    """
    rec = ImageRecord(relpath=relpath, size=size, mtime_ns=mtime_ns)
    try:
        data = imaging.read_regular_file(path)
    except imaging.ImageReadError as exc:
        rec.error = exc.reason
        return rec, None
    rec.size = len(data)
    rec.digest = imaging.digest_bytes(data) if data else None
    extra: ExtraMeasures | None = None
    try:
        im = imaging.open_image(data, path)
        info = imaging.probe(im)
        rec.width, rec.height = info.width, info.height
        rec.format, rec.mode = info.format, info.mode
        rec.orientation, rec.n_frames = info.orientation, info.n_frames
        depth = bit_depth(im, data) if extras else 0
        m, work = imaging.measure_decoded(im)
        rec.phash, rec.is_grayscale, rec.sharpness = m.phash, m.is_grayscale, m.sharpness
        if extras:
            try:
                extra = extra_from_decoded(im, None if has_alpha(im) else work, depth)
            except Exception as exc:  # noqa: BLE001 - a decoder error is a finding, not a crash
                extra = ExtraMeasures(error=imaging._explain(exc))
    except imaging.ImageReadError as exc:
        rec.error = exc.reason
        rec.phash = rec.is_grayscale = rec.sharpness = None
        extra = None  # the audit reports the record's error; nothing to store by digest
    return rec, extra


_EXTRA_COLUMNS = ["bright_p5", "bright_p99", "bright_mean", "entropy", "flat_fraction",
                  "top4_share", "alpha_fraction", "bit_depth", "error"]


def stored_measures(store: Store, digests: Iterable[str] | None = None) -> dict[str, ExtraMeasures]:
    """``{digest: ExtraMeasures}`` already stored (current :data:`MEASURE_VERSION` only)."""
    store.ensure_schema("audit")
    rows = store.execute(f"SELECT digest, {', '.join(_EXTRA_COLUMNS)} FROM audit_measures "
                         "WHERE version = ?", (MEASURE_VERSION,))
    wanted = None if digests is None else set(digests)
    return {r[0]: ExtraMeasures(*r[1:]) for r in rows if wanted is None or r[0] in wanted}


def measures_sql() -> str:
    """The INSERT statement :func:`measure_rows` rows go into."""
    cols = ["digest", "version", *_EXTRA_COLUMNS, "measured_at"]
    return (f"INSERT OR REPLACE INTO audit_measures ({', '.join(cols)}) "
            f"VALUES ({', '.join('?' for _ in cols)})")


def measure_rows(items: Iterable[tuple[str, ExtraMeasures]]) -> list[list]:
    """Parameter rows for :func:`measures_sql` from ``[(digest, measures)]``."""
    now = time.time()
    return [[d, MEASURE_VERSION, *[getattr(m, c) for c in _EXTRA_COLUMNS], now] for d, m in items]


def save_measures(store: Store, items: list[tuple[str, ExtraMeasures]]) -> None:
    """Store extra measures ``[(digest, measures)]`` (replacing older rows of those digests)."""
    store.ensure_schema("audit")
    if items:
        store.executemany(measures_sql(), measure_rows(items))


def measure_file(path: str | Path) -> ExtraMeasures:
    """Extra measures of one file (one read, one small decode). Never raises:
    the reason goes to ``error``."""
    try:
        data = imaging.read_regular_file(path)
        im = imaging.open_image(data, path)
        depth = bit_depth(im, data)
        imaging.load_small(im)
        return extra_from_decoded(im, None, depth)
    except imaging.ImageReadError as exc:
        return ExtraMeasures(error=exc.reason)
    except Exception as exc:  # noqa: BLE001 - decoder errors surface after open()
        return ExtraMeasures(error=imaging._explain(exc))
