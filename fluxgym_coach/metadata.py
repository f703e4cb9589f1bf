"""Technical metadata of images: EXIF camera, lens, date, exposure; ICC profile, DPI, bit depth, animation.

:func:`extract` reads one file with Pillow (header, EXIF and ICC only; no
pixel decode except to walk animation frames). :func:`update_metadata`
extracts what is missing or stale for a dataset, in threads, and stores it in
the table ``image_metadata`` (schema component ``"metadata"``), keyed by
relpath and tagged with the image digest so a changed file is re-read.
:func:`get_metadata` is what the export manifest and the TUI info panel read
(it extracts on first use);
:func:`summary_lines` formats it for people.

The dict (every key present; ``None`` when the file does not say)::

    {"format": "JPEG", "mode": "RGB", "width": 6000, "height": 4000,
     "bit_depth": 8,                      # bits per channel (PNG: from its header)
     "camera": {"make": "Canon", "model": "Canon EOS R5"} | None,
     "lens": "RF24-70mm F2.8 L IS USM" | None,
     "datetime": "2024:05:01 14:03:22" | None,   # DateTimeOriginal, else DateTime
     "exposure": {"exposure_time": "1/250", "exposure_s": 0.004, "f_number": 2.8,
                  "iso": 100, "focal_length_mm": 50.0, "focal_length_35mm": 50} | None,
     "software": str | None,
     "icc_profile": {"description": "sRGB IEC61966-2.1", "bytes": 3144} | None,
     "dpi": [300.0, 300.0] | None,
     "animated": False, "n_frames": 1, "duration_ms": None,  # total, for animations
     "has_gps": False}                    # GPS position present (never copied out)

EXIF tag numbers are those of the EXIF 2.32 specification (CIPA DC-008).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any


from . import imaging
from .store import STORE_DIRNAME, Store, register_schema

if TYPE_CHECKING:  # pragma: no cover
    from .dataset import Dataset

register_schema(
    "metadata",
    [
        """
        CREATE TABLE image_metadata (
            relpath      TEXT PRIMARY KEY,
            digest       TEXT NOT NULL,
            data         TEXT NOT NULL,
            extracted_at REAL NOT NULL
        );
        """,
    ],
)

# EXIF tags (base IFD / Exif sub-IFD / GPS IFD pointers).
MAKE, MODEL, SOFTWARE, DATETIME = 0x010F, 0x0110, 0x0131, 0x0132
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
EXPOSURE_TIME, F_NUMBER, ISO, DATETIME_ORIGINAL = 0x829A, 0x829D, 0x8827, 0x9003
FOCAL_LENGTH, LENS_MAKE, LENS_MODEL, FOCAL_35MM = 0x920A, 0xA433, 0xA434, 0xA405

_BITS = {"1": 1, "L": 8, "P": 8, "RGB": 8, "RGBA": 8, "CMYK": 8, "YCbCr": 8, "LAB": 8, "HSV": 8,
         "LA": 8, "La": 8, "PA": 8, "RGBa": 8, "RGBX": 8, "I": 32, "F": 32,
         "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value).replace("\x00", "").strip()
    return text or None


def _number(value: Any) -> float | None:
    try:
        if isinstance(value, tuple) and len(value) == 2:
            return float(value[0]) / float(value[1]) if value[1] else None
        f = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return f if f == f else None  # NaN from a 0/0 rational


def _exposure_text(seconds: float) -> str:
    if seconds >= 1 or seconds <= 0:
        return f"{seconds:g}"
    frac = Fraction(seconds).limit_denominator(100000)
    if frac.numerator == 1:
        return f"1/{frac.denominator}"
    return f"1/{round(1 / seconds)}"


def _icc(data: bytes | None) -> dict[str, Any] | None:
    if not data:
        return None
    description = None
    try:
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(io.BytesIO(data))
        description = _text(ImageCms.getProfileDescription(profile))
    except Exception:  # a damaged profile is still worth reporting as present
        description = None
    return {"description": description, "bytes": len(data)}


def _png_bit_depth(path: Path) -> int | None:
    with open(path, "rb") as fh:
        head = fh.read(26)
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
        return head[24]
    return None


def extract(path: str | Path) -> dict[str, Any]:
    """The metadata dict of one image file (see the module docstring).

    Raises :class:`fluxgym_coach.imaging.ImageReadError` when the file is not
    a readable image. Malformed EXIF never raises: what cannot be read is None.
    """
    path = Path(path)
    im = imaging.open_image(path)
    with im:
        meta: dict[str, Any] = {
            "format": im.format, "mode": im.mode, "width": im.width, "height": im.height,
            "bit_depth": _BITS.get(im.mode), "camera": None, "lens": None, "datetime": None,
            "exposure": None, "software": None, "icc_profile": _icc(im.info.get("icc_profile")),
            "dpi": None, "animated": bool(getattr(im, "is_animated", False)),
            "n_frames": int(getattr(im, "n_frames", 1) or 1), "duration_ms": None, "has_gps": False,
        }
        if im.format == "PNG":
            meta["bit_depth"] = _png_bit_depth(path) or meta["bit_depth"]
        dpi = im.info.get("dpi")
        if isinstance(dpi, tuple) and len(dpi) == 2:
            x, y = _number(dpi[0]), _number(dpi[1])
            if x and y:
                meta["dpi"] = [round(x, 2), round(y, 2)]
        try:
            exif = im.getexif()
            sub = dict(exif.get_ifd(EXIF_IFD)) if EXIF_IFD in exif else {}
            has_gps = GPS_IFD in exif and bool(exif.get_ifd(GPS_IFD))
        except Exception:
            exif, sub, has_gps = {}, {}, False  # type: ignore[assignment]
        make, model = _text(exif.get(MAKE)), _text(exif.get(MODEL))
        if make or model:
            meta["camera"] = {"make": make, "model": model}
        lens_make, lens_model = _text(sub.get(LENS_MAKE)), _text(sub.get(LENS_MODEL))
        meta["lens"] = lens_model or lens_make
        meta["datetime"] = _text(sub.get(DATETIME_ORIGINAL)) or _text(exif.get(DATETIME))
        meta["software"] = _text(exif.get(SOFTWARE))
        meta["has_gps"] = bool(has_gps)
        exposure: dict[str, Any] = {}
        t = _number(sub.get(EXPOSURE_TIME))
        if t:
            exposure["exposure_s"] = t
            exposure["exposure_time"] = _exposure_text(t)
        f = _number(sub.get(F_NUMBER))
        if f:
            exposure["f_number"] = round(f, 1)
        iso = sub.get(ISO)
        if isinstance(iso, tuple):
            iso = iso[0] if iso else None
        if iso:
            exposure["iso"] = int(iso)
        fl = _number(sub.get(FOCAL_LENGTH))
        if fl:
            exposure["focal_length_mm"] = round(fl, 1)
        fl35 = sub.get(FOCAL_35MM)
        if fl35:
            exposure["focal_length_35mm"] = int(fl35)
        meta["exposure"] = exposure or None
        if meta["animated"] and meta["n_frames"] <= 10000:
            total = 0
            for i in range(meta["n_frames"]):
                try:
                    im.seek(i)
                except EOFError:
                    break
                total += int(im.info.get("duration") or 0)
            meta["duration_ms"] = total or None
    return meta


def summary_lines(meta: dict[str, Any] | None) -> list[str]:
    """Short ``"Label: value"`` lines for an info panel (only what is known)."""
    if not meta:
        return []
    lines = []
    cam = meta.get("camera")
    if cam:
        lines.append("Camera: " + " ".join(x for x in (cam.get("make"), cam.get("model")) if x))
    if meta.get("lens"):
        lines.append(f"Lens: {meta['lens']}")
    if meta.get("datetime"):
        lines.append(f"Date: {meta['datetime']}")
    exp = meta.get("exposure") or {}
    parts = []
    if "exposure_time" in exp:
        parts.append(f"{exp['exposure_time']} s")
    if "f_number" in exp:
        parts.append(f"f/{exp['f_number']:g}")
    if "iso" in exp:
        parts.append(f"ISO {exp['iso']}")
    if "focal_length_mm" in exp:
        parts.append(f"{exp['focal_length_mm']:g} mm")
    if parts:
        lines.append("Exposure: " + " ".join(parts))
    icc = meta.get("icc_profile")
    lines.append("Colour profile: " + ((icc.get("description") or "embedded (unnamed)") if icc
                                       else "none (read as sRGB)"))
    if meta.get("dpi"):
        lines.append(f"DPI: {meta['dpi'][0]:g} x {meta['dpi'][1]:g}")
    if meta.get("bit_depth"):
        lines.append(f"Bit depth: {meta['bit_depth']} per channel ({meta.get('mode')})")
    if meta.get("animated"):
        dur = f", {meta['duration_ms'] / 1000:g} s" if meta.get("duration_ms") else ""
        lines.append(f"Animated: {meta['n_frames']} frames{dur} (kohya trains on the first)")
    if meta.get("has_gps"):
        lines.append("GPS position: present in the file")
    return lines


@dataclass(slots=True)
class MetadataReport:
    """What :func:`update_metadata` did: relpaths ``extracted``, how many were
    ``unchanged`` (digest already known), and ``errors`` relpath -> reason."""

    extracted: list[str] = field(default_factory=list)
    unchanged: int = 0
    errors: dict[str, str] = field(default_factory=dict)


def update_metadata(dataset: "Dataset", relpaths: Iterable[str] | None = None,
                    force: bool = False, workers: int = 4) -> MetadataReport:
    """Extract and store the metadata of the dataset's images (or ``relpaths``)
    whose digest changed since the last extraction (all with ``force``). File
    reads run in ``workers`` threads. Unreadable images go to ``errors``."""
    store = dataset.store
    store.ensure_schema("metadata")
    known = {r["relpath"]: r["digest"] for r in store.execute("SELECT relpath, digest FROM image_metadata")}
    wanted = set(relpaths) if relpaths is not None else None
    report = MetadataReport()
    todo = []
    for rec in dataset.images():
        if wanted is not None and rec.relpath not in wanted:
            continue
        if rec.error or not rec.digest:
            report.errors[rec.relpath] = rec.error or "not read yet: run scan"
            continue
        if not force and known.get(rec.relpath) == rec.digest:
            report.unchanged += 1
            continue
        todo.append(rec)

    def work(rec: Any) -> tuple[Any, dict[str, Any] | None, str | None]:
        try:
            return rec, extract(dataset.image_path(rec.relpath)), None
        except imaging.ImageReadError as exc:
            return rec, None, exc.reason
        except OSError as exc:
            return rec, None, imaging._explain(exc)

    rows = []
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="metadata") as pool:
        for rec, meta, error in pool.map(work, todo):
            if meta is None:
                report.errors[rec.relpath] = error or "unreadable"
                continue
            rows.append((rec.relpath, rec.digest, json.dumps(meta, sort_keys=True), time.time()))
            report.extracted.append(rec.relpath)
    if rows:
        store.executemany(
            "INSERT INTO image_metadata(relpath, digest, data, extracted_at) VALUES (?,?,?,?) "
            "ON CONFLICT(relpath) DO UPDATE SET digest=excluded.digest, data=excluded.data, "
            "extracted_at=excluded.extracted_at", rows)
    present = {r.relpath for r in dataset.images()}
    stale = [(rel,) for rel in known if rel not in present]
    if stale:
        store.executemany("DELETE FROM image_metadata WHERE relpath = ?", stale)
    return report


def get_metadata(store: Store, relpath: str, extract_missing: bool = True) -> dict[str, Any] | None:
    """The metadata dict of one image (see the module docstring), or None.

    Reads the stored dict. With ``extract_missing`` (default), an image the
    store knows but whose metadata was never extracted, or was extracted from
    other bytes (digest changed), is read now and stored, so the export
    manifest and the TUI info panel need no separate step. None when the
    image is unknown or unreadable.
    """
    store.ensure_schema("metadata")
    rows = store.execute("SELECT digest, data FROM image_metadata WHERE relpath = ?", (relpath,))
    rec = store.image(relpath) if (extract_missing or rows) else None
    if rows and (rec is None or rec.digest == rows[0]["digest"]):
        return json.loads(rows[0]["data"])
    if not extract_missing or rec is None or rec.error or not rec.digest:
        return json.loads(rows[0]["data"]) if rows else None
    if store.path.parent.name != STORE_DIRNAME:
        return None
    try:
        meta = extract(store.path.parent.parent / relpath)
    except (imaging.ImageReadError, OSError):
        return None
    store.execute(
        "INSERT INTO image_metadata(relpath, digest, data, extracted_at) VALUES (?,?,?,?) "
        "ON CONFLICT(relpath) DO UPDATE SET digest=excluded.digest, data=excluded.data, "
        "extracted_at=excluded.extracted_at",
        (relpath, rec.digest, json.dumps(meta, sort_keys=True), time.time()))
    return meta


def all_metadata(store: Store) -> dict[str, dict[str, Any]]:
    """``{relpath: metadata dict}`` for every image with stored metadata."""
    store.ensure_schema("metadata")
    return {r["relpath"]: json.loads(r["data"])
            for r in store.execute("SELECT relpath, data FROM image_metadata ORDER BY relpath")}
