"""Caption text rules: trigger word, tags, token counts, lint and undoable bulk edits.

What kohya sd-scripts (and so Fluxgym) reads from a caption sidecar
(reference/fluxgym.md §3): the **first line** only, stripped, as strict UTF-8,
and it refuses an empty file. The trigger word reaches training only if it is
in the text; with ``keep_tokens = 1`` the first comma-separated item is the
one kept in place, so the trigger goes first, followed by ``", "``.

FLUX has two text encoders: CLIP-L reads at most **77** tokens (75 plus the
begin/end tokens) and T5-XXL at most **512** tokens in sd-scripts for
flux-dev (``t5xxl_max_token_length``). Longer captions are cut silently.
:func:`count_tokens` gives exact counts when a tokenizer is available locally
(see :class:`TokenCounter`) and otherwise an estimate that says it is one.

A **tag** is one comma-separated item of a caption. Bulk edits
(:func:`bulk_prefix`, :func:`bulk_suffix`, :func:`bulk_replace`,
:func:`bulk_sort_tags`, :func:`bulk_dedup_tags`) go through
:meth:`Dataset.write_caption`, so every change is in the caption history; each
operation has an id and :func:`undo_operation` reverts all of it.
"""

from __future__ import annotations

import glob
import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .encoding import REFUSED
from ..findings import Finding, Severity

if TYPE_CHECKING:  # pragma: no cover
    from ..dataset import Dataset

#: CLIP-L context length, begin and end tokens included.
CLIP_LIMIT = 77
#: T5-XXL token limit sd-scripts uses for FLUX.1-dev.
T5_LIMIT = 512
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
_WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)

SEVERITIES = ("error", "warning", "info")
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


# -- token counts --------------------------------------------------------------------
@dataclass(slots=True)
class TokenCount:
    """Token counts of one caption for FLUX's two text encoders.

    ``clip`` and ``t5`` include the special tokens the encoder adds (CLIP:
    begin + end; T5: end). ``clip_exact``/``t5_exact`` are False when the
    number is an estimate (no tokenizer installed locally); ``source`` names
    what produced each count.
    """

    clip: int
    t5: int
    clip_exact: bool
    t5_exact: bool
    source: dict[str, str] = field(default_factory=dict)

    @property
    def clip_limit(self) -> int:
        """CLIP-L context length (77)."""
        return CLIP_LIMIT

    @property
    def t5_limit(self) -> int:
        """T5 limit used by sd-scripts for FLUX (512)."""
        return T5_LIMIT

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {"clip": self.clip, "t5": self.t5, "clip_exact": self.clip_exact,
                "t5_exact": self.t5_exact, "clip_limit": CLIP_LIMIT, "t5_limit": T5_LIMIT,
                "source": dict(self.source)}


