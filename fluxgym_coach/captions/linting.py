"""Caption lint: what is wrong with a caption, as findings (:class:`~fluxgym_coach.findings.Finding`).

:func:`lint` checks one caption (sidecar missing / refused / not UTF-8 /
several lines / empty; trigger word missing or not first; too short; CLIP-L
or T5 truncation; mixed tag and prose style; repeated tags; unedited draft;
boilerplate), :func:`lint_many` adds the findings that need the whole dataset
(same caption on several images, length outliers). What kohya reads and why
each rule exists: :mod:`fluxgym_coach.captions.text`. Every name here is also
importable from :mod:`fluxgym_coach.captions.text`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..findings import Finding, Severity
from .encoding import REFUSED
from .text import contains_trigger, is_draft_text, split_tags, starts_with_trigger, tag_key, words
from .tokens import CLIP_LIMIT, T5_LIMIT, TokenCounter, count_tokens, default_counter

#: Default lint thresholds (override any of them as keyword arguments of :func:`lint`).
DEFAULT_THRESHOLDS: dict[str, Any] = {
    "min_words": 3,
    "max_clip_tokens": CLIP_LIMIT,
    "max_t5_tokens": T5_LIMIT,
    "mixed_min_tags": 3,
}
#: Phrases that describe the picture rather than its content (Florence-2 starts
#: with "The image shows", which Fluxgym strips) or hedge.
BOILERPLATE = (
    "the image shows", "this image shows", "the image depicts", "this image depicts",
    "the photo shows", "this is an image of", "this is a picture of", "in this image",
    "appears to be", "seems to be", "it is unclear", "possibly",
)
_ARTICLES = {"a", "an", "the", "of", "in", "with", "on", "at", "is", "are", "and", "her", "his", "their"}
#: Words that mark a sentence (an article, a determiner, a verb "to be"), not a tag.
_PROSE_MARKERS = {"a", "an", "the", "this", "these", "is", "are", "there", "her", "his", "their", "its"}

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
#: Severities, most severe first.
SEVERITIES = (ERROR, WARNING, INFO)


def CaptionFinding(code: str, severity: Severity, message: str, value: Any = None,  # noqa: N802 - was a class
                   threshold: Any = None, fix: str = "") -> Finding:
    """One problem found in a caption: a :class:`~fluxgym_coach.findings.Finding` of
    category ``"caption"``.

    ``code`` is stable (``"missing"``, ``"refused"``, ``"empty"``, ``"multiline"``,
    ``"not-utf8"``, ``"bad-characters"``, ``"trigger-missing"``,
    ``"trigger-not-first"``, ``"too-short"``, ``"draft"``, ``"clip-truncated"``,
    ``"t5-truncated"``, ``"mixed-style"``, ``"duplicate-tags"``,
    ``"boilerplate"``, ``"duplicate"``, ``"length-outlier"``); ``severity``
    is ``ERROR`` (training fails or learns the wrong thing), ``WARNING`` or
    ``INFO`` (a :class:`~fluxgym_coach.findings.Severity`, or its string); ``value`` is what was measured, ``threshold`` the limit it
    was compared with (None when not numeric), ``fix`` what to do.
    """
    return Finding(code, Severity(severity), message, value, threshold, fix, category="caption")


def _tag_like(segment: str) -> bool:
    w = [x.lower() for x in words(segment)]
    return 0 < len(w) <= 3 and not (set(w) & _ARTICLES) and not segment.rstrip().endswith(".")


def _prose_like(segment: str) -> bool:
    w = [x.lower() for x in words(segment)]
    return len(w) >= 5 and bool(set(w) & _PROSE_MARKERS)


def caption_style(text: str, trigger: str | None = None) -> str:
    """``"tags"``, ``"prose"``, ``"mixed"`` or ``"empty"``: how a caption is written.

    Tag-like items have 1–3 words and no articles or prepositions; prose-like
    items have 5+ words including an article, determiner or "is/are". Mixed means at least one prose
    sentence and at least 3 tag-like items (the trigger word not counted).
    """
    segments = split_tags(text)
    if trigger and segments and segments[0] == trigger:
        segments = segments[1:]
    if not segments:
        return "empty"
    tags = sum(_tag_like(s) for s in segments)
    prose = sum(_prose_like(s) for s in segments)
    if prose and tags >= DEFAULT_THRESHOLDS["mixed_min_tags"]:
        return "mixed"
    if prose or (len(segments) == 1 and len(words(segments[0])) >= 4):
        return "prose"
    return "tags"


def lint(text: str | None, trigger: str | None = None, *, encoding: str | None = None,
         counter: TokenCounter | None = None, **thresholds: Any) -> list[CaptionFinding]:
    """Check one caption against the rules in the module docstring.

    ``text`` is the sidecar text (None when the image has no sidecar);
    ``trigger`` the dataset's trigger word, if any; ``encoding`` the encoding
    the sidecar was read with (``Dataset.read_caption(...).encoding``), if
    known. ``thresholds`` override :data:`DEFAULT_THRESHOLDS` (``min_words``,
    ``max_clip_tokens``, ``max_t5_tokens``, ``mixed_min_tags``); unknown
    names raise TypeError. Returns findings, most severe first.
    """
    unknown = set(thresholds) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise TypeError(f"unknown lint thresholds: {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(DEFAULT_THRESHOLDS)}")
    th = {**DEFAULT_THRESHOLDS, **thresholds}
    if encoding == REFUSED:
        return [CaptionFinding("refused", ERROR, "the caption file holds NUL or control bytes (a binary "
                               "file or a damaged encoding): it is not used and never exported",
                               value=encoding, fix="save it as UTF-8 text in an editor, or delete it and "
                               "run `fluxgym-coach caption`")]
    if text is None:
        return [CaptionFinding("missing", ERROR, "no caption sidecar (.txt); kohya falls back to "
                               "the class tokens only", fix="write a caption, or run `fluxgym-coach caption`")]
    out = _file_findings(text, encoding)
    flat = " ".join(text.split())
    if not flat:
        out.append(CaptionFinding("empty", ERROR, "caption is empty: kohya stops with "
                                  "'caption file is empty'", fix="write a caption"))
        return out
    out += _trigger_findings(flat, trigger)
    out += _length_findings(flat, trigger, th, counter)
    out += _content_findings(flat, trigger)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    out.sort(key=lambda f: order.get(f.severity, 9))
    return out


def _file_findings(text: str, encoding: str | None) -> list[Finding]:
    """What kohya's reader trips on: not UTF-8, damaged characters, several lines."""
    out: list[Finding] = []
    if encoding and encoding not in ("utf-8",):
        out.append(CaptionFinding(
            "not-utf8", ERROR if encoding != "utf-8-sig" else WARNING,
            f"sidecar is {encoding}, kohya reads strict UTF-8 without BOM", value=encoding,
            threshold="utf-8", fix="save the caption again (fluxgym-coach writes UTF-8)"))
    if "\ufffd" in text or re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text):
        out.append(CaptionFinding("bad-characters", WARNING,
                                  "caption holds control or replacement characters (damaged encoding?)",
                                  fix="retype the damaged part"))
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1:
        out.append(CaptionFinding("multiline", WARNING,
                                  f"{len(lines)} lines: kohya reads only the first one",
                                  value=len(lines), threshold=1, fix="join the lines (saving does)"))
    return out


