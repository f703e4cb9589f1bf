"""Typed dataset settings: one pydantic model, one owner per value, persisted in the store.

Every front end reads and writes a dataset's settings through
:func:`load_settings` / :func:`save_settings` / :func:`update_settings`; no
front end keeps a copy of its own under another key. The model is stored as
JSON under the store setting :data:`SETTINGS_KEY`.

What is never stored: credentials. Server URLs are stored without their
``user:password@`` part (:func:`strip_credentials`); passwords and API keys
come from the command line, the environment (``FLUXGYM_COACH_API_AUTH``,
the OpenAI key's variable) or a prompt, never from this model.

Settings written by earlier versions under separate keys (``trigger``,
``caption.backend``, ``tui.caption``, ``tui.export``, ``tui.enhance_params``,
``audit``) are read once, on the first :func:`load_settings` of a dataset
that has no :data:`SETTINGS_KEY` yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # pragma: no cover - at run time through __getattr__ below
    from .settings_models import CaptionSettings, DatasetSettings, EnhanceSettings, ExportSettings
    from .store import Store

#: The store setting holding the serialised :class:`DatasetSettings`.
SETTINGS_KEY = "dataset.settings"

#: Caption modes that never replace a caption someone wrote: the only ones remembered.
SAFE_CAPTION_MODES = ("only-missing", "refresh", "propose")


def strip_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` part (``http://u:p@h:7860/x`` -> ``http://h:7860/x``).

    Text that is not a URL with a network location is returned unchanged."""
    parts = urlsplit(url.strip())
    if not parts.netloc or "@" not in parts.netloc:
        return url.strip()
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _legacy(store: "Store") -> dict[str, Any]:
    """The values earlier versions kept under separate keys, as model input."""
    get = store.get_setting
    data: dict[str, Any] = {}
    tui_export = get("tui.export") or {}
    tui_caption = get("tui.caption") or {}
    audit = get("audit") or {}
    trigger = get("trigger") or tui_export.get("trigger") or tui_caption.get("trigger") or audit.get("trigger")
    if trigger:
        data["trigger"] = trigger
    for source in (audit, tui_export):
        for key in ("resolution", "repeats"):
            if isinstance(source.get(key), int):
                data[key] = source[key]
    saved_caption = get("caption.backend") or {}
    if isinstance(saved_caption, dict) and saved_caption.get("backend"):
        data["caption"] = {"backend": saved_caption["backend"],
                           "options": dict(saved_caption.get("options") or {})}
    data["export"] = {k: tui_export[k] for k in ("out_dir", "name", "vram", "only_accepted")
                      if k in tui_export}
    if get("tui.enhance_params"):
        data["enhance"] = {"params": get("tui.enhance_params")}
    return data


def _validated(data: dict[str, Any]) -> DatasetSettings:
    """The model from ``data``; a section that does not validate falls back to its defaults."""
    from pydantic import ValidationError

    from .settings_models import DatasetSettings

    try:
        return DatasetSettings.model_validate(data)
    except ValidationError as exc:
        bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        return DatasetSettings.model_validate({k: v for k, v in data.items() if k not in bad})


def load_settings(store: "Store") -> DatasetSettings:
    """The dataset's settings (defaults where nothing was saved; see the module docstring).

    A stored value that no longer validates (edited by hand, older version)
    falls back to that section's defaults rather than failing the command."""
    raw = store.get_setting(SETTINGS_KEY)
    if raw is None:
        return _validated(_legacy(store))
    return _validated(raw if isinstance(raw, dict) else {})


def save_settings(store: "Store", settings: DatasetSettings) -> None:
    """Persist ``settings`` (credentials were already stripped by the model's validators)."""
    store.set_setting(SETTINGS_KEY, settings.model_dump(mode="json"))


def update_settings(store: "Store", **changes: Any) -> DatasetSettings:
    """Load, apply ``changes`` and save; returns the new settings.

    Top-level fields are given by name (``trigger="ohwx"``); a section is
    given as a dict of the fields to change (``caption={"backend": "openai"}``).
    Raises :class:`pydantic.ValidationError` for a value the model refuses.
    """
    from .settings_models import DatasetSettings

    current = load_settings(store).model_dump(mode="python")
    for key, value in changes.items():
        if key not in DatasetSettings.model_fields:
            raise KeyError(f"unknown dataset setting {key!r}")
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            current[key] = {**current[key], **value}
        else:
            current[key] = value
    settings = DatasetSettings.model_validate(current)
    save_settings(store, settings)
    return settings


#: The models live in :mod:`.settings_models` (pydantic), imported on first use.
_MODELS = frozenset({"CaptionSettings", "DatasetSettings", "EnhanceSettings", "ExportSettings",
                     "CaptionBackendName", "EnhanceBackendName"})


def __getattr__(name: str) -> Any:
    """The models (PEP 562): ``from fluxgym_coach.settings import DatasetSettings`` works,
    and loads pydantic only then."""
    if name in _MODELS:
        from . import settings_models

        value = getattr(settings_models, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CaptionSettings", "DatasetSettings", "EnhanceSettings", "ExportSettings",
           "SAFE_CAPTION_MODES", "SETTINGS_KEY", "load_settings", "save_settings",
           "strip_credentials", "update_settings"]
