"""Tags across a dataset: the tag table, rename / merge / delete / add, autocomplete, proposals.

A **tag** is one comma-separated item of a caption (see
:func:`fluxgym_coach.captions.text.split_tags`). Tags are compared by
:func:`~fluxgym_coach.captions.text.tag_key` (case-folded, ``_`` read as a space),
so ``Red_Hair`` and ``red hair`` are one tag; the table shows the spelling
used most.

Reading uses the caption mirror in the store (as of the last scan or edit
through fluxgym-coach), so it costs no file reads even on large datasets.
Every change goes through :meth:`Dataset.write_caption` (atomic, in the
caption history) under one operation id per call (``"tags:<kind>:<8 hex>"``),
so :func:`fluxgym_coach.captions.text.undo_operation` reverts a whole rename.

Proposals (:func:`propose`) come from three places: the tags a captioning
backend returned for the image (deepdanbooru through Forge, a VLM asked for
tags, the draft; recorded by :func:`fluxgym_coach.captions.job.run_caption`),
tags that most images of the same folder carry and this one lacks, and the
folder name itself.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .text import BulkReport, apply_to_captions, join_tags, split_tags, tag_key

if TYPE_CHECKING:  # pragma: no cover
    from ..dataset import Dataset

#: Score of a proposal by where it comes from (a backend's own tags score 1.0).
SOURCE_WEIGHT = {"draft": 0.3, "folder": 0.6}
#: Share of the images of a folder that must carry a tag for it to be proposed.
FREQUENCY_MIN_SHARE = 0.3


@dataclass(slots=True)
class TagStat:
    """One row of the tag table: ``tag`` (most used spelling), ``key`` (its
    comparison key), ``count`` (images carrying it) and their ``images`` (relpaths)."""

    tag: str
    key: str
    count: int
    images: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


def _captions(dataset: "Dataset", relpaths: Iterable[str] | None = None) -> dict[str, str]:
    records = dataset.images()
    wanted = set(relpaths) if relpaths is not None else None
    return {r.relpath: r.caption or "" for r in records
            if not r.error and (wanted is None or r.relpath in wanted)}


def tag_table(dataset: "Dataset", relpaths: Iterable[str] | None = None,
              exclude: Iterable[str] = ()) -> list[TagStat]:
    """Every tag of the dataset (or of ``relpaths``) with the images carrying it,
    most used first, then alphabetical. Tags whose key is in ``exclude`` (e.g.
    the trigger word) are left out."""
    skip = {tag_key(t) for t in exclude}
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    images: dict[str, list[str]] = defaultdict(list)
    for rel, text in _captions(dataset, relpaths).items():
        seen: set[str] = set()
        for t in split_tags(text):
            k = tag_key(t)
            if k in skip:
                continue
            spellings[k][t] += 1
            if k not in seen:
                seen.add(k)
                images[k].append(rel)
    rows = [TagStat(spellings[k].most_common(1)[0][0], k, len(rels), rels) for k, rels in images.items()]
    rows.sort(key=lambda s: (-s.count, s.key))
    return rows


def _op(kind: str) -> str:
    return f"tags:{kind}:{uuid.uuid4().hex[:8]}"


def _replace_tags(text: str, keys: set[str], new: str | None) -> str:
    out: list[str] = []
    seen: set[str] = set()
    for t in split_tags(text):
        k = tag_key(t)
        if k in keys:
            if new is None:
                continue
            t, k = new, tag_key(new)
        if k in seen and (k in keys or (new is not None and k == tag_key(new))):
            continue
        seen.add(k)
        out.append(t)
    return join_tags(out)


def _touching(dataset: "Dataset", keys: set[str], relpaths: Iterable[str] | None) -> list[str]:
    return [rel for rel, text in _captions(dataset, relpaths).items()
            if any(tag_key(t) in keys for t in split_tags(text))]


def rename_tag(dataset: "Dataset", old: str, new: str,
               relpaths: Iterable[str] | None = None) -> BulkReport:
    """Rename tag ``old`` to ``new`` in every caption carrying it (position kept;
    if ``new`` is already there, the duplicate goes). Undo with the report's
    ``op_id``. Raises ValueError for an empty or comma-holding ``new``."""
    return merge_tags(dataset, [old], new, relpaths, kind="rename")


def merge_tags(dataset: "Dataset", sources: Sequence[str], target: str,
               relpaths: Iterable[str] | None = None, *, kind: str = "merge") -> BulkReport:
    """Replace every tag of ``sources`` by ``target`` (once per caption, at the
    first source's position). One undoable operation. Raises ValueError for an
    empty or comma-holding ``target`` or no ``sources``."""
    target = " ".join(target.split())
    if not target or "," in target:
        raise ValueError(f"a tag must be non-empty and hold no comma, got {target!r}")
    if not sources:
        raise ValueError("name at least one tag to merge")
    keys = {tag_key(s) for s in sources}
    rels = _touching(dataset, keys, relpaths)
    return apply_to_captions(dataset, lambda t: _replace_tags(t, keys, target), kind, rels,
                             op_id=_op(kind))


def delete_tag(dataset: "Dataset", tag: str, relpaths: Iterable[str] | None = None) -> BulkReport:
    """Remove ``tag`` from every caption carrying it. One undoable operation.
    A caption that would become empty is left alone (listed in ``skipped``)."""
    keys = {tag_key(tag)}
    rels = _touching(dataset, keys, relpaths)
    return apply_to_captions(dataset, lambda t: _replace_tags(t, keys, None), "delete", rels,
                             op_id=_op("delete"))


def add_tag(dataset: "Dataset", tag: str, relpaths: Iterable[str], position: int | None = None,
            ) -> BulkReport:
    """Add ``tag`` to the captions of ``relpaths`` that lack it, at ``position``
    (index among the tags; None = at the end; 1 = right after the trigger word).
    Images without a caption get the tag alone. One undoable operation."""
    tag = " ".join(tag.split())
    if not tag or "," in tag:
        raise ValueError(f"a tag must be non-empty and hold no comma, got {tag!r}")
    key = tag_key(tag)

    def f(text: str) -> str:
        tags = split_tags(text)
        if any(tag_key(t) == key for t in tags):
            return text
        tags.insert(len(tags) if position is None else max(0, position), tag)
        return join_tags(tags)
    return apply_to_captions(dataset, f, "add", relpaths, include_missing=True, op_id=_op("add"))


class TagIndex:
    """Autocomplete over a dataset's tags, for caption editors.

    Build it once (``TagIndex(dataset)``, or ``TagIndex.from_captions(texts)``),
    call :meth:`complete` on each key press, and :meth:`update` after an edit.
    Matching, best first: the tag starts with the typed text; a later word of
    the tag starts with it; (3+ characters) the tag contains it. Within a
    group, more used tags first. Comparison is by :func:`tag_key`.
    """

    def __init__(self, dataset: "Dataset | None" = None):
        self._counts: Counter[str] = Counter()
        self._spelling: dict[str, Counter[str]] = defaultdict(Counter)
        if dataset is not None:
            for text in _captions(dataset).values():
                self.add(text)

    @classmethod
    def from_captions(cls, texts: Iterable[str | None]) -> "TagIndex":
        """An index over plain caption texts."""
        index = cls()
        for t in texts:
            index.add(t)
        return index

    def add(self, text: str | None) -> None:
        """Count the tags of one caption."""
        for t in {tag_key(x): x for x in split_tags(text)}.values():
            k = tag_key(t)
            self._counts[k] += 1
            self._spelling[k][t] += 1

    def remove(self, text: str | None) -> None:
        """Un-count the tags of one caption (the inverse of :meth:`add`)."""
        for t in {tag_key(x): x for x in split_tags(text)}.values():
            k = tag_key(t)
            self._counts[k] -= 1
            self._spelling[k][t] -= 1
            if self._counts[k] <= 0:
                del self._counts[k]
                del self._spelling[k]

    def update(self, old_text: str | None, new_text: str | None) -> None:
        """Reflect one caption edit."""
        self.remove(old_text)
        self.add(new_text)

    def count(self, tag: str) -> int:
        """Captions carrying ``tag``."""
        return self._counts.get(tag_key(tag), 0)

    def complete(self, prefix: str, limit: int = 10, exclude: Iterable[str] = ()) -> list[str]:
        """Tags matching what was typed (see the class docstring), at most ``limit``.
        ``exclude``: tags not to offer (e.g. those already in the caption).
        An empty prefix gives the most used tags."""
        p = tag_key(prefix)
        skip = {tag_key(e) for e in exclude}
        ranked = []
        for k, n in self._counts.items():
            if k in skip or n <= 0:
                continue
            if not p:
                rank = 0
            elif k.startswith(p):
                rank = 0 if k != p else -1
            elif any(w.startswith(p) for w in k.split()[1:]):
                rank = 1
            elif len(p) >= 3 and p in k:
                rank = 2
            else:
                continue
            ranked.append((rank, -n, k))
        ranked.sort()
        return [self._spelling[k].most_common(1)[0][0] for _, _, k in ranked[:limit]]


def complete(dataset: "Dataset", prefix: str, limit: int = 10) -> list[str]:
    """One-off autocomplete over a dataset (builds a :class:`TagIndex`; keep an
    index instead when completing on every key press)."""
    return TagIndex(dataset).complete(prefix, limit)


@dataclass(slots=True)
class TagProposal:
    """A tag suggested for an image: ``tag``, ``score`` 0..1 (higher first),
    ``sources`` (``"forge"``, ``"openai"``, ``"draft"``, ``"frequency"``,
    ``"folder"``...) and ``reason`` in words."""

    tag: str
    score: float
    sources: list[str] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


def _folder_of(relpath: str) -> str:
    return relpath.rsplit("/", 1)[0] if "/" in relpath else ""


class _ProposalContext:
    """Per-dataset data that every proposal needs, computed once."""

    def __init__(self, dataset: "Dataset"):
        self.records = {r.relpath: r for r in dataset.images()}
        self.folders: dict[str, tuple[Counter[str], dict[str, str], int]] = {}
        for rec in self.records.values():
            if rec.error or not rec.caption:
                continue
            counts, spelling, n = self.folders.get(_folder_of(rec.relpath), (Counter(), {}, 0))
            tags = split_tags(rec.caption)
            for t in tags:
                spelling.setdefault(tag_key(t), t)
            counts.update({tag_key(t) for t in tags})
            self.folders[_folder_of(rec.relpath)] = (counts, spelling, n + 1)


def propose_many(dataset: "Dataset", relpaths: Iterable[str] | None = None,
                 limit: int = 20) -> dict[str, list[TagProposal]]:
    """:func:`propose` for many images (default: every readable image), reading
    the dataset once. Raises LookupError for a relpath not in the store."""
    context = _ProposalContext(dataset)
    rels = list(relpaths) if relpaths is not None else [
        r for r, rec in context.records.items() if not rec.error]
    return {rel: propose(dataset, rel, limit, _context=context) for rel in rels}


def propose(dataset: "Dataset", relpath: str, limit: int = 20, *,
            _context: _ProposalContext | None = None) -> list[TagProposal]:
    """Tags proposed for one image that its caption does not have yet, best first
    (see the module docstring for the sources). Raises LookupError for a relpath
    not in the store."""
    from .backends.base import folder_concept
    from .job import proposals as backend_results

    context = _context or _ProposalContext(dataset)
    rec = context.records.get(relpath)
    if rec is None:
        raise LookupError(f"{relpath}: not in the dataset store (run `fluxgym-coach scan`)")
    have = {tag_key(t) for t in split_tags(rec.caption)}
    found: dict[str, TagProposal] = {}

    def offer(tag: str, score: float, source: str, reason: str) -> None:
        k = tag_key(tag)
        if not k or k in have:
            return
        p = found.get(k)
        if p is None:
            found[k] = TagProposal(tag, round(score, 3), [source], reason)
        else:
            if source not in p.sources:
                p.sources.append(source)
            if score > p.score:
                p.score, p.reason = round(score, 3), reason

    for result in backend_results(dataset.store, relpath):
        weight = SOURCE_WEIGHT.get(result["backend"], 1.0)
        for i, tag in enumerate(result["tags"]):
            offer(tag, weight * (1.0 - min(i, 20) * 0.02), result["backend"],
                  f"proposed by the {result['backend']} captioner")
    counts, spelling, n = context.folders.get(_folder_of(relpath), (Counter(), {}, 0))
    siblings = n - (1 if rec.caption and not rec.error else 0)
    if siblings > 0:
        for k, c in counts.items():
            share = c / siblings
            if share >= FREQUENCY_MIN_SHARE:
                offer(spelling[k], min(share, 1.0) * 0.9, "frequency",
                      f"on {c} of {siblings} other images of this folder")
    concept = folder_concept(relpath, dataset.root.name)
    if concept:
        offer(concept, SOURCE_WEIGHT["folder"], "folder", "the folder name")
    out = sorted(found.values(), key=lambda p: (-p.score, tag_key(p.tag)))
    return out[:limit]
