"""Which copy of a duplicate group to keep, and why.

Members of a group (exact copies or near duplicates) are ranked best first
by, in order:

1. readable before unreadable;
2. **more pixels** (the displayed width x height);
3. **higher bit depth** (16-bit before 8-bit), then a **lossless** file
   (PNG, TIFF, BMP) before a lossy one (JPEG, WebP, GIF) and full colour
   before a palette (a JPEG re-encode or a palette conversion of a PNG lost
   information the original still has);
4. **no transparency problem** (no transparent pixels to be flattened);
5. an **original name** before a derived one (``copy``, ``(1)``, ``_2``,
   ``_small``, ``_q40``, ``_resized``, ``_enhanced``... at the end of the stem);
6. then, as before: colour before black-and-white, sharper, captioned, and
   the name.

:func:`rank` sorts the members; :func:`reason` says in a few words why the
first one beat the second (the first criterion that tells them apart).
"""

from __future__ import annotations

import re
from typing import Any

from ..store import ImageRecord

#: Formats that keep every pixel as it was (a re-encode into them loses nothing more).
LOSSLESS_FORMATS = frozenset({"PNG", "TIFF", "BMP"})
_PALETTE_MODES = frozenset({"P", "PA", "1"})
_DERIVED = re.compile(
    r"(?:[ _.-]*(?:copy|kopie|copie|\(\d+\))|[ _.-](?:\d{1,2}|small|thumb|thumbnail|resized|scaled|"
    r"edit|edited|enhanced|compressed|web|lowres|preview|q\d{1,3}|\d+px|\d{3,5}x\d{3,5}))$",
    re.IGNORECASE)


def is_derived_name(relpath: str) -> bool:
    """True when the file name looks made from another one (``x copy.png``, ``x (1).jpg``,
    ``x_2.png``, ``x_small.png``, ``x_q40.jpg``...)."""
    stem = relpath.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return bool(_DERIVED.search(stem))


def _facts(rec: ImageRecord, extra: Any) -> dict[str, Any]:
    w, h = rec.display_size or (0, 0)
    depth = (getattr(extra, "bit_depth", None) or 8) if extra is not None else 8
    alpha = getattr(extra, "alpha_fraction", None) if extra is not None else None
    return {"error": rec.error is not None, "pixels": w * h, "size": f"{w}x{h}", "depth": depth,
            "lossy": (rec.format or "") not in LOSSLESS_FORMATS, "format": rec.format or "?",
            "palette": (rec.mode or "") in _PALETTE_MODES,
            "alpha": bool(alpha and alpha > 0) or (rec.mode or "") in ("PA",),
            "derived": is_derived_name(rec.relpath), "gray": bool(rec.is_grayscale),
            "sharp": rec.sharpness or 0.0, "uncaptioned": not (rec.caption or "").strip(),
            "name": rec.relpath}


def _key(f: dict[str, Any]) -> tuple:
    return (f["error"], -f["pixels"], -f["depth"], f["lossy"], f["palette"], f["alpha"], f["derived"],
            f["gray"], -f["sharp"], f["uncaptioned"], f["name"])


def rank(members: list[ImageRecord], extras: dict[str, Any] | None = None) -> list[ImageRecord]:
    """``members`` best first (see the module docstring). ``extras`` maps digests to
    the audit's extra measures (bit depth, transparency); missing ones count as 8-bit
    and opaque."""
    extras = extras or {}
    return sorted(members, key=lambda r: _key(_facts(r, extras.get(r.digest) if r.digest else None)))


def reason(best: ImageRecord, other: ImageRecord, extras: dict[str, Any] | None = None) -> str:
    """Why ``best`` ranks before ``other``, in a few words (the first criterion that
    differs), e.g. ``"more pixels (1024x768 vs 512x384)"``."""
    extras = extras or {}
    a = _facts(best, extras.get(best.digest) if best.digest else None)
    b = _facts(other, extras.get(other.digest) if other.digest else None)
    if a["error"] != b["error"]:
        return "readable"
    if a["pixels"] != b["pixels"]:
        return f"more pixels ({a['size']} vs {b['size']})"
    if a["depth"] != b["depth"]:
        return f"higher bit depth ({a['depth']}-bit vs {b['depth']}-bit)"
    if a["lossy"] != b["lossy"]:
        return f"lossless {a['format']} (vs lossy {b['format']})"
    if a["palette"] != b["palette"]:
        return "full colour (the other is a palette image)"
    if a["alpha"] != b["alpha"]:
        return "no transparent pixels"
    if a["derived"] != b["derived"]:
        return f"original name ({other.relpath.rsplit('/', 1)[-1]} looks derived)"
    if a["gray"] != b["gray"]:
        return "in colour"
    if a["sharp"] != b["sharp"]:
        return f"sharper ({a['sharp']:.0f} vs {b['sharp']:.0f})"
    if a["uncaptioned"] != b["uncaptioned"]:
        return "has a caption"
    return "identical: first by name"
