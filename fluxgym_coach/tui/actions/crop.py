"""The crop overlay's keys: ``z`` shows / hides what the chosen trainer profile keeps of
the image shown, ``Z`` moves to the next profile (kohya, kohya without buckets,
ai-toolkit, SimpleTuner, diffusion-pipe, our zero-crop export).

The state lives in the preview (:attr:`Preview.crop`); the geometry comes from the
core (:func:`fluxgym_coach.audit.preview_geometry.record_view`) at the dataset's
resolution (:func:`fluxgym_coach.settings.load_settings`), with the face boxes
stored for the image. While the overlay is on, the info panel shows the
profile's bucket, scale and crop (:func:`fluxgym_coach.tui.crop.info_line`).
"""

from __future__ import annotations

from PIL import Image
from rich.text import Text

from ...audit.preview_geometry import TrainerView, profile_label, record_view
from ...settings import load_settings
from ..crop import info_line
from ..model import Row
from ..widgets.info_panel import InfoPanel
from ..widgets.preview import Preview


class CropActions:
    """``z`` / ``Z``: the crop overlay of the preview and its line in the info panel."""

    def action_toggle_crop(self) -> None:
        """Show or hide the crop of the chosen trainer profile on the preview."""
        preview = self.query_one(Preview)
        preview.crop.on = not preview.crop.on
        self._crop_changed(preview)

    def action_cycle_crop_profile(self) -> None:
        """Show the crop of the next trainer profile (turns the overlay on)."""
        preview = self.query_one(Preview)
        if preview.crop.on:
            preview.crop.next_profile()
        preview.crop.on = True
        self._crop_changed(preview)
        self.notify(f"crop: {profile_label(preview.crop.profile)}", timeout=2)

    def _crop_changed(self, preview: Preview) -> None:
        on = preview.crop.on
        preview.crop_provider = self._crop_for_key if on else None
        info = self.query_one(InfoPanel)
        info.annotate = self._crop_info if on else None
        row = self.current
        if row is not None:
            info.show(row, self.shown_variant(row))
            self._schedule_preview(0)

    def crop_view(self, row: Row, showing: str | None, image: Image.Image | None = None) -> TrainerView | None:
        """The chosen profile's view of what the preview shows for ``row`` (``showing``:
        the variant's cache key, None for the original); None when unknown."""
        variant = row.variant(showing) if showing else None
        size = (variant.width, variant.height) if variant is not None and variant.width else None
        resolution = load_settings(self.dataset.store).resolution
        return record_view(self.dataset.store, row.record, resolution, self.query_one(Preview).crop.profile,
                           size, image)

    def _crop_for_key(self, key: str, image: Image.Image) -> TrainerView | None:
        """The preview's provider: the view of the current row when ``key`` is what it shows."""
        row = self.current
        if row is None or self._preview_source(row)[2] != key:
            return None
        view = self.crop_view(row, self.shown_variant(row), image)
        if view is not None and view.profile == "export":  # its window was chosen on this thumbnail
            self.query_one(InfoPanel).show(row, self.shown_variant(row))
        return view

    def _crop_info(self, row: Row, showing: str | None) -> Text | None:
        """The info panel's crop line for ``row`` (the thumbnail, when in memory, chooses
        the export's window as it does in the preview)."""
        image = self.thumbs.peek(self._preview_source(row)[2])
        view = self.crop_view(row, showing, image)
        return info_line(view) if view is not None else None
