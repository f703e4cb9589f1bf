"""The in-memory index behind the TUI's image list: rows, filters, search and sort.

Built once from the dataset store (one query for images, one for the
selection, one for the variants, plus the audit findings when the audit
module is present) and kept in memory, so filtering, searching and sorting
10,000 images is a pass over a Python list, never a query per keystroke.
No Textual import here: the index is plain data and is tested on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..dataset import Dataset
from ..findings import Finding, Severity
from ..statuses import ReviewStatus
from ..store import ImageRecord, VariantRecord

#: Review status of an image (what the selection table says, or nothing yet):
#: ``accepted`` (the variant shown is exported), ``rejected`` (the enhancement is
#: rejected, the original is exported), ``excluded`` (left out of the export).
UNREVIEWED, ACCEPTED, REJECTED, EXCLUDED = (ReviewStatus.UNREVIEWED, ReviewStatus.ACCEPTED,
                                          ReviewStatus.REJECTED, ReviewStatus.EXCLUDED)

#: Filters of the list, in the order the filter key cycles through them.
FILTERS: tuple[str, ...] = ("all", "needs-caption", "flagged", "unreviewed", "accepted",
                            "rejected", "excluded", "enhanced")
FILTER_LABELS = {
    "all": "all images", "needs-caption": "needs caption", "flagged": "flagged",
    "unreviewed": "unreviewed", "accepted": "accepted", "rejected": "enhancement rejected",
    "excluded": "excluded from export", "enhanced": "enhanced",
}
#: Sort keys of the list, in the order the sort key cycles through them.
SORTS: tuple[str, ...] = ("name", "size", "caption", "status", "findings")


#: Severities that flag an image (shown with ``!`` in the list, the "flagged" filter).
FLAGGING = (Severity.ERROR, Severity.WARNING)


@dataclass(slots=True)
class Row:
    """One image of the list: its store record, review state, variants and findings."""

    record: ImageRecord
    status: str = UNREVIEWED
    selected_variant: str | None = None
    variants: list[VariantRecord] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    marked: bool = False
    draft: str | None = None  # unsaved caption text typed in the editor
    category: str | None = None  # learning-loop category from the audit ("bw/small/photo")

    @property
    def relpath(self) -> str:
        """The image's path relative to the dataset root."""
        return self.record.relpath

    @property
    def caption(self) -> str | None:
        """The caption as the store mirrors the sidecar (None: no sidecar)."""
        return self.record.caption

    @property
    def needs_caption(self) -> bool:
        """True when the image has no sidecar or an empty one."""
        return not (self.record.caption or "").strip()

    @property
    def flagged(self) -> bool:
        """True when the audit found an error or a warning, or the image could not be read."""
        return bool(self.record.error) or any(
            f.severity in FLAGGING and f.code not in NOT_FLAGGING for f in self.findings)

    @property
    def enhanced(self) -> bool:
        """True when at least one enhanced variant exists."""
        return bool(self.variants)

    def variant(self, cache_key: str | None) -> VariantRecord | None:
        """The variant with this cache key, or None."""
        for v in self.variants:
            if v.cache_key == cache_key:
                return v
        return None

    def all_findings(self) -> list[Finding]:
        """Audit findings, plus the read error as a finding when the audit has not said it."""
        out = list(self.findings)
        if self.record.error and not any(f.code == "unreadable" for f in out):
            out.insert(0, Finding("unreadable", Severity.ERROR, self.record.error, category="file"))
        return out

    def flags(self) -> list[Finding]:
        """The findings that flag the image (errors and warnings)."""
        return [f for f in self.all_findings()
                if f.severity in FLAGGING and f.code not in NOT_FLAGGING]


#: Finding codes that do not flag an image (the caption column and filter cover them).
NOT_FLAGGING = frozenset({"no_caption", "caption-missing", "caption-empty"})


def finding_from(f: Finding) -> Finding:
    """The audit's :class:`~fluxgym_coach.findings.Finding` as the list shows it: the
    same object (the TUI keeps no finding class of its own). Raises TypeError for
    anything else, so a duck-typed stand-in cannot slip in."""
    if not isinstance(f, Finding):
        raise TypeError(f"not a fluxgym_coach.findings.Finding: {type(f).__name__}")
    return f


