"""Caption text rules: tags, the trigger word, cleaning generated text (and the names
of :mod:`.tokens`, :mod:`.linting` and :mod:`.bulk`, re-exported).

What kohya sd-scripts (and so Fluxgym) reads from a caption sidecar
(reference/fluxgym.md §3): the **first line** only, stripped, as strict UTF-8,
and it refuses an empty file. The trigger word reaches training only if it is
in the text; with ``keep_tokens = 1`` the first comma-separated item is the
one kept in place, so the trigger goes first, followed by ``", "``.

A **tag** is one comma-separated item of a caption. This module holds the
pure text functions; the rest of the caption rules live next to it and stay
importable from here (loaded on first use, PEP 562):

* :mod:`fluxgym_coach.captions.tokens`: CLIP-L / T5 token counts
  (:func:`count_tokens`, :class:`TokenCounter`).
* :mod:`fluxgym_coach.captions.linting`: :func:`lint`, :func:`lint_many`
  and their thresholds.
* :mod:`fluxgym_coach.captions.bulk`: undoable bulk edits
  (:func:`bulk_prefix`, :func:`bulk_suffix`, :func:`bulk_replace`,
  :func:`bulk_sort_tags`, :func:`bulk_dedup_tags`, :func:`undo_operation`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from .._lazy import lazy_exports

_WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)

#: What a caption written by the embedded draft backend looks like
#: (:mod:`fluxgym_coach.captions.backends.draft`): it describes colours and
#: shape, not the subject, and is meant to be edited.
DRAFT_PATTERN = re.compile(
    r"(?:^|, )(?:colour|black-and-white) image, (?:landscape|portrait|square) orientation, "
    r"[a-z ]+ tones(?:,|$)")


def is_draft_text(text: str | None) -> bool:
    """True if the caption still holds the draft backend's unedited description."""
    return bool(text) and DRAFT_PATTERN.search(" ".join(text.split())) is not None


# -- tags --------------------------------------------------------------------------
def split_tags(text: str | None) -> list[str]:
    """The tags of a caption: comma-separated items, stripped, empty ones dropped."""
    if not text:
        return []
    return [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]


def join_tags(tags: Iterable[str]) -> str:
    """Join tags with ``", "`` (the separator kohya's ``keep_tokens`` counts on)."""
    return ", ".join(t.strip() for t in tags if t.strip())


def tag_key(tag: str) -> str:
    """Comparison key of a tag: case-folded, inner whitespace collapsed, ``_`` read as a space."""
    return " ".join(tag.replace("_", " ").split()).casefold()


def words(text: str) -> list[str]:
    """Words of a text (letters and digits, apostrophes inside words kept)."""
    return _WORD_RE.findall(text)


def starts_with_trigger(text: str, trigger: str) -> bool:
    """True if the caption's first tag is the trigger word (case-sensitive, whole word)."""
    stripped = text.lstrip()
    if not stripped.startswith(trigger):
        return False
    rest = stripped[len(trigger):]
    return not rest or not (rest[0].isalnum() or rest[0] == "_")


def contains_trigger(text: str, trigger: str) -> bool:
    """True if the trigger word appears anywhere as a whole word."""
    return re.search(rf"(?<![\w]){re.escape(trigger)}(?![\w])", text) is not None


def apply_trigger(text: str, trigger: str | None) -> str:
    """Put the trigger word first: ``"<trigger>, <text>"``.

    A caption that already starts with it is returned unchanged; one that
    contains it elsewhere gets that occurrence moved to the front (a tag equal
    to the trigger is removed, an occurrence inside prose is left as is and
    the trigger is prepended). Empty text gives just the trigger.
    """
    text = " ".join(text.split())
    if not trigger:
        return text
    trigger = trigger.strip()
    if starts_with_trigger(text, trigger):
        return text
    tags = split_tags(text)
    rest = [t for t in tags if t != trigger]
    return join_tags([trigger, *rest]) if rest or not tags else trigger


def clean_generated(text: str) -> str:
    """Tidy text that a captioning model produced, before it becomes a caption.

    Removes special tokens (``<s>``, ``</s>``, ``<pad>``), Markdown emphasis
    and bullets, a leading ``Caption:`` label, wrapping quotes, and the
    openers "The image shows" / "This image depicts" (re-capitalising what
    follows is not done: captions read fine in lower case). Joins lines.
    """
    t = re.sub(r"</?s>|<pad>|<\|[^|>]*\|>", " ", text)
    t = re.sub(r"[*_]{2,}|`+|^#+\s*", "", t, flags=re.MULTILINE)
    t = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", t, flags=re.MULTILINE)
    t = " ".join(t.split())
    t = re.sub(r"^(?:caption|description)\s*:\s*", "", t, flags=re.IGNORECASE)
    if len(t) >= 2 and t[0] in "\"'“‘" and t[-1] in "\"'”’":
        t = t[1:-1].strip()
    t = re.sub(r"^(?:the|this) (?:image|photo|picture|photograph) (?:shows|depicts|features)\s+",
               "", t, flags=re.IGNORECASE)
    return t.strip()



def sort_tags(text: str, keep_first: int = 1, key: Callable[[str], Any] | None = None) -> str:
    """Sort the tags of a caption, keeping the first ``keep_first`` in place
    (the trigger word). Default order: alphabetical by :func:`tag_key`."""
    tags = split_tags(text)
    head, tail = tags[:keep_first], tags[keep_first:]
    return join_tags(head + sorted(tail, key=key or tag_key))


def dedup_tags(text: str) -> str:
    """Drop repeated tags (compared with :func:`tag_key`), keeping the first occurrence."""
    seen: set[str] = set()
    out = []
    for t in split_tags(text):
        k = tag_key(t)
        if k not in seen:
            seen.add(k)
            out.append(t)
    return join_tags(out)


# -- re-exports: the names that lived here before tokens / lint / bulk were split off ------
_MOVED = {
    **dict.fromkeys(["CLIP_LIMIT", "CLIP_REPOS", "CLIP_TOKENIZER_ENV", "T5_LIMIT", "T5_REPOS",
                     "T5_TOKENIZER_ENV", "TokenCount", "TokenCounter", "count_tokens", "default_counter",
                     "estimate_clip_tokens", "estimate_t5_tokens", "find_local_tokenizer"], "tokens"),
    **dict.fromkeys(["BOILERPLATE", "DATASET_CODES", "DEFAULT_THRESHOLDS", "SEVERITIES", "CaptionFinding",
                     "caption_style", "dataset_findings", "lint", "lint_many"], "linting"),
    **dict.fromkeys(["BulkReport", "apply_to_captions", "bulk_dedup_tags", "bulk_prefix", "bulk_replace",
                     "bulk_sort_tags", "bulk_suffix", "bulk_trigger_first", "new_op_id", "operations",
                     "undo_operation"], "bulk"),
}
__getattr__ = lazy_exports(__package__, _MOVED, globals())

__all__ = sorted(["DRAFT_PATTERN", "apply_trigger", "clean_generated", "contains_trigger", "dedup_tags",
                  "is_draft_text", "join_tags", "sort_tags", "split_tags", "starts_with_trigger", "tag_key",
                  "words", *_MOVED])
