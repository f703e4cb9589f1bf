"""The learning loop (seed 002, steps 9-11): acceptance rates and suggested defaults.

:func:`acceptance_rates` counts, per category and per parameter setting
(``upscaler = "4x-UltraSharp"``, ``denoising_strength = 0.3``...), how many
judged variants were accepted, rejected or sent back for reprocessing; the
acceptance rate is accepted / judged. Only the latest decision per image and
variant counts. :func:`suggest_defaults` returns :class:`EnhanceParams` with,
for each parameter, the setting users accept most, but only with enough
evidence: a setting needs at least :data:`MIN_DECISIONS` judged decisions and
an acceptance rate of at least 50 %, and it replaces the shipped default only
when the lower bound of its Wilson score interval (95 %; Wilson 1927, the
usual way to rank by a rate with few votes) is above the shipped default's.
Otherwise the shipped default stays.

Decisions come from :mod:`fluxgym_coach.feedback` (a store's own and imported
ones, or any list of :class:`~fluxgym_coach.feedback.Decision`). Every name
here is also importable from :mod:`fluxgym_coach.feedback`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .enhance.backends.base import EnhanceParams
from .feedback import Decision, decisions
from .statuses import DecisionKind
from .store import Store

ACCEPT, REJECT, REPROCESS = DecisionKind.ACCEPT, DecisionKind.REJECT, DecisionKind.REPROCESS

#: Fewest judged decisions a parameter setting needs before it can become a default.
MIN_DECISIONS = 5
#: Lowest acceptance rate a setting needs before it can become a default.
MIN_RATE = 0.5
#: z for the 95 % Wilson score interval.
WILSON_Z = 1.96

#: Names that backends use in cache parameters for EnhanceParams fields.
PARAM_ALIASES = {"scale": "scale_factor", "format": "output_format", "sampler": "sampler_name",
                 "cfg": "cfg_scale", "denoise": "denoising_strength"}
#: EnhanceParams fields the learning loop may change (per-image sizes and switches are not settings:
#: a variant's ``scale`` is what the size rule gave that image, enhance/sizing.py, so it is not learned).
LEARNED_FIELDS = ("upscaler", "denoising_strength", "prompt", "negative_prompt",
                  "steps", "cfg_scale", "sampler_name", "output_format", "sharpen",
                  "colorize_prompt", "colorize_negative_prompt")


def wilson_lower_bound(accepted: int, total: int, z: float = WILSON_Z) -> float:
    """Lower bound of the Wilson score interval for ``accepted`` successes in ``total`` trials (0 when none)."""
    if total <= 0:
        return 0.0
    p = accepted / total
    denom = 1 + z * z / total
    centre = p + z * z / (2 * total)
    margin = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return (centre - margin) / denom


@dataclass(slots=True)
class SettingStats:
    """How one parameter setting fared in one category (``"*"`` = all categories).

    ``param`` is an :class:`EnhanceParams` field, ``value`` its setting;
    ``accepted``/``rejected``/``reprocessed`` count judged variants; ``rate``
    = accepted / total (0..1); ``lower_bound`` its Wilson 95 % lower bound.
    """

    category: str
    param: str
    value: Any
    accepted: int = 0
    rejected: int = 0
    reprocessed: int = 0

    @property
    def total(self) -> int:
        """Judged decisions counted."""
        return self.accepted + self.rejected + self.reprocessed

    @property
    def rate(self) -> float:
        """Acceptance rate, 0..1 (0 when nothing was judged)."""
        return self.accepted / self.total if self.total else 0.0

    @property
    def lower_bound(self) -> float:
        """Wilson score lower bound of the rate (95 %)."""
        return wilson_lower_bound(self.accepted, self.total)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the derived figures."""
        return {"category": self.category, "param": self.param, "value": self.value,
                "accepted": self.accepted, "rejected": self.rejected,
                "reprocessed": self.reprocessed, "total": self.total,
                "rate": round(self.rate, 4), "lower_bound": round(self.lower_bound, 4)}


