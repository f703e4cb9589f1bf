"""What the right-hand side shows for the image under the cursor: the preview
(drawn once the cursor rests, thumbnails made in a worker), the info panel,
the editor's text, before/after, and rows refreshed by background work."""

from __future__ import annotations

import time
from typing import Any

from textual import work
from textual.css.query import NoMatches

from ..messages import RowsChanged, ThumbReady
from ..model import Row
from ..widgets.info_panel import InfoPanel
from ..widgets.preview import Preview, preview_delay

PREVIEW_DELAY = 0.15  # seconds the cursor must rest before the preview is drawn


class PreviewActions:
    """The preview, the info panel and the editor follow the cursor."""

    def shown_variant(self, row: Row) -> str | None:
        """Cache key of the variant the preview shows for ``row`` (None: the original)."""
        if row.relpath in self.showing:
            key = self.showing[row.relpath]
            if key is None or row.variant(key) is not None:
                return key
        if row.selected_variant and row.variant(row.selected_variant):
            return row.selected_variant
        return row.variants[0].cache_key if row.variants else None

    def _cursor_moved(self) -> None:
        """The cursor moved: a thumbnail in memory is drawn at once (at most every
        PREVIEW_THROTTLE s while a key is held); one that must be decoded waits
        until the cursor rests."""
        row = self.current
        cached = row is not None and self.thumbs.peek(self._preview_source(row)[2]) is not None
        delay = preview_delay(cached, time.monotonic() - self._preview_drawn_at)
        if delay == 0:  # after the refresh that shows the moved cursor
            self._preview_drawn_at = time.monotonic()
            self.call_after_refresh(self._on_rest)
        else:
            self._schedule_rest(delay)

    def _show_current(self, immediate: bool = True) -> None:
        """Bring the editor, the info panel and the preview to the current image."""
        self._sync_panels()
        self._schedule_rest(0 if immediate else PREVIEW_DELAY)

    def _sync_panels(self) -> None:
        row = self.current
        editor = self.editor
        if row is None:
            editor.load(None, "")
            self.query_one(InfoPanel).show(None)
            self.query_one(Preview).show_text("no image in view", "Preview")
            return
        if editor.relpath != row.relpath:
            self._load_editor(row)
        self.query_one(InfoPanel).show(row, self.shown_variant(row))

    def _schedule_rest(self, delay: float) -> None:
        if self._preview_timer is not None:
            self._preview_timer.stop()
            self._preview_timer = None
        if delay:
            self._preview_timer = self.set_timer(delay, self._on_rest)
        else:
            self._draw_preview()

    def _on_rest(self) -> None:
        self._preview_timer = None
        try:
            self._sync_panels()
            self._draw_preview()
        except NoMatches:  # the timer fired while the app was closing
            pass

    def _schedule_preview(self, delay: float) -> None:
        self._schedule_rest(delay)

    def _draw_preview(self) -> None:
        self.save_state()
        row = self.current
        preview = self.query_one(Preview)
        if row is None:
            return
        path, digest, mem_key, title, variant = self._preview_source(row)
        self._wanted_preview = mem_key
        self._preview_drawn_at = time.monotonic()
        if self.preview_mode == "off":
            preview.show_text("preview off (--preview or FLUXGYM_COACH_PREVIEW to turn it on)",
                              title, mem_key)
            return
        if row.record.error and variant is None:
            preview.show_text(f"cannot show this image: {row.record.error}", title, mem_key)
            return
        cached = self.thumbs.peek(mem_key)
        if cached is not None:
            preview.show_image(mem_key, cached, title)
            return
        preview.show_text("loading preview…", title)
        self._make_thumbnail(mem_key, path, digest, title)

    def _preview_source(self, row: Row) -> tuple[str, str | None, str, str, Any]:
        """(path, digest, memory key, title, variant or None) of what the preview shows for ``row``."""
        key = self.shown_variant(row)
        variant = row.variant(key) if key else None
        if variant is not None:
            n = len(row.variants)
            which = "" if n == 1 else f" {row.variants.index(variant) + 1} of {n}"
            title = (f"After{which}: {variant.kind} {variant.width}x{variant.height}  "
                     f"(v: {'before' if variant is row.variants[-1] else 'older'})")
            return variant.path, variant.cache_key, f"{row.relpath}|{key}", title, variant
        digest = row.record.digest
        size = row.record.display_size
        title = "Original" + (f" {size[0]}x{size[1]}" if size else "") + (
            "  (v: after)" if row.variants else "")
        return (str(self.dataset.image_path(row.relpath)), digest,
                f"{row.relpath}|original|{digest}", title, None)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def _make_thumbnail(self, key: str, path: str, digest: str | None, title: str) -> None:
        try:
            im = self.thumbs.get(key, path, digest)
        except Exception as exc:  # noqa: BLE001 - any decode problem is shown, not raised
            self.post_message(ThumbReady(key, None, title, getattr(exc, "reason", str(exc))))
            return
        self.post_message(ThumbReady(key, im, title))

    def on_thumb_ready(self, msg: ThumbReady) -> None:
        if msg.key != self._wanted_preview:
            return
        try:
            preview = self.query_one(Preview)
        except NoMatches:  # a thumbnail finished while the app was closing
            return
        if msg.image is None:
            preview.show_text(f"cannot show this image: {msg.error}", msg.title, msg.key)
        else:
            preview.show_image(msg.key, msg.image, msg.title)

    def action_toggle_before_after(self) -> None:
        """Show the next of: the original, then each enhanced variant (newest first)."""
        row = self.current
        if row is None:
            return
        if not row.variants:
            self.notify("no enhanced variant yet: p enhances this image", timeout=3)
            return
        order: list[str | None] = [None, *(v.cache_key for v in row.variants)]
        key = self.shown_variant(row)
        target = order[(order.index(key) + 1) % len(order)] if key in order else None
        self.showing[row.relpath] = target
        self.query_one(InfoPanel).show(row, target)
        self._schedule_preview(0)

    def on_rows_changed(self, msg: RowsChanged) -> None:
        cur = self.current
        if msg.relpaths is None:
            self._tag_index = None
            self.index.reload(self.dataset)
            self.index.apply()
            self.image_list.reset_view(keep=cur.relpath if cur else None)
        else:
            self._tag_index = None
            self.index.refresh_rows(self.dataset, msg.relpaths)
            if msg.show_latest:
                for rel in msg.relpaths:
                    row = self.index.by_relpath.get(rel)
                    if row is not None and row.variants:
                        self.showing[rel] = row.variants[0].cache_key
            self.image_list.refresh()
        self.recount()  # a reload drops the marks of removed images; the status line follows
        cur = self.current
        if cur is not None and (msg.relpaths is None or cur.relpath in msg.relpaths):
            if self.editor.relpath == cur.relpath and not self.editor.dirty:
                self._load_editor(cur)
            self.query_one(InfoPanel).show(cur, self.shown_variant(cur))
            self._schedule_preview(0)
