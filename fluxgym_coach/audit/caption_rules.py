"""Caption findings of the audit: the caption rules of :mod:`fluxgym_coach.captions.text`
(imported lazily: the audit works without them) or, without them, a plain
``no_caption`` finding."""

from __future__ import annotations

import importlib
from typing import Any

from ..findings import Finding, Severity
from ..store import ImageRecord


def _caption_rules() -> tuple[Any, Any]:
    """``(lint_many, lint)`` from :mod:`fluxgym_coach.captions.text` when present (imported
    lazily, so the audit works without it); each None when missing."""
    try:
        mod = importlib.import_module("fluxgym_coach.captions.text")
    except ModuleNotFoundError as exc:
        if exc.name == "fluxgym_coach.captions.text":
            return None, None
        raise
    return getattr(mod, "lint_many", None), getattr(mod, "lint", None)


def caption_findings(records: list[ImageRecord], trigger: str | None) -> dict[str, list[Finding]] | None:
    """Caption rule findings per relpath, or None when the caption rules are not installed.

    Uses ``captions.lint_many`` (per-caption rules plus dataset-wide ones:
    duplicate captions, length outliers) or else ``captions.lint`` per
    caption; their codes get a ``"caption-"`` prefix (``"caption-missing"``,
    ``"caption-trigger-missing"``...), their severities are kept.
    """
    lint_many, lint = _caption_rules()
    texts = {r.relpath: r.caption for r in records if not r.error}
    if lint_many is not None:
        encodings = {r.relpath: r.caption_encoding for r in records if not r.error}
        raw = lint_many(texts, trigger, encodings=encodings)
    elif lint is not None:
        raw = {rel: lint(text, trigger) for rel, text in texts.items()}
    else:
        return None
    return {rel: [_convert_caption_finding(f) for f in fs] for rel, fs in raw.items()}


def _convert_caption_finding(f: Finding) -> Finding:
    """A caption rule's finding as an audit finding: its code gets the ``caption-`` prefix."""
    return Finding(f"caption-{f.code}", f.severity, f.message, value=f.value, threshold=f.threshold,
                   fix=f.fix, category="caption", detail=dict(f.detail))


def no_caption_finding(rec: ImageRecord) -> Finding | None:
    """The ``no_caption`` finding of a readable image without caption text (a
    warning for an empty sidecar, which kohya refuses; info when there is none),
    or None when it has one. Used when the caption rules do not run."""
    if (rec.caption or "").strip():
        return None
    empty = rec.caption is not None
    return Finding("no_caption", Severity.WARNING if empty else Severity.INFO,
                   "empty caption sidecar: kohya refuses empty captions" if empty else "no caption sidecar",
                   value=rec.caption, threshold="non-empty text",
                   fix="caption it (fluxgym-coach caption) or let prepare draft one", category="caption")
