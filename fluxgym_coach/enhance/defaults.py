"""The one order of the enhancement defaults (:func:`enhance_defaults`), used by the
TUI's forms and ``prepare --learned-defaults`` (through :func:`fluxgym_coach.core.learned_params`);
re-exported by :mod:`fluxgym_coach.core`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..settings import load_settings

if TYPE_CHECKING:  # pragma: no cover
    from ..dataset import Dataset
    from .backends.base import EnhanceParams


class EnhanceDefaults(NamedTuple):
    """What :func:`enhance_defaults` decided: the ``params``, where they come from
    (``origin``, words for a form's note), the learned ``changes`` applied
    (``{field: value}``) and the :class:`~fluxgym_coach.learning.SuggestedDefaults`
    consulted (``learned``; None when the learning loop was not asked)."""

    params: "EnhanceParams"
    origin: str
    changes: dict[str, Any]
    learned: Any


def enhance_defaults(dataset: "Dataset", base: "EnhanceParams | None" = None, *, keep: Sequence[str] = (),
                     last: bool = True, learned: bool = True, category: str | None = None,
                     resolution: int | None = None) -> EnhanceDefaults:
    """The enhancement parameters a job or a form starts from: the one order of the defaults.

    Per field, the first that has a value wins:

    1. the fields named in ``keep``, from ``base``: what the user gave on this run (names
       that are no :class:`EnhanceParams` field are ignored);
    2. with ``last``: the last values used on this dataset (``settings.enhance.params``,
       written by every enhancement, CLI or TUI), as a whole;
    3. else with ``learned``: what the dataset's reviews accepted most for images of
       ``category`` (:func:`fluxgym_coach.learning.learn_defaults`);
    4. ``base`` (default: the shipped :class:`EnhanceParams`).

    The size rule's target ``resolution`` is owned by the dataset's ``resolution``
    setting (or the ``resolution`` of this run), never by remembered parameters: a
    remembered scale factor still wins over the size rule, a remembered resolution
    does not. The TUI's forms and ``prepare --learned-defaults`` use it."""
    from ..learning import learn_defaults
    from .backends.base import EnhanceParams

    base = base or EnhanceParams()
    keep = [k for k in keep if k in base.to_dict()]  # a front end may name its other options too
    settings = load_settings(dataset.store)
    params, origin, changes, found = base, "the shipped defaults", {}, None
    stored = settings.enhance.params if last else None
    if stored:
        try:
            params = EnhanceParams(**{k: v for k, v in stored.items() if k != "resolution"})
            origin = "the last values used"
        except (TypeError, ValueError):  # parameters of an older version: not used
            stored = None
    if not stored and learned:
        found = learn_defaults(dataset.store, category, base=base)
        changes = {k: v for k, v in found.changes.items() if k not in set(keep)}
        if changes:
            params = base.with_(**changes)
            origin = (f"suggested from {found.decisions} decisions ("
                      + ", ".join(f"{k} {v}" for k, v in changes.items()) + ")")
    params = params.with_(**{k: getattr(base, k) for k in keep})
    if "resolution" not in set(keep):
        params = params.with_(resolution=resolution or settings.resolution)
    return EnhanceDefaults(params, origin, changes, found)


__all__ = ["EnhanceDefaults", "enhance_defaults"]
