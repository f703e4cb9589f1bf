"""Undoable bulk caption edits: prefix, suffix, replace, sort and dedup tags, trigger first.

Every edit goes through :meth:`Dataset.write_caption
<fluxgym_coach.dataset.Dataset.write_caption>`, so each change is in the
caption history under one operation id (``bulk:<kind>:<8 hex>``);
:func:`undo_operation` reverts all of it, :func:`operations` lists them.
Every name here is also importable from :mod:`fluxgym_coach.captions.text`.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import EventSink, ItemDone, ItemFailed, JobFinished, JobStarted, null_sink
from .text import apply_trigger, dedup_tags, sort_tags, split_tags, starts_with_trigger, tag_key

if TYPE_CHECKING:  # pragma: no cover
    from ..dataset import Dataset


@dataclass(slots=True)
class BulkReport:
    """Result of a bulk edit: ``op_id`` (pass it to :func:`undo_operation`), the
    relpaths ``changed``, how many were ``unchanged``, ``skipped`` relpaths with the
    reason (e.g. no caption, held back), and ``failed`` ones whose caption could not
    be written, with the error."""

    op_id: str
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


def new_op_id(kind: str) -> str:
    """A fresh history source for one bulk operation: ``"bulk:<kind>:<8 hex>"``."""
    return f"bulk:{kind}:{uuid.uuid4().hex[:8]}"


def apply_to_captions(dataset: "Dataset", transform: Callable[[str], str], kind: str,
                      relpaths: Iterable[str] | None = None, *, include_missing: bool = False,
                      op_id: str | None = None) -> BulkReport:
    """Apply ``transform(text) -> new_text`` to captions through ``Dataset.write_caption``.

    ``relpaths`` defaults to every image in the store. Images without a
    sidecar are skipped unless ``include_missing`` (then ``transform("")`` is
    written). Each change is recorded in the caption history under the
    source ``op_id`` (default :func:`new_op_id` of ``kind``).
    """
    report = BulkReport(op_id or new_op_id(kind))
    rels = list(relpaths) if relpaths is not None else [r.relpath for r in dataset.images()]
    for rel in rels:
        current = dataset.read_caption(rel)
        if current is not None and current.error:  # binary / damaged sidecar: never edited blindly
            report.skipped[rel] = current.error
            continue
        if current is None and not include_missing:
            report.skipped[rel] = "no caption"
            continue
        old = current.text if current else ""
        new = transform(" ".join(old.split()))
        if not new.strip():
            report.skipped[rel] = "the edit would leave the caption empty"
            continue
        if dataset.write_caption(rel, new, source=report.op_id):
            report.changed.append(rel)
        else:
            report.unchanged += 1
    return report


def edit_captions(dataset: "Dataset", transform: Callable[[str], str], kind: str, relpaths: Iterable[str], *,
                  include_missing: bool = False, held: Mapping[str, str] | None = None,
                  source: str = "cli", chunk: int = 50, on_event: EventSink = null_sink) -> BulkReport:
    """One undoable bulk edit (:func:`apply_to_captions`, one ``op_id``) of ``relpaths`` as a
    job: ``JobStarted``, an ``ItemDone`` per image (``cached``: left unchanged), an
    ``ItemFailed`` per image ``held`` back (relpath -> reason, e.g. unsaved text in an
    editor; left unchanged) or whose caption could not be written, ``JobFinished``
    (summary ``{"changed": n}``). Each changed caption is recorded as a ``caption_edit``
    review decision (:func:`fluxgym_coach.feedback.record_decision`, params ``{"bulk": kind,
    "op": op_id}``, ``source``: the front end). Works in chunks of ``chunk`` images, so
    a sink that raises (a cancelled job) stops it between images; the edits made so far
    stay one undoable operation. Returns the :class:`BulkReport` (``skipped``: held and
    skipped images with the reason; ``failed``: captions that could not be written)."""
    from ..feedback import CAPTION_EDIT, Decision, record_decision
    from ..statuses import JobStatus

    rels, held = list(relpaths), dict(held or {})
    report = BulkReport(new_op_id(kind))
    job = report.op_id
    on_event(JobStarted(job, "bulk", len(rels)))
    for rel in rels:
        if rel in held:
            report.skipped[rel] = held[rel]
            on_event(ItemFailed(job, rel, held[rel]))
    todo = [r for r in rels if r not in held]
    failed = len(held)
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        try:
            done = apply_to_captions(dataset, transform, kind, part, include_missing=include_missing,
                                     op_id=report.op_id)
        except OSError as exc:
            for rel in part:
                report.failed[rel] = f"caption not saved: {exc}"
                on_event(ItemFailed(job, rel, report.failed[rel]))
            failed += len(part)
            continue
        for rel in done.changed:
            record_decision(dataset.store, Decision(rel, CAPTION_EDIT, params={"bulk": kind, "op": report.op_id},
                                                    source=source))
        report.changed += done.changed
        report.unchanged += done.unchanged
        report.skipped.update(done.skipped)
        for rel in part:
            on_event(ItemDone(job, rel, cached=rel not in done.changed))
    on_event(JobFinished(job, "bulk", JobStatus.DONE, len(report.changed), failed,
                         {"changed": len(report.changed)}))
    return report


def _cli_edit(dataset: "Dataset", transform: Callable[[str], str], kind: str,
              relpaths: Iterable[str] | None, *, include_missing: bool = False) -> BulkReport:
    """The ``bulk_*`` functions below are the ``captions`` commands: each is
    :func:`edit_captions` (one undoable operation, each change a ``caption_edit`` review
    decision, as the TUI's bulk edits) from source ``"cli"``, on ``relpaths`` or every
    image in the store."""
    rels = list(relpaths) if relpaths is not None else [r.relpath for r in dataset.images()]
    return edit_captions(dataset, transform, kind, rels, include_missing=include_missing, source="cli")


def _prefix(prefix: str, sep: str) -> Callable[[str], str]:
    prefix = prefix.strip()
    if "," not in prefix and sep.strip() == ",":
        # one tag (the trigger word): moved to the front where it is already a tag, never doubled
        return lambda text: apply_trigger(text, prefix)

    def f(text: str) -> str:
        if not text:
            return prefix
        if starts_with_trigger(text, prefix):
            return text
        return f"{prefix}{sep}{text}"
    return f


def bulk_prefix(dataset: "Dataset", prefix: str, relpaths: Iterable[str] | None = None,
                sep: str = ", ") -> BulkReport:
    """Put ``prefix`` at the start of each caption (skipped where it is there already).

    A single tag (the trigger word) is put first by :func:`apply_trigger`: where
    the caption already has it as a tag it is moved, never doubled. Images
    without a caption get the prefix alone.
    """
    return _cli_edit(dataset, _prefix(prefix, sep), "prefix", relpaths, include_missing=True)


def trigger_first_edit(trigger: str) -> Callable[[str], str]:
    """The caption edit that puts ``trigger`` first (:func:`apply_trigger`: moved to the
    front where it is already a tag, never doubled)."""
    return lambda text: apply_trigger(text, trigger)


def bulk_trigger_first(dataset: "Dataset", trigger: str, relpaths: Iterable[str] | None = None) -> BulkReport:
    """Put the trigger word first in each caption (:func:`trigger_first_edit`): what
    ``captions trigger-first``, ``captions prefix WORD`` and the TUI's ``t`` do."""
    return _cli_edit(dataset, trigger_first_edit(trigger), "trigger-first", relpaths,
                     include_missing=True)


def bulk_suffix(dataset: "Dataset", suffix: str, relpaths: Iterable[str] | None = None,
                sep: str = ", ") -> BulkReport:
    """Append ``suffix`` to each caption (skipped where it already ends with it)."""
    suffix = suffix.strip()

    def f(text: str) -> str:
        if text.rstrip(" ,.").endswith(suffix):
            return text
        return f"{text}{sep}{suffix}" if text else suffix
    return _cli_edit(dataset, f, "suffix", relpaths)


def replace_edit(pattern: str, replacement: str, *, regex: bool = True,
                 ignore_case: bool = False) -> Callable[[str], str]:
    """The caption edit that replaces ``pattern`` by ``replacement`` (see :func:`bulk_replace`).
    Raises ValueError for an invalid regular expression."""
    flags = re.IGNORECASE if ignore_case else 0
    try:
        rx = re.compile(pattern if regex else re.escape(pattern), flags)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    repl = replacement if regex else replacement.replace("\\", "\\\\")

    def f(text: str) -> str:
        new = rx.sub(repl, text)
        if new == text:
            return text
        new = re.sub(r"\s*,(\s*,)+", ",", new)
        return " ".join(new.strip(" ,").split())
    return f


def bulk_replace(dataset: "Dataset", pattern: str, replacement: str,
                 relpaths: Iterable[str] | None = None, *, regex: bool = True,
                 ignore_case: bool = False) -> BulkReport:
    """Replace ``pattern`` by ``replacement`` in each caption (what ``captions replace``
    and the TUI's search and replace do).

    With ``regex`` (default) the pattern is a Python regular expression and
    the replacement may use ``\\1`` groups; otherwise both are literal text.
    Raises ValueError for an invalid regular expression. Afterwards stray
    separators (``", ,"``, leading/trailing commas) are tidied.
    """
    return _cli_edit(dataset, replace_edit(pattern, replacement, regex=regex, ignore_case=ignore_case),
                     "replace", relpaths)


def bulk_sort_tags(dataset: "Dataset", relpaths: Iterable[str] | None = None,
                   keep_first: int = 1, by: str = "alpha") -> BulkReport:
    """Sort each caption's tags (the first ``keep_first`` stay first).

    ``by``: ``"alpha"`` (alphabetical) or ``"frequency"`` (most used in the
    dataset first, then alphabetical). Raises ValueError for another ``by``.
    """
    rels = list(relpaths) if relpaths is not None else [r.relpath for r in dataset.images()]
    if by == "alpha":
        key: Callable[[str], Any] = tag_key
    elif by == "frequency":
        freq: Counter[str] = Counter()
        for rec in dataset.images():
            freq.update({tag_key(t) for t in split_tags(rec.caption)})
        key = lambda t: (-freq[tag_key(t)], tag_key(t))  # noqa: E731
    else:
        raise ValueError(f"unknown sort order {by!r}: use 'alpha' or 'frequency'")
    return _cli_edit(dataset, lambda t: sort_tags(t, keep_first, key), "sort-tags", rels)


def bulk_dedup_tags(dataset: "Dataset", relpaths: Iterable[str] | None = None) -> BulkReport:
    """Remove repeated tags from each caption (first occurrence kept)."""
    return _cli_edit(dataset, dedup_tags, "dedup-tags", relpaths)


def operations(dataset: "Dataset", limit: int = 20) -> list[dict[str, Any]]:
    """Recent bulk operations (newest first): ``{"op_id", "images", "undone", "at"}``.

    Covers caption edits whose history source starts with ``bulk:`` or ``tags:``.
    """
    rows = dataset.store.execute(
        "SELECT source, COUNT(*) AS n, SUM(undone) AS u, MAX(at) AS at FROM caption_history "
        "WHERE source LIKE 'bulk:%' OR source LIKE 'tags:%' GROUP BY source ORDER BY at DESC LIMIT ?",
        (limit,))
    return [{"op_id": r["source"], "images": r["n"], "undone": r["u"], "at": r["at"]} for r in rows]


def undo_operation(dataset: "Dataset", op_id: str) -> BulkReport:
    """Undo every caption change of one bulk operation.

    An image is reverted only when that operation's change is still its
    newest one; images edited since are left alone and listed in
    ``skipped`` (undo those one by one with ``Dataset.undo_caption``).
    Raises LookupError when ``op_id`` has no change left to undo.
    """
    rows = dataset.store.execute(
        "SELECT DISTINCT relpath FROM caption_history WHERE source = ? AND undone = 0", (op_id,))
    if not rows:
        raise LookupError(f"operation {op_id!r}: nothing to undo (unknown id, or already undone)")
    report = BulkReport(f"undo:{op_id}")
    for row in rows:
        rel = row["relpath"]
        history = dataset.store.caption_history(rel, include_undone=False)
        if history and history[0]["source"] == op_id:
            dataset.undo_caption(rel)
            report.changed.append(rel)
        else:
            report.skipped[rel] = "edited after the operation; undo its later changes first"
    return report

__all__ = ["BulkReport", "apply_to_captions", "bulk_dedup_tags", "bulk_prefix", "bulk_replace", "bulk_sort_tags",
           "bulk_suffix", "bulk_trigger_first", "edit_captions", "new_op_id", "operations", "replace_edit",
           "trigger_first_edit", "undo_operation"]