class ImageIndex:
    """All rows of a dataset plus the current view (filter, search, sort).

    ``view`` is the list of rows shown, in order. Call :meth:`apply` after
    changing ``filter``, ``query`` or ``sort``; :meth:`refresh_rows` after a
    change to some images.
    """

    def __init__(self, rows: Iterable[Row] = ()):
        self.rows: list[Row] = list(rows)
        self.by_relpath: dict[str, Row] = {r.relpath: r for r in self.rows}
        self.filter = "all"
        self.query = ""
        self.sort = "name"
        self.view: list[Row] = list(self.rows)

    # -- loading ------------------------------------------------------------------
    @classmethod
    def load(cls, dataset: Dataset) -> "ImageIndex":
        """Build the index from the store of ``dataset`` (a few queries, no file reads)."""
        return cls(build_rows(dataset, dataset.store.images()))

    def reload(self, dataset: Dataset) -> None:
        """Rebuild all rows from the store, keeping marks, drafts and findings, then re-apply the view."""
        old = self.by_relpath
        self.rows = build_rows(dataset, dataset.store.images())
        for row in self.rows:
            prev = old.get(row.relpath)
            if prev is not None:
                row.marked, row.draft = prev.marked, prev.draft
                row.findings, row.category = prev.findings, prev.category
        self.by_relpath = {r.relpath: r for r in self.rows}
        self.apply()

    def refresh_rows(self, dataset: Dataset, relpaths: Iterable[str]) -> None:
        """Re-read some images (record, selection, variants) from the store in place."""
        selection = dataset.store.selection()
        for rel in relpaths:
            row = self.by_relpath.get(rel)
            rec = dataset.store.image(rel)
            if row is None or rec is None:
                continue
            row.record = rec
            sel = selection.get(rel)
            row.status, row.selected_variant = (sel[1], sel[0]) if sel else (UNREVIEWED, None)
            if row.status == ReviewStatus.PENDING:
                row.status = UNREVIEWED
            row.variants = dataset.store.variants(rel)

    def set_findings(self, findings: dict[str, list[Any]],
                     categories: dict[str, str | None] | None = None) -> None:
        """Attach audit findings (``{relpath: [finding, ...]}``) and categories to the rows."""
        for row in self.rows:
            row.findings = [finding_from(f) for f in findings.get(row.relpath, [])]
            if categories is not None:
                row.category = categories.get(row.relpath)

    # -- view -----------------------------------------------------------------------
    def matches(self, row: Row, filter_name: str | None = None) -> bool:
        """Whether ``row`` passes a filter (default: the current one)."""
        f = filter_name or self.filter
        if f == "all":
            return True
        if f == "needs-caption":
            return row.needs_caption
        if f == "flagged":
            return row.flagged
        if f == "enhanced":
            return row.enhanced
        return row.status == f

    def apply(self) -> list[Row]:
        """Recompute ``view`` from the filter, the search text and the sort; returns it."""
        q = self.query.strip().lower()
        rows = [r for r in self.rows if self.matches(r)]
        if q:
            rows = [r for r in rows if q in r.relpath.lower() or q in (r.caption or "").lower()]
        key = _SORT_KEYS[self.sort]
        rows.sort(key=key)
        self.view = rows
        return rows

    def position(self, relpath: str | None) -> int | None:
        """Index of ``relpath`` in the view, or None."""
        if relpath is None:
            return None
        for i, r in enumerate(self.view):
            if r.relpath == relpath:
                return i
        return None

    def next_matching(self, start: int, predicate: Callable[[Row], bool]) -> int | None:
        """Index of the first row after ``start`` (wrapping) that satisfies ``predicate``."""
        n = len(self.view)
        for step in range(1, n + 1):
            i = (start + step) % n
            if predicate(self.view[i]):
                return i
        return None

    def counts(self) -> dict[str, int]:
        """How many images pass each filter (ignoring the search text)."""
        return {f: sum(1 for r in self.rows if self.matches(r, f)) for f in FILTERS}

    def marked(self) -> list[Row]:
        """Rows marked for a bulk action."""
        return [r for r in self.rows if r.marked]

    def targets(self) -> list[Row]:
        """What a bulk action acts on: the marked rows in view if any row is marked,
        else every row in view. Marked rows the filter or search hides are left
        out (:meth:`hidden_marked` counts them)."""
        if not any(r.marked for r in self.rows):
            return list(self.view)
        return [r for r in self.view if r.marked]

    def hidden_marked(self) -> int:
        """How many marked rows the current filter or search hides."""
        shown = {id(r) for r in self.view}
        return sum(1 for r in self.rows if r.marked and id(r) not in shown)

    def describe_targets(self, rows: list[Row] | None = None) -> str:
        """``"3 marked images"`` / ``"12 images in view"``, plus the hidden marks
        (``"; 2 marked images hidden by the filter or search are left out"``)."""
        rows = self.targets() if rows is None else rows
        marked = any(r.marked for r in self.rows)
        text = plural(len(rows), "marked image" if marked else "image") + (
            "" if marked else " in view")
        hidden = self.hidden_marked()
        if hidden:
            text += (f"; {plural(hidden, 'marked image')} hidden by the filter or search "
                     f"{'is' if hidden == 1 else 'are'} left out")
        return text


def plural(n: int, noun: str) -> str:
    """``"1 image"``, ``"3 images"``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


_STATUS_ORDER = {UNREVIEWED: 0, EXCLUDED: 1, REJECTED: 2, ACCEPTED: 3}
_SORT_KEYS: dict[str, Callable[[Row], Any]] = {
    "name": lambda r: r.relpath.lower(),
    "size": lambda r: (-(r.record.short_side or 0), r.relpath.lower()),
    "caption": lambda r: (not r.needs_caption, r.relpath.lower()),
    "status": lambda r: (_STATUS_ORDER.get(r.status, 0), r.relpath.lower()),
    "findings": lambda r: (-len(r.flags()), -len(r.all_findings()), r.relpath.lower()),
}


def build_rows(dataset: Dataset, records: list[ImageRecord]) -> list[Row]:
    """Rows for ``records`` with their selection and variants from the store."""
    selection = dataset.store.selection()
    variants: dict[str, list[VariantRecord]] = {}
    for v in dataset.store.variants():
        variants.setdefault(v.relpath, []).append(v)
    rows = []
    for rec in records:
        sel = selection.get(rec.relpath)
        status, key = (sel[1], sel[0]) if sel else (UNREVIEWED, None)
        if status == ReviewStatus.PENDING:
            status = UNREVIEWED
        rows.append(Row(rec, status, key, variants.get(rec.relpath, [])))
    return rows
