"""What an export produced: :class:`ExportedFile` per image and the :class:`ExportReport`
(read by the CLI, the TUI, ``prepare`` and ``check``; written by
:func:`fluxgym_coach.export.fluxgym.export_dataset`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .train_script import MODEL_PATHS


@dataclass(slots=True)
class ExportedFile:
    """One exported image: ``file`` and ``caption_file`` names in the dataset folder,
    the ``source`` relpath and digest, the ``variant`` (``"original"`` or a cache
    key) with its ``kind``/``params``/``backend``, the exported ``width``/``height``
    and ``caption_status`` (``"ok"``, ``"trigger added"`` or ``"placeholder"``);
    ``source_size`` (w, h, upright) of what was exported, ``crop`` the window
    kept in its pixels (left, top, right, bottom) and ``framing`` why there
    (``exact``, ``faces``, ``face``, ``saliency``, ``centre``; ``kohya`` in the
    old mode, where kohya crops later)."""

    file: str
    caption_file: str
    source: str
    source_digest: str | None
    variant: str
    kind: str
    params: dict[str, Any]
    backend: str | None
    width: int
    height: int
    caption: str
    caption_status: str
    metadata: dict[str, Any] | None = None
    source_size: list[int] | None = None
    crop: list[float] | None = None
    framing: str | None = None


@dataclass(slots=True)
class ExportReport:
    """Where the export went and what happened to each image.

    ``skipped``/``failed`` map source relpath -> reason; ``warnings`` maps
    relpath -> list of notes (below resolution, placeholder caption, renamed...).
    """

    root: Path
    dataset_dir: Path
    outputs_dir: Path
    toml_path: Path
    files: list[ExportedFile] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    removed_stale: int = 0
    train_script: Path | None = None

    @property
    def fluxgym_root(self) -> bool:
        """True when ``root`` looks like a Fluxgym install (has ``sd-scripts/``),
        so ``train.sh`` can run where it was written."""
        return (self.root / "sd-scripts").is_dir()

    @property
    def missing_models(self) -> list[str]:
        """In a Fluxgym install, the model files ``train.sh`` names that are not
        there yet (Fluxgym downloads them on its first training); else []."""
        if not self.fluxgym_root:
            return []
        return [rel for rel in MODEL_PATHS.values() if not (self.root / rel).is_file()]

    @property
    def placeholders(self) -> list[str]:
        """Sources exported with the trigger word as a placeholder caption."""
        return [f.source for f in self.files if f.caption_status == "placeholder"]

    @property
    def below_resolution(self) -> list[str]:
        """Sources exported smaller than the resolution."""
        return [r for r, notes in self.warnings.items() if any(n.startswith("below") for n in notes)]
