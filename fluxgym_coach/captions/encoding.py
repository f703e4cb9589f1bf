"""Decoding caption sidecars: which encoding a ``.txt`` is in, and which ones are refused.

kohya sd-scripts opens captions as strict UTF-8 (``open(path, encoding="utf-8")``),
so whatever we read is written back (saved, exported) as UTF-8 without BOM.
What people hand us, and how it is read (:func:`decode_caption`):

* a byte-order mark decides: UTF-32 LE/BE (``FF FE 00 00`` / ``00 00 FE FF``,
  checked before UTF-16's), UTF-8 (``EF BB BF``), UTF-16 LE/BE (``FF FE`` / ``FE FF``);
  the BOMs are the Unicode Standard's (chapter 23.8, "Byte Order Mark");
* no BOM: strict UTF-8; else UTF-16 without BOM when the NUL bytes sit on one
  byte parity only and are at least :data:`UTF16_MIN_NUL_SHARE` of the code
  units (ASCII-range text in UTF-16 LE is ``t\\0e\\0x\\0t\\0``), and the result
  decodes strictly with no control character; else Windows-1252 (what Windows
  editors write, Fluxgym issue #436);
* anything whose decoded text holds NUL, another C0 control (all but tab, line
  feed, vertical tab, form feed, carriage return), DEL or a C1 control
  (U+0080-U+009F) is **refused**: a binary file renamed ``.txt``, or a
  damaged or unknown encoding. A refused caption comes back with empty
  ``text``, ``encoding`` :data:`REFUSED` and ``error`` naming the file, the
  first bad byte and the fix; it is never used as a caption nor exported.
  ``damaged`` keeps the file's content losslessly (decoded, or Latin-1 of its
  bytes) for the caption history when it is replaced.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

#: ``CaptionText.encoding`` of a refused sidecar.
REFUSED = "invalid"
#: Share of UTF-16 code units that must hold a NUL byte (on one parity only)
#: for a BOM-less file to be read as UTF-16.
UTF16_MIN_NUL_SHARE = 0.3
#: C0 controls but tab, LF, VT, FF, CR; DEL; C1 controls.
BAD_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_FIX = ("Fix: open it in a text editor and save it as UTF-8, or delete it and let "
        "`fluxgym-coach caption` write a new one (the old text stays in the caption history)")


@dataclass(slots=True)
class CaptionText:
    """A sidecar as read: ``text`` (BOM removed, line ends kept), the ``encoding``
    it was decoded with (a Python codec name, or :data:`REFUSED`), a ``warning``
    when that was not UTF-8, and for a refused file ``error`` (why, and the fix)
    and ``damaged`` (its content as far as it could be decoded)."""

    text: str
    encoding: str
    warning: str | None = None
    error: str | None = None
    damaged: str | None = None


def _utf16_without_bom(raw: bytes) -> str | None:
    """``"utf-16-le"``/``"utf-16-be"`` when the NUL pattern says UTF-16 without BOM, else None."""
    if len(raw) < 4 or len(raw) % 2:
        return None
    units = len(raw) // 2
    even, odd = raw[0::2].count(0), raw[1::2].count(0)
    if even == 0 and odd >= UTF16_MIN_NUL_SHARE * units:
        return "utf-16-le"
    if odd == 0 and even >= UTF16_MIN_NUL_SHARE * units:
        return "utf-16-be"
    return None


def _decode(raw: bytes) -> tuple[str, str] | None:
    """(text, encoding) by BOM, UTF-8, UTF-16 without BOM, cp1252; None when none fits."""
    for bom, enc in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(enc), enc
            except UnicodeDecodeError:
                return None
    enc16 = _utf16_without_bom(raw) if b"\0" in raw else None
    if enc16:  # checked first: ASCII text in UTF-16 is also valid (NUL-riddled) UTF-8
        try:
            text = raw.decode(enc16)
            if not BAD_CHARS.search(text):
                return text, enc16
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if b"\0" in raw:
        return None
    try:
        return raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return None


def _first_bad_utf8(raw: bytes) -> int:
    """Offset of the first byte that strict UTF-8 rejects (after a UTF-8 BOM)."""
    start = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        raw[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        return start + exc.start
    return start  # pragma: no cover - only called when decoding failed


def _refused(path: Path, raw: bytes, decoded: tuple[str, str] | None) -> CaptionText:
    if decoded is not None:
        text, enc = decoded
        m = BAD_CHARS.search(text)
        assert m is not None
        what = (f"a NUL byte (U+0000) at character {m.start() + 1}" if m.group() == "\0" else
                f"the control character U+{ord(m.group()):04X} at character {m.start() + 1}")
        where = f"{what} (read as {enc})"
        damaged = text
    else:
        nul = raw.find(b"\0")
        if nul >= 0:
            where = f"a NUL byte at byte {nul + 1}"
        else:
            bad = _first_bad_utf8(raw)
            where = (f"the byte 0x{raw[bad]:02X} at byte {bad + 1}, which is neither UTF-8 nor "
                     f"Windows-1252 text")
        damaged = raw.decode("latin-1")
    msg = (f"{path}: caption refused, it holds {where}: a binary file or a damaged encoding. "
           f"It is not used as a caption and never exported. {_FIX}")
    return CaptionText("", REFUSED, warning=msg, error=msg, damaged=damaged)


def decode_caption(raw: bytes, path: str | Path = "caption") -> CaptionText:
    """Decode a sidecar's bytes as the module docstring says; ``path`` is named in
    messages. Never raises: a refused file has ``error`` set and empty ``text``."""
    path = Path(path)
    decoded = _decode(raw)
    if decoded is None or BAD_CHARS.search(decoded[0]):
        return _refused(path, raw, decoded)
    text, enc = decoded
    if enc == "utf-8" or enc == "utf-8-sig":
        return CaptionText(text, enc)
    label = {"utf-32": "UTF-32", "utf-16": "UTF-16", "utf-16-le": "UTF-16 LE without BOM",
             "utf-16-be": "UTF-16 BE without BOM", "cp1252": "Windows-1252"}[enc]
    return CaptionText(text, enc, f"caption is not UTF-8; read as {label} ({enc}). Saving or exporting "
                                  "writes it back as UTF-8 (the original stays in the history)")


def read_caption_file(path: str | Path) -> CaptionText | None:
    """Read and decode a sidecar (:func:`decode_caption`); None if it does not exist.
    Raises OSError for a file that exists but cannot be read."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    return decode_caption(raw, path)


__all__ = ["BAD_CHARS", "CaptionText", "REFUSED", "UTF16_MIN_NUL_SHARE", "decode_caption", "read_caption_file"]