def _trigger_findings(flat: str, trigger: str | None) -> list[Finding]:
    """The trigger word missing (error) or not the first tag (warning)."""
    if not trigger:
        return []
    if not contains_trigger(flat, trigger):
        return [CaptionFinding("trigger-missing", ERROR,
                               f"trigger word {trigger!r} is not in the caption, so the LoRA "
                               "does not learn it", value=None, threshold=trigger,
                               fix=f"prefix it: fluxgym-coach captions prefix DATASET {trigger!r}")]
    if not starts_with_trigger(flat, trigger):
        return [CaptionFinding("trigger-not-first", WARNING,
                               f"trigger word {trigger!r} is not first (keep_tokens = 1 keeps "
                               "the first tag)", threshold=trigger, fix="move it to the front")]
    return []


def _length_findings(flat: str, trigger: str | None, th: dict[str, Any],
                     counter: TokenCounter | None) -> list[Finding]:
    """Too few words besides the trigger; more tokens than CLIP-L or T5 read."""
    out: list[Finding] = []
    content = flat
    if trigger and starts_with_trigger(flat, trigger):
        content = flat.lstrip()[len(trigger):].lstrip(" ,")
    n_words = len(words(content))
    if n_words < th["min_words"]:
        out.append(CaptionFinding("too-short", WARNING,
                                  f"{n_words} word(s) besides the trigger: the model learns little "
                                  "about what varies between images", value=n_words,
                                  threshold=th["min_words"], fix="describe the subject, setting and style"))
    tc = count_tokens(flat, counter)
    approx = "" if tc.clip_exact else " (estimate)"
    if tc.clip > th["max_clip_tokens"]:
        out.append(CaptionFinding("clip-truncated", INFO,
                                  f"{tc.clip} CLIP-L tokens{approx}: only the first "
                                  f"{th['max_clip_tokens']} reach CLIP-L (T5 reads the rest)",
                                  value=tc.clip, threshold=th["max_clip_tokens"],
                                  fix="put the most important words first"))
    approx5 = "" if tc.t5_exact else " (estimate)"
    if tc.t5 > th["max_t5_tokens"]:
        out.append(CaptionFinding("t5-truncated", WARNING,
                                  f"{tc.t5} T5 tokens{approx5}: the text after token "
                                  f"{th['max_t5_tokens']} is cut", value=tc.t5,
                                  threshold=th["max_t5_tokens"], fix="shorten the caption"))
    return out


