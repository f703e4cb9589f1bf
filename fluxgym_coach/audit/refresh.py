"""Findings brought up to date for a few images after a change, without a new audit.

A caption saved, a review decision or an accepted enhancement changes what the
audit says about one image: "caption-missing" no longer holds once a caption is
written, "low_resolution" no longer holds once the enhanced variant that export
writes is large enough. :func:`refresh_findings` recomputes the findings of those
images from the store alone (their records, the extra measures the scan and the
audit stored, the selection and variants): no decode, no scan, a few
milliseconds per image, so a front end can call it after every change.

What is recomputed, with the parameters of the last audit (resolution,
thresholds, caption rules; :data:`fluxgym_coach.audit.rules.SETTINGS_KEY`):

* the per-image rules (:func:`fluxgym_coach.audit.rules.image_findings`), judged
  on the image *as exported*: when the selection picks an enhanced variant
  (accepted, or pending: export writes it), its width and height replace the
  original's, a colorized variant is no longer grayscale, and the format rules
  are skipped (export writes its own format);
* the trainer-profile findings (:mod:`fluxgym_coach.audit.trainer_rules`: bucket
  crops cutting a face, upscales) on the same exported size;
* the caption rules of :mod:`fluxgym_coach.captions.linting` (per caption), and the
  ones that compare captions across the dataset (same caption as another image,
  length outlier: :func:`~fluxgym_coach.captions.linting.dataset_findings`), which
  may also change for *other* images (the image that shared the old text).

Findings no rule here makes (duplicate groups of pixels, findings of other
modules) are carried over from ``previous`` unchanged: a caption or a decision
does not change them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..dataset import Dataset
from ..findings import Finding
from ..store import ImageRecord
from .measures import stored_measures
from . import trainer_rules
from .caption_rules import _caption_rules, _convert_caption_finding, no_caption_finding
from .image_rules import CODES, Thresholds, category_of, image_findings
from .rules import SETTINGS_KEY, ImageAudit, _trainer_findings
from .exported import EXPORTED_STATUSES, as_exported, exported_variant  # noqa: F401 (re-exported)

#: Codes this module recomputes (besides every ``caption-*`` code); others are carried over.
RECOMPUTED = frozenset({c for c, cat in CODES.items() if cat != "duplicate"}
                       | set(trainer_rules.TRAINER_CODES.values()))
#: Caption codes that depend on the other captions (``caption-`` + the rule's code).
_DATASET_WIDE = ("caption-duplicate", "caption-length-outlier")


def _recomputed(code: str) -> bool:
    return code in RECOMPUTED or code.startswith("caption-")


def _settings(dataset: Dataset) -> tuple[int, Thresholds, bool, str | None]:
    """(resolution, thresholds, caption rules on, trigger) of the last audit."""
    from ..settings import load_settings

    saved = dataset.store.get_setting(SETTINGS_KEY, {}) or {}
    known = {k: v for k, v in (saved.get("thresholds") or {}).items()
             if k in Thresholds.__dataclass_fields__}
    return (int(saved.get("resolution") or 1024), Thresholds(**known),
            bool(saved.get("caption_rules", True)), load_settings(dataset.store).trigger)


def _caption_part(rec: ImageRecord, trigger: str | None, rules: bool, lint: Any,
                  wide: Sequence[Finding]) -> list[Finding]:
    """The caption findings of one readable image (as :func:`rules.build_report` makes them)."""
    if rules and lint is not None:
        own = [_convert_caption_finding(f) for f in lint(rec.caption, trigger,
                                                         encoding=rec.caption_encoding)]
        return own + list(wide)
    missing = no_caption_finding(rec)
    return [] if missing is None else [missing]


def _wide_findings(captions: Mapping[str, str | None], rules: bool) -> dict[str, list[Finding]]:
    """Dataset-wide caption findings of every image, as audit findings."""
    if not rules:
        return {}
    try:
        from ..captions.linting import dataset_findings
    except ImportError:  # the caption rules are optional for the audit
        return {}
    return {rel: [_convert_caption_finding(f) for f in fs]
            for rel, fs in dataset_findings(dict(captions)).items()}


def _sort(findings: list[Finding]) -> list[Finding]:
    """Most serious first, then by category and code."""
    return sorted(findings, key=lambda f: (f.severity.rank, f.category, f.code))


def refresh_findings(dataset: Dataset, relpaths: Iterable[str],
                     previous: Mapping[str, Sequence[Finding]] | None = None, *,
                     captions: Mapping[str, str | None] | None = None) -> dict[str, ImageAudit]:
    """Recompute the findings of ``relpaths`` after a change (see the module docstring).

    ``previous`` maps relpath -> the findings shown so far (the audit's
    :class:`~fluxgym_coach.findings.Finding`, which the TUI shows as they are);
    the ones no rule here makes are kept. ``captions`` (relpath -> caption text of every image, as a front end
    holds them) saves a store query; default: read from the store.
    Returns relpath -> :class:`~fluxgym_coach.audit.rules.ImageAudit` (findings
    most serious first) for every image of ``relpaths`` still in the store, plus
    every other image of ``previous`` whose dataset-wide caption findings
    changed (it shared the old or the new text; pass every image's findings,
    empty lists included, to get all of them; their ``bucket`` is None).
    Never decodes an image.
    """
    store = dataset.store
    previous = previous or {}
    resolution, th, rules, trigger = _settings(dataset)
    lint = _caption_rules()[1] if rules else None
    rules = rules and lint is not None
    records = {rel: rec for rel in dict.fromkeys(relpaths) if (rec := store.image(rel)) is not None}
    if captions is None:
        texts = {r.relpath: r.caption for r in store.images() if not r.error}
    else:
        texts = dict(captions)
        texts.update({rel: rec.caption for rel, rec in records.items()})
    wide = _wide_findings(texts, rules)
    extras = stored_measures(store, {r.digest for r in records.values() if r.digest})
    selection = store.selection()
    buckets = trainer_rules.bucket_inputs(store, list(records.values()))
    out: dict[str, ImageAudit] = {}
    for rel, rec in records.items():
        extra = extras.get(rec.digest) if rec.digest else None
        shown = as_exported(rec, exported_variant(dataset, rel, selection))
        findings, bucket = image_findings(shown, extra, resolution, th)
        if bucket is not None:
            findings.extend(_caption_part(rec, trigger, rules, lint, wide.get(rel, [])))
            if rel in buckets:  # trainer-profile findings on the size export writes
                findings.extend(_trainer_findings(rel, buckets[rel], findings, resolution, th))
        findings.extend(f for f in previous.get(rel, ()) if not _recomputed(f.code))
        out[rel] = ImageAudit(rel, rec.digest, bucket,
                              category_of(shown, extra) if bucket is not None else None,
                              _sort(findings))
    for rel, old in previous.items():  # images whose dataset-wide caption findings changed
        if rel in out:
            continue
        old_wide = [(f.code, f.message) for f in old if f.code in _DATASET_WIDE]
        new_wide = wide.get(rel, [])
        if old_wide == [(f.code, f.message) for f in new_wide]:
            continue
        rec = store.image(rel)
        if rec is None:
            continue
        extra = stored_measures(store, [rec.digest]).get(rec.digest) if rec.digest else None
        kept = [f for f in old if f.code not in _DATASET_WIDE]
        out[rel] = ImageAudit(rel, rec.digest, None, None if rec.error else category_of(rec, extra),
                              _sort(kept + new_wide))
    return out
