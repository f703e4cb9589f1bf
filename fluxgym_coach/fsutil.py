"""Atomic file writes: a temporary file in the same folder, fsync, then ``os.replace``.

A reader sees either the old file or the new one, never half of one, and a
crash leaves at most a ``.*.tmp`` file behind (ignored by scans, which skip
hidden names).

File modes: ``tempfile.mkstemp`` creates its file 0600, which would make every
written file private (a Fluxgym running as another user, in Docker or on a
shared machine, could not read an export). So the temporary file is given,
before it is renamed into place, the mode the file already had when it is
rewritten (a 0664 caption stays 0664), or ``0666 & ~umask`` for a new file,
as ``open()`` would create it.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from pathlib import Path

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask (e.g. ``0o022``).

    Read from ``/proc/self/status`` where Linux has it (no side effect); else
    set and restored with :func:`os.umask` under a lock (this module's writes
    wait for it; another thread creating a file at that instant could get mode
    bits of umask 0o077, never looser ones)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        old = os.umask(0o077)
        os.umask(old)
    return old


def mode_for(path: str | Path) -> int:
    """Permission bits a write of ``path`` should leave: the existing file's
    (``stat.S_IMODE``, following a symlink), else ``0o666 & ~umask``."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; creates parent folders. Returns the path.

    A rewritten file keeps its mode; a new one gets ``0o666 & ~umask`` (see the
    module docstring). Raises OSError when the folder is not writable (the
    temporary file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)
            else:  # pragma: no cover - Windows keeps only the read-only bit
                os.chmod(tmp, mode)
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
    """Copy a file's bytes to ``dst`` atomically (``dst``'s mode as in
    :func:`atomic_write_bytes`, not ``src``'s). Returns ``dst``."""
    with open(src, "rb") as fh:
        return atomic_write_bytes(dst, fh.read(), fsync=False)