def _content_findings(flat: str, trigger: str | None) -> list[Finding]:
    """Mixed style, repeated tags, an unedited draft, boilerplate phrases."""
    out: list[Finding] = []
    style = caption_style(flat, trigger)
    if style == "mixed":
        out.append(CaptionFinding("mixed-style", INFO, "caption mixes booru-style tags with prose "
                                  "sentences", value=style,
                                  fix="pick one style for the whole dataset (prose suits FLUX)"))
    keys = [tag_key(t) for t in split_tags(flat)]
    dups = sorted({k for k, n in Counter(keys).items() if n > 1})
    if dups:
        out.append(CaptionFinding("duplicate-tags", WARNING, f"repeated tag(s): {', '.join(dups)}",
                                  value=dups, fix="fluxgym-coach captions dedup-tags DATASET"))
    if is_draft_text(flat):
        out.append(CaptionFinding("draft", WARNING, "draft caption: it names colours, orientation "
                                  "and folder, not the subject", fix="describe the image (edit it, or "
                                  "fluxgym-coach caption DATASET --backend openai --refresh)"))
    low = flat.lower()
    found = [b for b in BOILERPLATE if b in low]
    if found:
        out.append(CaptionFinding("boilerplate", INFO,
                                  f"filler or hedge words: {', '.join(repr(f) for f in found)}",
                                  value=found, fix="describe the content directly"))
    return out


def lint_many(captions: dict[str, str | None], trigger: str | None = None, *,
              encodings: dict[str, str | None] | None = None, **thresholds: Any
              ) -> dict[str, list[CaptionFinding]]:
    """Lint a whole dataset's captions: :func:`lint` per image plus findings that
    need the other captions: ``duplicate`` (the same text on several images,
    warning) and ``length-outlier`` (word count beyond 3 IQR of the dataset's
    quartiles, info; needs 8+ captions). ``captions`` maps relpath -> text.
    Returns relpath -> findings (every relpath present, possibly empty).
    """
    encodings = encodings or {}
    counter = default_counter()
    result = {rel: lint(text, trigger, encoding=encodings.get(rel), counter=counter, **thresholds)
              for rel, text in captions.items()}
    for rel, found in dataset_findings(captions).items():
        result[rel].extend(found)
    return result


#: Codes of the findings that depend on the other captions of the dataset (:func:`dataset_findings`).
DATASET_CODES = frozenset({"duplicate", "length-outlier"})


def dataset_findings(captions: dict[str, str | None],
                     only: Iterable[str] | None = None) -> dict[str, list[CaptionFinding]]:
    """The findings of :func:`lint_many` that need the other captions (``duplicate``,
    ``length-outlier``, :data:`DATASET_CODES`), without the per-caption rules: one pass
    over the texts, no token counting (10,000 captions in a few ms). ``only`` limits
    the result to those relpaths (the others are still compared with). Returns
    relpath -> findings for the images that have some."""
    wanted = None if only is None else set(only)
    result: dict[str, list[CaptionFinding]] = {}
    by_text: dict[str, list[str]] = {}
    for rel, text in captions.items():
        flat = " ".join((text or "").split()).casefold()
        if flat:
            by_text.setdefault(flat, []).append(rel)
    for rels in by_text.values():
        if len(rels) > 1:
            for rel in rels:
                if wanted is not None and rel not in wanted:
                    continue
                others = [r for r in rels if r != rel]
                result.setdefault(rel, []).append(CaptionFinding(
                    "duplicate", WARNING, f"same caption as {', '.join(others[:3])}"
                    + (f" and {len(others) - 3} more" if len(others) > 3 else ""),
                    value=len(rels), threshold=1, fix="say what differs between these images"))
    lengths = {rel: len(words(t)) for rel, t in captions.items() if t and t.strip()}
    if len(lengths) >= 8:
        values = sorted(lengths.values())
        q1 = values[len(values) // 4]
        q3 = values[(3 * len(values)) // 4]
        iqr = max(q3 - q1, 1)
        lo, hi = q1 - 3 * iqr, q3 + 3 * iqr
        for rel, n in lengths.items():
            if (n < lo or n > hi) and (wanted is None or rel in wanted):
                result.setdefault(rel, []).append(CaptionFinding(
                    "length-outlier", INFO, f"{n} words; most captions here have {q1}–{q3}",
                    value=n, threshold=[lo, hi], fix="check the caption is complete and on topic"))
    return result


__all__ = ["BOILERPLATE", "DATASET_CODES", "DEFAULT_THRESHOLDS", "SEVERITIES", "CaptionFinding", "caption_style",
           "dataset_findings", "lint", "lint_many"]
