"""Saving a caption safely when other programs may edit the same sidecar.

A front end that shows a caption remembers what the sidecar held when it
read it (a :class:`CaptionStamp`: modification time, size and a digest of the
text). :func:`save_caption` writes only if the sidecar still holds that text;
otherwise it raises :class:`CaptionConflict` with both texts, and the front end
asks the user (save ``force=True``, or take the text on disk). The check
looks at ``st_mtime_ns`` and size first and reads the file only when they
differ, so an untouched sidecar costs one ``stat``.

Empty text removes the sidecar (kohya refuses a 0-byte caption file); the
old text stays in the caption history, so :meth:`Dataset.undo_caption`
brings it back.

:func:`user_written` names the images whose caption a person wrote or edited
(:func:`fluxgym_coach.captions.job.caption_status` ``"edited"``): the ones an
``overwrite`` captioning run would replace and must ask about first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import xxhash

from ..errors import FluxgymCoachError
from ..dataset import Dataset, one_line
from ..statuses import CaptionOrigin, CaptionWrite


@dataclass(frozen=True, slots=True)
class CaptionStamp:
    """What a sidecar held when it was read.

    ``text`` None means there was no sidecar; ``mtime_ns``/``size`` are its
    ``os.stat`` values (None when unknown: the file is then read to compare).
    """

    text: str | None
    mtime_ns: int | None = None
    size: int | None = None

    @property
    def digest(self) -> str | None:
        """xxh3-64 of the one-line text (None: no sidecar)."""
        return None if self.text is None else xxhash.xxh3_64_hexdigest(one_line(self.text).encode())


def stamp_of_record(record: object) -> CaptionStamp:
    """The stamp the store's mirror of a sidecar describes (no file read):
    ``record`` is an :class:`~fluxgym_coach.store.ImageRecord`."""
    return CaptionStamp(getattr(record, "caption", None), getattr(record, "caption_mtime_ns", None),
                        getattr(record, "caption_size", None))


def read_stamp(dataset: Dataset, relpath: str) -> CaptionStamp:
    """The sidecar of ``relpath`` as it is on disk now."""
    path = dataset.sidecar_path(relpath)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return CaptionStamp(None)
    cap = dataset.read_caption(relpath)
    return CaptionStamp(cap.text if cap is not None else None, st.st_mtime_ns, st.st_size)


def changed_on_disk(dataset: Dataset, relpath: str, base: CaptionStamp) -> CaptionStamp | None:
    """The sidecar's current stamp when its text differs from ``base``, else None.

    Same ``mtime_ns`` and size as ``base``: unchanged without reading. Otherwise
    the text is read and compared by digest (a touch or a rewrite with the same
    text is no change).
    """
    path = dataset.sidecar_path(relpath)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None if base.text is None else CaptionStamp(None)
    if base.mtime_ns is not None and (st.st_mtime_ns, st.st_size) == (base.mtime_ns, base.size):
        return None
    now = read_stamp(dataset, relpath)
    if base.text is None:
        return now if (now.text or "").strip() else None
    return None if now.digest == base.digest else now


class CaptionConflict(FluxgymCoachError):
    """The sidecar changed on disk since it was read: ``disk`` is what it holds now,
    ``base`` what the editor started from."""

    def __init__(self, relpath: str, base: CaptionStamp, disk: CaptionStamp) -> None:
        super().__init__(f"{relpath}: the caption changed on disk since it was opened")
        self.relpath, self.base, self.disk = relpath, base, disk


def save_caption(dataset: Dataset, relpath: str, text: str, *, base: CaptionStamp | None,
                 source: str = "user", force: bool = False) -> CaptionWrite:
    """Save ``text`` as the caption of ``relpath`` unless the sidecar changed since ``base``.

    Returns :class:`CaptionWrite` ``WRITTEN``, ``REMOVED`` (empty text: the sidecar
    is deleted, the old text kept in the history) or ``UNCHANGED``. Raises
    :class:`CaptionConflict` when the sidecar no longer holds ``base``'s text
    (``force`` skips the check; ``base`` None: no check), OSError when the
    folder is not writable.
    """
    if base is not None and not force:
        disk = changed_on_disk(dataset, relpath, base)
        if disk is not None:
            raise CaptionConflict(relpath, base, disk)
    new = one_line(text)
    if new:
        written = dataset.write_caption(relpath, new, source=source)
        return CaptionWrite.WRITTEN if written else CaptionWrite.UNCHANGED
    current = dataset.read_caption(relpath)
    if current is None:
        return CaptionWrite.UNCHANGED
    dataset.sidecar_path(relpath).unlink(missing_ok=True)
    dataset.store.add_caption_history(relpath, current.text, None, source)
    dataset.store.update_caption_mirror(relpath, None, None, None, None)
    return CaptionWrite.REMOVED


def user_written(dataset: Dataset, relpaths: Iterable[str]) -> list[str]:
    """The images among ``relpaths`` whose caption a person wrote or edited
    (reads each sidecar and its history)."""
    from .job import caption_status

    return [rel for rel in relpaths if caption_status(dataset, rel) == CaptionOrigin.EDITED]
