"""The pydantic models of :mod:`fluxgym_coach.settings` (see there).

Kept apart so that importing :mod:`fluxgym_coach.settings` (its functions and
constants) loads no pydantic: the TUI's first screen is drawn before any
setting is read. ``fluxgym_coach.settings.DatasetSettings`` and the section
models import this module on first use.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .settings import SAFE_CAPTION_MODES, strip_credentials

CaptionBackendName = Literal["draft", "openai", "forge", "florence2"]
EnhanceBackendName = Literal["auto", "local", "forge", "realesrgan", "spandrel"]


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


__all__ = ["CaptionSettings", "DatasetSettings", "EnhanceSettings", "ExportSettings"]
