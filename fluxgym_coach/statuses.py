"""Every status and decision name of fluxgym-coach, as StrEnums (:class:`enum.StrEnum`).

Each member *is* the string it stood for before (``JobStatus.DONE == "done"``,
``json.dumps`` and SQLite store ``"done"``), so the store, ``--json`` output,
journals and exported decision files read exactly as before, and code that
still compares with the raw string keeps working. Use the members in new code:
a typo is then an ``AttributeError`` at import time instead of a comparison
that is silently never true.

Which enum answers which question:

* :class:`JobStatus`: how a job stands or ended (the store's ``jobs`` table,
  :class:`~fluxgym_coach.events.JobFinished`, the TUI's jobs panel). Journal
  items (``job_items``) use ``DONE`` and ``FAILED``.
* :class:`ReviewStatus`: the review state of an image's export selection
  (``Store.selection()``); ``UNREVIEWED`` is what front ends show for an image
  with no selection row or a ``PENDING`` one.
* :class:`DecisionKind`: what a review decision did (the ``decisions`` table,
  :mod:`fluxgym_coach.feedback`).
* :class:`EnhanceStatus`: what an enhancement job did with one source
  (``Outcome.status``) or one output file (``FileResult.status``).
* :class:`CaptionStatus`: what a captioning job did with one image
  (``CaptionOutcome.status``).
* :class:`CaptionOrigin`: who wrote an image's current caption
  (``captions.caption_status``).
* :class:`CaptionWrite`: what saving one caption did
  (:func:`fluxgym_coach.captions.sync.save_caption`).

Severities of findings are :class:`fluxgym_coach.findings.Severity`, the same kind
of enum. ``tests/test_status_literals.py`` fails on a raw status string in package
code (compared, assigned, passed, returned); the store's schema has no CHECK on
these columns, so the enums are the one list of allowed values.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """State of a job. ``RUNNING`` while it works; ``CANCELLING`` only in front ends
    (stop asked, not yet stopped); it ends ``DONE`` (closed: a re-run starts
    afresh), ``CANCELLED`` or ``FAILED`` (both resumable: a re-run with the same
    command skips what the journal holds)."""

    RUNNING = "running"
    CANCELLING = "cancelling"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


class ReviewStatus(StrEnum):
    """Review state of an image's export selection.

    ``PENDING``: selected automatically (e.g. ``prepare`` picked an enhanced
    variant), not reviewed yet; ``ACCEPTED``: the user accepted the selected
    variant (or the original); ``REJECTED``: the enhancement was rejected, the
    original is exported; ``EXCLUDED``: left out of the export. ``UNREVIEWED``
    is never stored: it is how front ends name "no selection row, or pending".
    """

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXCLUDED = "excluded"
    UNREVIEWED = "unreviewed"


class DecisionKind(StrEnum):
    """What a review decision did (see :func:`fluxgym_coach.feedback.record_decision`)."""

    ACCEPT = "accept"
    REJECT = "reject"
    REPROCESS = "reprocess"
    CAPTION_EDIT = "caption_edit"
    EXCLUDE = "exclude"
    INCLUDE = "include"


class EnhanceStatus(StrEnum):
    """What an enhancement job did with one source or output file.

    Per source (``Outcome``): ``PENDING`` (not reached yet), ``ENHANCED``
    (computed now), ``CACHED`` (from the cache or the journal), ``SKIPPED``
    (nothing to do, or cancelled before it ran), ``FAILED``. Per output file
    (``FileResult``) also ``COPIED`` (the original written in the output
    format), ``UNCHANGED`` (the output already had these bytes) and
    ``CANCELLED``; the CLI's ``enhance`` of files adds ``EXISTS`` (the output
    file was there, left alone without ``--force``).
    """

    PENDING = "pending"
    ENHANCED = "enhanced"
    CACHED = "cached"
    SKIPPED = "skipped"
    FAILED = "failed"
    COPIED = "copied"
    UNCHANGED = "unchanged"
    CANCELLED = "cancelled"
    EXISTS = "exists"


class CaptionStatus(StrEnum):
    """What a captioning job did with one image: ``PENDING`` (not reached yet),
    ``CAPTIONED`` (backend called now), ``CACHED`` (result from the cache),
    ``RESUMED`` (done in an earlier run of this job), ``SKIPPED`` (has a caption,
    edited by the user, cancelled...) or ``FAILED``."""

    PENDING = "pending"
    CAPTIONED = "captioned"
    CACHED = "cached"
    RESUMED = "resumed"
    SKIPPED = "skipped"
    FAILED = "failed"


class CaptionOrigin(StrEnum):
    """Who wrote an image's current caption: ``MISSING`` (no sidecar, or empty),
    ``DRAFT`` (the draft backend, unchanged since), ``GENERATED`` (another
    captioner, unchanged since) or ``EDITED`` (a person, a bulk edit, another
    program). The TUI's "needs caption" filter is ``MISSING`` (no text at all);
    ``DRAFT`` captions are flagged by the caption lint instead."""

    MISSING = "missing"
    DRAFT = "draft"
    GENERATED = "generated"
    EDITED = "edited"


class CaptionWrite(StrEnum):
    """What saving one caption did: ``WRITTEN`` (the sidecar now holds the text),
    ``REMOVED`` (empty text: the sidecar was deleted, the old text kept in the
    history) or ``UNCHANGED`` (the sidecar already held it, or there was none to
    remove)."""

    WRITTEN = "written"
    REMOVED = "removed"
    UNCHANGED = "unchanged"


__all__ = ["CaptionOrigin", "CaptionStatus", "CaptionWrite", "DecisionKind", "EnhanceStatus", "JobStatus",
           "ReviewStatus"]
