"""Images as the export writes them: the selected enhanced variant's size, not the original's.

The audit judges what the trainer will read. When the review selection picks an
enhanced variant for an image (accepted, or pending: export writes it), the
size, grayscale and format rules apply to that variant, so an image whose
accepted 4x upscale is large enough is no longer "low_resolution" - in a full
audit (:func:`fluxgym_coach.audit.rules.audit_dataset`), in the report rebuilt
from the store, and in the per-image refresh after a change
(:func:`fluxgym_coach.audit.refresh.refresh_findings`) alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from ..statuses import ReviewStatus
from ..store import ImageRecord, Store, VariantRecord

#: Selection statuses whose variant is what export writes (rejected and excluded export none).
EXPORTED_STATUSES = frozenset({ReviewStatus.ACCEPTED, ReviewStatus.PENDING})


def as_exported(rec: ImageRecord, variant: VariantRecord | None) -> ImageRecord:
    """``rec`` as the export will write it: with ``variant`` (the selected enhanced
    result, or None) its size replaces the original's (the variant is stored
    upright: no EXIF orientation), a colorized one is not grayscale, and the
    format is left unknown (export writes its own)."""
    if variant is None or not variant.width or not variant.height or rec.error:
        return rec
    return dataclasses.replace(
        rec, width=variant.width, height=variant.height, orientation=None, format=None,
        mode="RGB", n_frames=1,
        is_grayscale=False if "colorize" in variant.kind else rec.is_grayscale)


def exported_variant(dataset, relpath: str,
                     selection: Mapping[str, tuple[str | None, str]] | None = None) -> VariantRecord | None:
    """The enhanced variant export writes for ``relpath`` of ``dataset`` (a
    :class:`~fluxgym_coach.dataset.Dataset`; selected and accepted or pending), or
    None when it exports the original or nothing."""
    sel = (selection if selection is not None else dataset.store.selection()).get(relpath)
    if not sel or sel[0] is None or sel[1] not in EXPORTED_STATUSES:
        return None
    for v in dataset.store.variants(relpath):
        if v.cache_key == sel[0]:
            return v
    return None


def exported_records(store: Store, records: Sequence[ImageRecord]) -> list[ImageRecord]:
    """``records`` (same order) as the export writes them (:func:`as_exported`), with one
    read of the selection and of the variants table."""
    selection = store.selection()
    wanted = {rel: sel[0] for rel, sel in selection.items()
              if sel and sel[0] is not None and sel[1] in EXPORTED_STATUSES}
    if not wanted:
        return list(records)
    chosen = {v.relpath: v for v in store.variants() if wanted.get(v.relpath) == v.cache_key}
    return [as_exported(rec, chosen.get(rec.relpath)) for rec in records]