_CLIP_PRETOKEN = re.compile(
    r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+", re.IGNORECASE | re.UNICODE)


def estimate_clip_tokens(text: str) -> int:
    """Estimated CLIP-L token count (begin and end tokens included).

    Follows the CLIP tokenizer's pre-tokenisation (lower case, one token per
    digit, punctuation runs apart, the same regex as OpenAI's ``SimpleTokenizer``),
    then counts a word of up to 7 letters as one BPE token and each further 5
    letters as one more (common English words are single tokens in CLIP's
    49k vocabulary; long or rare words split). An estimate: exact counts need
    a tokenizer (:class:`TokenCounter`).
    """
    n = 0
    for piece in _CLIP_PRETOKEN.findall(" ".join(text.lower().split())):
        if piece[0].isalpha():
            n += 1 + max(0, (len(piece) - 7 + 4) // 5)
        else:
            n += 1
    return n + 2


def estimate_t5_tokens(text: str) -> int:
    """Estimated T5 token count (end token included).

    SentencePiece (32k unigram vocabulary) keeps short common words whole and
    splits the rest: one token for a word of up to 6 letters, one more per 4
    further letters; each digit and each punctuation mark counts as one; an
    upper-case word costs one more. An estimate: see :class:`TokenCounter`.
    """
    n = 0
    for piece in re.findall(r"[^\W\d_]+|\d|[^\s\w]", text, re.UNICODE):
        if piece[0].isalpha():
            n += 1 + max(0, (len(piece) - 6 + 3) // 4) + (1 if piece.isupper() and len(piece) > 1 else 0)
        else:
            n += 1
    return n + 1


#: Environment variables that point at a local ``tokenizer.json`` (or a model folder holding one).
CLIP_TOKENIZER_ENV = "FLUXGYM_COACH_CLIP_TOKENIZER"
T5_TOKENIZER_ENV = "FLUXGYM_COACH_T5_TOKENIZER"
#: Hugging Face repositories whose cached ``tokenizer.json`` is used when present.
CLIP_REPOS = ("openai/clip-vit-large-patch14",)
T5_REPOS = ("google/t5-v1_1-xxl", "black-forest-labs/FLUX.1-dev", "comfyanonymous/flux_text_encoders")


def _hf_cache_dirs() -> list[Path]:
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return [Path(env)]
    home = os.environ.get("HF_HOME")
    base = Path(home) if home else Path.home() / ".cache" / "huggingface"
    return [base / "hub"]


def find_local_tokenizer(env_var: str, repos: Sequence[str]) -> Path | None:
    """A ``tokenizer.json`` on this machine: from ``env_var`` (a file or a folder
    holding one, or a ``tokenizer/`` or ``tokenizer_2/`` sub-folder), else from the
    Hugging Face cache snapshots of ``repos``. Never downloads. None if not found."""
    candidates: list[Path] = []
    value = os.environ.get(env_var)
    if value:
        p = Path(value).expanduser()
        candidates += [p, p / "tokenizer.json", p / "tokenizer" / "tokenizer.json",
                       p / "tokenizer_2" / "tokenizer.json"]
    for cache in _hf_cache_dirs():
        for repo in repos:
            folder = cache / f"models--{repo.replace('/', '--')}" / "snapshots"
            for sub in ("", "tokenizer/", "tokenizer_2/"):
                candidates += [Path(p) for p in sorted(glob.glob(str(folder / "*" / f"{sub}tokenizer.json")))]
    for c in candidates:
        if c.is_file():
            return c
    return None


class TokenCounter:
    """Counts CLIP-L and T5 tokens, exactly when it can.

    Exact counts use the ``tokenizers`` package (installed with the
    ``tokens`` or ``florence2`` extra) and a ``tokenizer.json`` found by
    :func:`find_local_tokenizer`: ``$FLUXGYM_COACH_CLIP_TOKENIZER`` /
    ``$FLUXGYM_COACH_T5_TOKENIZER`` or the Hugging Face cache. Nothing is
    downloaded. Otherwise the ``estimate_*`` functions are used and the
    result says so (``clip_exact``/``t5_exact`` False).
    """

    def __init__(self) -> None:
        self._clip = self._load(CLIP_TOKENIZER_ENV, CLIP_REPOS)
        self._t5 = self._load(T5_TOKENIZER_ENV, T5_REPOS)

    @staticmethod
    def _load(env: str, repos: Sequence[str]) -> tuple[Any, str] | None:
        path = find_local_tokenizer(env, repos)
        if path is None:
            return None
        try:
            from tokenizers import Tokenizer  # optional dependency
        except ImportError:
            return None
        try:
            return Tokenizer.from_file(str(path)), str(path)
        except Exception:  # a damaged file: fall back to the estimate
            return None

    @property
    def exact(self) -> dict[str, bool]:
        """``{"clip": bool, "t5": bool}``: which counts are exact."""
        return {"clip": self._clip is not None, "t5": self._t5 is not None}

    def count(self, text: str) -> TokenCount:
        """Token counts of ``text`` (special tokens included)."""
        source: dict[str, str] = {}
        if self._clip is not None:
            clip = len(self._clip[0].encode(text).ids)
            source["clip"] = self._clip[1]
        else:
            clip = estimate_clip_tokens(text)
            source["clip"] = "estimate"
        if self._t5 is not None:
            t5 = len(self._t5[0].encode(text).ids)
            source["t5"] = self._t5[1]
        else:
            t5 = estimate_t5_tokens(text)
            source["t5"] = "estimate"
        return TokenCount(clip, t5, self._clip is not None, self._t5 is not None, source)


@lru_cache(maxsize=1)
def default_counter() -> TokenCounter:
    """The process-wide :class:`TokenCounter` (tokenizers looked up once)."""
    return TokenCounter()


def count_tokens(text: str, counter: TokenCounter | None = None) -> TokenCount:
    """CLIP-L and T5 token counts of a caption (see :class:`TokenCounter`)."""
    return (counter or default_counter()).count(text)


# -- lint -----------------------------------------------------------------------------
def CaptionFinding(code: str, severity: str, message: str, value: Any = None,  # noqa: N802 - was a class
                   threshold: Any = None, fix: str = "") -> Finding:
    """One problem found in a caption: a :class:`~fluxgym_coach.findings.Finding` of
    category ``"caption"``.

    ``code`` is stable (``"missing"``, ``"refused"``, ``"empty"``, ``"multiline"``,
    ``"not-utf8"``, ``"bad-characters"``, ``"trigger-missing"``,
    ``"trigger-not-first"``, ``"too-short"``, ``"draft"``, ``"clip-truncated"``,
    ``"t5-truncated"``, ``"mixed-style"``, ``"duplicate-tags"``,
    ``"boilerplate"``, ``"duplicate"``, ``"length-outlier"``); ``severity``
    is ``"error"`` (training fails or learns the wrong thing), ``"warning"``
    or ``"info"``; ``value`` is what was measured, ``threshold`` the limit it
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
    out: list[CaptionFinding] = []
    if encoding == REFUSED:
        return [CaptionFinding("refused", "error", "the caption file holds NUL or control bytes (a binary "
                               "file or a damaged encoding): it is not used and never exported",
                               value=encoding, fix="save it as UTF-8 text in an editor, or delete it and "
                               "run `fluxgym-coach caption`")]
    if text is None:
        return [CaptionFinding("missing", "error", "no caption sidecar (.txt); kohya falls back to "
                               "the class tokens only", fix="write a caption, or run `fluxgym-coach caption`")]
    if encoding and encoding not in ("utf-8",):
        out.append(CaptionFinding(
            "not-utf8", "error" if encoding != "utf-8-sig" else "warning",
            f"sidecar is {encoding}, kohya reads strict UTF-8 without BOM", value=encoding,
            threshold="utf-8", fix="save the caption again (fluxgym-coach writes UTF-8)"))
    if "\ufffd" in text or re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text):
        out.append(CaptionFinding("bad-characters", "warning",
                                  "caption holds control or replacement characters (damaged encoding?)",
                                  fix="retype the damaged part"))
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1:
        out.append(CaptionFinding("multiline", "warning",
                                  f"{len(lines)} lines: kohya reads only the first one",
                                  value=len(lines), threshold=1, fix="join the lines (saving does)"))
    flat = " ".join(text.split())
    if not flat:
        out.append(CaptionFinding("empty", "error", "caption is empty: kohya stops with "
                                  "'caption file is empty'", fix="write a caption"))
        return out
    if trigger:
        if not contains_trigger(flat, trigger):
            out.append(CaptionFinding("trigger-missing", "error",
                                      f"trigger word {trigger!r} is not in the caption, so the LoRA "
                                      "does not learn it", value=None, threshold=trigger,
                                      fix=f"prefix it: fluxgym-coach captions prefix DATASET {trigger!r}"))
        elif not starts_with_trigger(flat, trigger):
            out.append(CaptionFinding("trigger-not-first", "warning",
                                      f"trigger word {trigger!r} is not first (keep_tokens = 1 keeps "
                                      "the first tag)", threshold=trigger, fix="move it to the front"))
    content = flat
    if trigger and starts_with_trigger(flat, trigger):
        content = flat.lstrip()[len(trigger):].lstrip(" ,")
    n_words = len(words(content))
    if n_words < th["min_words"]:
        out.append(CaptionFinding("too-short", "warning",
                                  f"{n_words} word(s) besides the trigger: the model learns little "
                                  "about what varies between images", value=n_words,
                                  threshold=th["min_words"], fix="describe the subject, setting and style"))
    tc = count_tokens(flat, counter)
    approx = "" if tc.clip_exact else " (estimate)"
    if tc.clip > th["max_clip_tokens"]:
        out.append(CaptionFinding("clip-truncated", "info",
                                  f"{tc.clip} CLIP-L tokens{approx}: only the first "
                                  f"{th['max_clip_tokens']} reach CLIP-L (T5 reads the rest)",
                                  value=tc.clip, threshold=th["max_clip_tokens"],
                                  fix="put the most important words first"))
    approx5 = "" if tc.t5_exact else " (estimate)"
    if tc.t5 > th["max_t5_tokens"]:
        out.append(CaptionFinding("t5-truncated", "warning",
                                  f"{tc.t5} T5 tokens{approx5}: the text after token "
                                  f"{th['max_t5_tokens']} is cut", value=tc.t5,
                                  threshold=th["max_t5_tokens"], fix="shorten the caption"))
    style = caption_style(flat, trigger)
    if style == "mixed":
        out.append(CaptionFinding("mixed-style", "info", "caption mixes booru-style tags with prose "
                                  "sentences", value=style,
                                  fix="pick one style for the whole dataset (prose suits FLUX)"))
    keys = [tag_key(t) for t in split_tags(flat)]
    dups = sorted({k for k, n in Counter(keys).items() if n > 1})
    if dups:
        out.append(CaptionFinding("duplicate-tags", "warning", f"repeated tag(s): {', '.join(dups)}",
                                  value=dups, fix="fluxgym-coach captions dedup-tags DATASET"))
    if is_draft_text(flat):
        out.append(CaptionFinding("draft", "warning", "draft caption: it names colours, orientation "
                                  "and folder, not the subject", fix="describe the image (edit it, or "
                                  "fluxgym-coach caption DATASET --backend openai --refresh)"))
    low = flat.lower()
    found = [b for b in BOILERPLATE if b in low]
    if found:
        out.append(CaptionFinding("boilerplate", "info",
                                  f"filler or hedge words: {', '.join(repr(f) for f in found)}",
                                  value=found, fix="describe the content directly"))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    out.sort(key=lambda f: order.get(f.severity, 9))
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
                    "duplicate", "warning", f"same caption as {', '.join(others[:3])}"
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
                    "length-outlier", "info", f"{n} words; most captions here have {q1}–{q3}",
                    value=n, threshold=[lo, hi], fix="check the caption is complete and on topic"))
    return result


# -- bulk operations (undoable) ----------------------------------------------------------
@dataclass(slots=True)
class BulkReport:
    """Result of a bulk edit: ``op_id`` (pass it to :func:`undo_operation`), the
    relpaths ``changed``, how many were ``unchanged``, and ``skipped`` relpaths
    with the reason (e.g. no caption)."""

    op_id: str
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: dict[str, str] = field(default_factory=dict)

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
    return apply_to_captions(dataset, _prefix(prefix, sep), "prefix", relpaths, include_missing=True)


def bulk_trigger_first(dataset: "Dataset", trigger: str, relpaths: Iterable[str] | None = None) -> BulkReport:
    """Put the trigger word first in each caption (:func:`apply_trigger`): what
    ``captions trigger-first``, ``captions prefix WORD`` and the TUI's ``t`` do."""
    return apply_to_captions(dataset, lambda text: apply_trigger(text, trigger), "trigger-first",
                             relpaths, include_missing=True)


def bulk_suffix(dataset: "Dataset", suffix: str, relpaths: Iterable[str] | None = None,
                sep: str = ", ") -> BulkReport:
    """Append ``suffix`` to each caption (skipped where it already ends with it)."""
    suffix = suffix.strip()

    def f(text: str) -> str:
        if text.rstrip(" ,.").endswith(suffix):
            return text
        return f"{text}{sep}{suffix}" if text else suffix
    return apply_to_captions(dataset, f, "suffix", relpaths)


def bulk_replace(dataset: "Dataset", pattern: str, replacement: str,
                 relpaths: Iterable[str] | None = None, *, regex: bool = True,
                 ignore_case: bool = False) -> BulkReport:
    """Replace ``pattern`` by ``replacement`` in each caption.

    With ``regex`` (default) the pattern is a Python regular expression and
    the replacement may use ``\\1`` groups; otherwise both are literal text.
    Raises ValueError for an invalid regular expression. Afterwards stray
    separators (``", ,"``, leading/trailing commas) are tidied.
    """
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
    return apply_to_captions(dataset, f, "replace", relpaths)


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
    return apply_to_captions(dataset, lambda t: sort_tags(t, keep_first, key), "sort-tags", rels)


def bulk_dedup_tags(dataset: "Dataset", relpaths: Iterable[str] | None = None) -> BulkReport:
    """Remove repeated tags from each caption (first occurrence kept)."""
    return apply_to_captions(dataset, dedup_tags, "dedup-tags", relpaths)


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
