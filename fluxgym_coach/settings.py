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

from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

#: The store setting holding the serialised :class:`DatasetSettings`.
SETTINGS_KEY = "dataset.settings"

CaptionBackendName = Literal["draft", "openai", "forge", "florence2"]
EnhanceBackendName = Literal["auto", "local", "forge", "realesrgan", "spandrel"]
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


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=True)


class EnhanceSettings(_Section):
    """How images are enhanced: backend name, Forge pool, last parameters used."""

    backend: EnhanceBackendName = "auto"
    #: Forge / A1111 servers (a pool when several); stored without credentials.
    api_urls: list[str] = Field(default_factory=list)
    #: :meth:`EnhanceParams.to_dict` of the last run, or None for the defaults.
    params: dict[str, Any] | None = None

    @field_validator("api_urls")
    @classmethod
    def _no_credentials(cls, urls: list[str]) -> list[str]:
        return [strip_credentials(u) for u in urls if u.strip()]


class CaptionSettings(_Section):
    """The caption backend with its server and model (``options`` as the backend takes them)."""

    backend: CaptionBackendName = "draft"
    #: e.g. ``{"base_url": ..., "model": ...}`` (openai), ``{"url": ..., "model": ...}`` (forge),
    #: ``{"model_path": ...}`` (florence2). Never ``api_key`` / ``api_auth``.
    options: dict[str, Any] = Field(default_factory=dict)
    #: The last non-destructive mode used (``overwrite`` is never remembered).
    mode: Literal["only-missing", "refresh", "propose"] = "only-missing"

    @field_validator("options")
    @classmethod
    def _clean_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        clean = {k: v for k, v in options.items() if k not in ("api_auth", "api_key")}
        for k in ("base_url", "url"):
            if isinstance(clean.get(k), str):
                clean[k] = strip_credentials(clean[k])
        return clean

    @field_validator("mode", mode="before")
    @classmethod
    def _safe_mode(cls, mode: Any) -> Any:
        return mode if mode in SAFE_CAPTION_MODES else "only-missing"


class ExportSettings(_Section):
    """Where and how the dataset was last exported."""

    out_dir: str | None = None
    name: str | None = None
    vram: Literal["20G", "16G", "12G"] = "20G"
    only_accepted: bool = False


class DatasetSettings(_Section):
    """Everything a dataset remembers between runs, one owner per value.

    ``trigger`` is the trigger word (None: not set), ``resolution`` kohya's
    training side length in px (256-4096), ``repeats`` kohya's ``num_repeats``.
    """

    trigger: str | None = None
    resolution: int = Field(1024, ge=256, le=4096)
    repeats: int = Field(10, ge=1, le=10_000)
    enhance: EnhanceSettings = Field(default_factory=EnhanceSettings)
    caption: CaptionSettings = Field(default_factory=CaptionSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)

    @field_validator("trigger")
    @classmethod
    def _one_line(cls, trigger: str | None) -> str | None:
        if trigger is None:
            return None
        trigger = trigger.strip()
        if "\n" in trigger or "\r" in trigger:
            raise ValueError("the trigger word must be a single line")
        return trigger or None


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


__all__ = ["CaptionSettings", "DatasetSettings", "EnhanceSettings", "ExportSettings",
           "SAFE_CAPTION_MODES", "SETTINGS_KEY", "load_settings", "save_settings",
           "strip_credentials", "update_settings"]
