"""Atomic file writes: a temporary file in the same folder, fsync, then ``os.replace``.

A reader sees either the old file or the new one, never half of one, and a
crash leaves at most a ``.*.tmp`` file behind (ignored by scans, which skip
hidden names).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; creates parent folders. Returns the path.

    Raises OSError when the folder is not writable (the temporary file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | Path, text: str, fsync: bool = True) -> Path:
    """Write ``text`` as UTF-8 (no BOM) atomically. Returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy a file's bytes to ``dst`` atomically. Returns ``dst``."""
    with open(src, "rb") as fh:
        return atomic_write_bytes(dst, fh.read(), fsync=False)