def normalise_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Backend cache parameters -> :data:`LEARNED_FIELDS` names (``scale`` ->
    ``scale_factor``, ``format`` -> ``output_format``...); other keys dropped."""
    out: dict[str, Any] = {}
    for k, v in (params or {}).items():
        name = PARAM_ALIASES.get(k, k)
        if name in LEARNED_FIELDS and isinstance(v, str | int | float | bool):
            out[name] = v
    return out


def category_matches(category: str | None, pattern: str | None) -> bool:
    """True when ``category`` (``"bw/small/photo"``) matches ``pattern``.

    ``pattern`` None or ``"*"`` matches all; otherwise it is compared part by
    part (``"/"``-separated), ``*`` matching any part, and a shorter pattern
    matching as a prefix (``"bw"`` matches every black-and-white category).
    """
    if pattern in (None, "", "*"):
        return True
    if category is None:
        return False
    parts, want = category.split("/"), pattern.split("/")
    if len(want) > len(parts):
        return False
    return all(w in ("*", p) for w, p in zip(want, parts))


def _judged_decisions(source: Store | Iterable[Decision]) -> list[Decision]:
    items = decisions(source, include_imported=True) if isinstance(source, Store) else list(source)
    latest: dict[tuple[str, str | None], Decision] = {}
    for d in sorted(items, key=lambda d: d.at):
        if d.decision not in (ACCEPT, REJECT, REPROCESS) or not d.judged:
            continue
        latest[(d.digest or d.relpath, d.variant or json.dumps(d.judged, sort_keys=True))] = d
    return list(latest.values())


def acceptance_rates(source: Store | Iterable[Decision], category: str | None = None,
                     per_category: bool = True) -> list[SettingStats]:
    """Acceptance of each parameter setting, with counts.

    ``source`` is a store (its own and imported decisions) or decisions.
    ``category`` filters (see :func:`category_matches`). With
    ``per_category`` one row per (category, param, value); otherwise all
    matching categories are pooled under ``"*"``. Rows sorted by category,
    param, then descending lower bound.
    """
    stats: dict[tuple[str, str, str], SettingStats] = {}
    for d in _judged_decisions(source):
        if not category_matches(d.category, category):
            continue
        cat = (d.category or "unknown") if per_category else "*"
        for param, value in normalise_params(d.judged).items():
            key = (cat, param, json.dumps(value))
            s = stats.get(key) or stats.setdefault(key, SettingStats(cat, param, value))
            if d.decision == ACCEPT:
                s.accepted += 1
            elif d.decision == REJECT:
                s.rejected += 1
            else:
                s.reprocessed += 1
    return sorted(stats.values(), key=lambda s: (s.category, s.param, -s.lower_bound, -s.total))


@dataclass(slots=True)
class SuggestedDefaults:
    """What :func:`learn_defaults` found: the resulting ``params``, the ``changes``
    from the base ``{field: value}``, the ``evidence`` per changed field, the
    ``category`` pattern, ``decisions`` judged and the ``min_count`` used."""

    params: EnhanceParams
    changes: dict[str, Any]
    evidence: dict[str, SettingStats]
    category: str | None
    decisions: int
    min_count: int

    @property
    def learned(self) -> bool:
        """True when at least one default changed."""
        return bool(self.changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"category": self.category, "decisions": self.decisions, "min_count": self.min_count,
                "changes": self.changes, "params": self.params.to_dict(),
                "evidence": {k: v.to_dict() for k, v in self.evidence.items()}}


def learn_defaults(source: Store | Iterable[Decision], category: str | None = None, *,
                   base: EnhanceParams | None = None, min_count: int = MIN_DECISIONS,
                   min_rate: float = MIN_RATE) -> SuggestedDefaults:
    """The suggested defaults with their evidence (rules in the module docstring).

    ``base`` is what is suggested against (default: the shipped
    :class:`EnhanceParams`); fields absent from the evidence keep its value.
    A learned value that ``EnhanceParams`` rejects is skipped.
    """
    base = base or EnhanceParams()
    judged = [d for d in _judged_decisions(source) if category_matches(d.category, category)]
    rows = acceptance_rates(judged, per_category=False)
    by_param: dict[str, list[SettingStats]] = {}
    for s in rows:
        by_param.setdefault(s.param, []).append(s)
    changes: dict[str, Any] = {}
    evidence: dict[str, SettingStats] = {}
    params = base
    for param, options in by_param.items():
        current = getattr(base, param)
        shipped = next((s for s in options if s.value == current), None)
        shipped_lb = shipped.lower_bound if shipped and shipped.total >= min_count else 0.0
        eligible = [s for s in options if s.total >= min_count and s.rate >= min_rate]
        if not eligible:
            continue
        best = max(eligible, key=lambda s: (s.lower_bound, s.total))
        if best.value == current or best.lower_bound <= shipped_lb:
            continue
        try:
            params = params.with_(**{param: best.value})
        except (TypeError, ValueError):
            continue
        changes[param] = best.value
        evidence[param] = best
    return SuggestedDefaults(params, changes, evidence, category, len(judged), min_count)


def suggest_defaults(source: Store | Iterable[Decision], category: str | None = None, *,
                     base: EnhanceParams | None = None, min_count: int = MIN_DECISIONS) -> EnhanceParams:
    """The enhancement settings users accept most, as :class:`EnhanceParams`.

    ``source``: a dataset store (its decisions plus imported ones) or any
    decisions; ``category``: a category pattern such as ``"bw"`` or
    ``"colour/small"`` (:func:`category_matches`; None = all images);
    ``base``: the defaults to start from (the shipped ones when None);
    ``min_count``: fewest judged decisions a setting needs
    (:data:`MIN_DECISIONS`). Without enough evidence it returns ``base``
    unchanged. :func:`learn_defaults` gives the same with the evidence.
    """
    return learn_defaults(source, category, base=base, min_count=min_count).params


__all__ = ["LEARNED_FIELDS", "MIN_DECISIONS", "MIN_RATE", "PARAM_ALIASES", "WILSON_Z", "SettingStats",
           "SuggestedDefaults", "acceptance_rates", "category_matches", "learn_defaults", "normalise_params",
           "suggest_defaults", "wilson_lower_bound"]
