"""Limits on what is read and resized: regular files of bounded size, bounded resizes.

Re-exported by :mod:`fluxgym_coach.imaging` (use them from there). Reading
refuses, by name and before any byte is read, a FIFO (a scan would wait on
it forever), a device (a link to ``/dev/zero`` never ends), a folder and a
file over :data:`MAX_FILE_BYTES`. Resizing refuses, before any pixel is
allocated, an upscale beyond :data:`MAX_UPSCALE`, an aspect ratio beyond
:data:`MAX_ASPECT` and an output over :data:`MAX_RESIZE_PIXELS`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import FluxgymCoachError

#: Largest upscale factor any resize here performs (8x): beyond it an upscaler
#: (or Lanczos) invents the picture rather than restoring it; a 1x1, 14x25 or
#: 102-px image asked to reach 1024 px is refused with :class:`ResizeLimitError`.
MAX_UPSCALE = 8.0
#: Longest side over shortest side beyond which an image is refused for
#: resizing (8:1): kohya's buckets stop at 1:4, and a 10000x10 strip scaled
#: to a 1024-px short side would need a 1-gigapixel canvas.
MAX_ASPECT = 8.0
#: Largest output of a resize, in pixels (64 MP, 192 MiB as RGB): bounds the
#: memory of every resize whatever the input (decodes are bounded by Pillow's
#: ``MAX_IMAGE_PIXELS``, about 89 MP, refused as :class:`ImageReadError`).
MAX_RESIZE_PIXELS = 64 * 1024 * 1024

#: Largest image file read, in bytes (512 MiB): a bigger file is refused by name
#: before anything is read, so a link to a huge file cannot fill the memory.
MAX_FILE_BYTES = 512 * 1024 * 1024


def _error(path: str | Path, reason: str) -> Exception:
    from .imaging import ImageReadError  # imaging imports this module at load time

    return ImageReadError(path, reason)


def _explain(exc: BaseException) -> str:
    from .imaging import _explain as explain

    return explain(exc)


def _not_regular(st: os.stat_result) -> str | None:
    """Why a stat result is not a readable image file (None when it is)."""
    if stat.S_ISDIR(st.st_mode):
        return "is a folder, not a file: rename it or move it out of the dataset"
    if stat.S_ISFIFO(st.st_mode):
        return "is a named pipe (FIFO), not a file: never read; remove it from the dataset"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return "is a device (or a link to one), not a file: never read; remove it from the dataset"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file: never read; remove it from the dataset"
    if st.st_size > MAX_FILE_BYTES:
        return (f"file too large ({st.st_size / 2**20:.0f} MiB, limit {MAX_FILE_BYTES // 2**20} MiB):"
                " not read; downscale or remove it")
    return None


def check_regular_file(path: str | Path) -> os.stat_result:
    """``os.stat`` of ``path`` (links followed), if it is a regular file within
    :data:`MAX_FILE_BYTES`. Raises :class:`ImageReadError` naming the file otherwise
    (folder, FIFO, device, missing, too large)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _error(path, _explain(exc)) from exc
    why = _not_regular(st)
    if why:
        raise _error(path, why)
    return st


def read_regular_file(path: str | Path) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most :data:`MAX_FILE_BYTES`.

    Opened non-blocking and checked with ``fstat`` on the open descriptor (no
    race with a file swapped for a FIFO after a ``stat``), so a FIFO, a device
    (a link to ``/dev/zero``) or a folder is refused at once, never read or
    waited on. Raises :class:`ImageReadError` naming the problem.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if isinstance(exc, IsADirectoryError):
            raise _error(path, _not_regular(os.stat(path)) or _explain(exc)) from exc
        raise _error(path, _explain(exc)) from exc
    try:
        why = _not_regular(os.fstat(fd))
        if why:
            raise _error(path, why)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise _error(path, _not_regular(os.fstat(fd)) or "file grew beyond the size limit")
        return data
    except OSError as exc:
        raise _error(path, _explain(exc)) from exc
    finally:
        os.close(fd)


class ResizeLimitError(FluxgymCoachError, ValueError):
    """A resize beyond :data:`MAX_UPSCALE`, :data:`MAX_ASPECT` or
    :data:`MAX_RESIZE_PIXELS`; the message says which limit and what to do."""


def check_resize(width: int, height: int, new_width: int, new_height: int) -> None:
    """Refuse a resize of ``width`` x ``height`` to ``new_width`` x ``new_height`` that
    exceeds the limits above (raises :class:`ResizeLimitError`, before any pixel
    is allocated)."""
    if min(width, height, new_width, new_height) <= 0:
        raise ResizeLimitError(f"cannot resize {width}x{height} to {new_width}x{new_height}")
    factor = max(new_width / width, new_height / height)
    if factor > MAX_UPSCALE:
        raise ResizeLimitError(
            f"{width}x{height} would be upscaled x{factor:.1f} to {new_width}x{new_height}, beyond the "
            f"x{MAX_UPSCALE:g} limit: use a larger source image, or leave this one out")
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ResizeLimitError(
            f"{width}x{height} has an aspect ratio of {max(width, height) / min(width, height):.0f}:1, "
            f"beyond the {MAX_ASPECT:g}:1 limit: crop it first")
    if new_width * new_height > MAX_RESIZE_PIXELS:
        raise ResizeLimitError(
            f"resizing {width}x{height} to {new_width}x{new_height} would make "
            f"{new_width * new_height / 1e6:.0f} MP, over the {MAX_RESIZE_PIXELS / 2**20:.0f} MP limit")


