"""Adapter that runs fluxgym-coach's actions inside Panoptic 1.0 (``pip install fluxgym-coach[panoptic]``).

Panoptic imports this folder's ``__init__.py`` as a stand-alone module (a
"path" plugin), so only absolute imports are used here. See
:mod:`fluxgym_coach.integrations.panoptic.plugin` and docs/plugins.md.
"""

try:
    import panoptic.core.plugin.plugin  # noqa: F401  (the real Panoptic package)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the Panoptic adapter needs Panoptic 1.0: pip install 'fluxgym-coach[panoptic]'") from exc

from fluxgym_coach.integrations.panoptic.plugin import FluxgymCoachPlugin

plugin_class = FluxgymCoachPlugin

__all__ = ["FluxgymCoachPlugin", "plugin_class"]
