"""Token counts of a caption for FLUX's two text encoders (CLIP-L and T5-XXL).

FLUX has two text encoders: CLIP-L reads at most **77** tokens (75 plus the
begin/end tokens) and T5-XXL at most **512** tokens in sd-scripts for
flux-dev (``t5xxl_max_token_length``). Longer captions are cut silently.
:func:`count_tokens` gives exact counts when a tokenizer is available locally
(see :class:`TokenCounter`) and otherwise an estimate that says it is one.
Every name here is also importable from :mod:`fluxgym_coach.captions.text`.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

#: CLIP-L context length, begin and end tokens included.
CLIP_LIMIT = 77
#: T5-XXL token limit sd-scripts uses for FLUX.1-dev.
T5_LIMIT = 512


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


__all__ = ["CLIP_LIMIT", "CLIP_REPOS", "CLIP_TOKENIZER_ENV", "T5_LIMIT", "T5_REPOS", "T5_TOKENIZER_ENV",
           "TokenCount", "TokenCounter", "count_tokens", "default_counter", "estimate_clip_tokens",
           "estimate_t5_tokens", "find_local_tokenizer"]
