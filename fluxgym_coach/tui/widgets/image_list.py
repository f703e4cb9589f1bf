"""The image list: a line-API widget that draws only the visible rows.

One row per image: mark, review status, name, displayed size, caption state
and findings. Rows come from :class:`~fluxgym_coach.tui.model.ImageIndex`'s
``view``; the widget keeps only a cursor and asks the index for the rows it
paints, so 10,000 images cost the same per frame as 10.
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..model import ACCEPTED, EXCLUDED, REJECTED, ImageIndex, Row

STATUS_GLYPH = {ACCEPTED: "✓", REJECTED: "✗", EXCLUDED: "⊘"}


def _fit(text: str, width: int) -> str:
    """``text`` cut (with an ellipsis) or padded to exactly ``width`` terminal cells
    (wide characters, CJK and emoji, count 2: :func:`rich.cells.cell_len`)."""
    if width <= 0:
        return ""
    if cell_len(text) > width:
        return set_cell_size(text, max(0, width - 1)) + "…"
    return set_cell_size(text, width)


def _cut_middle(text: str, width: int) -> str:
    """Like :func:`_fit`, but a long path loses its middle: the start (the folder)
    and the end (the file name, which matters most) stay, ``sub…/name.png``."""
    if cell_len(text) <= width or width < 8:
        return _fit(text, width)
    tail_w = (width - 1) * 2 // 3
    head_w = width - 1 - tail_w
    tail, cells = "", 0
    for ch in reversed(text):
        w = cell_len(ch)
        if cells + w > tail_w:
            break
        tail, cells = ch + tail, cells + w
    head = set_cell_size(text, head_w).rstrip()
    return set_cell_size(head + "…" + tail, width)


class ImageList(ScrollView, can_focus=True):
    """Scrollable list of the images in view, with a cursor (line API)."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("space", "toggle_mark", "Mark", show=False),
    ]

    COMPONENT_CLASSES = {
        "image-list--cursor", "image-list--accepted", "image-list--rejected",
        "image-list--flagged", "image-list--dim", "image-list--marked",
    }

    DEFAULT_CSS = """
    ImageList {
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
    }
    ImageList > .image-list--cursor { background: $accent 40%; text-style: bold; }
    ImageList:focus > .image-list--cursor { background: $accent; color: $text; }
    ImageList > .image-list--accepted { color: $success; }
    ImageList > .image-list--rejected { color: $error; }
    ImageList > .image-list--flagged { color: $warning; }
    ImageList > .image-list--dim { color: $text-muted; }
    ImageList > .image-list--marked { color: $secondary; text-style: bold; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Highlighted(Message):
        """The cursor moved to ``row`` (None when the view is empty)."""

        def __init__(self, row: Row | None) -> None:
            super().__init__()
            self.row = row

    class MarksChanged(Message):
        """The user marked or unmarked a row (the app recounts the marks)."""

    def __init__(self, index: ImageIndex, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.index = index
        self._styles: dict[str, Style] = {}

    def notify_style_update(self) -> None:
        self._styles.clear()
        super().notify_style_update()

    def _style(self, name: str) -> Style:
        """A component style, computed once per style change (render_line runs per row)."""
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.get_component_rich_style(f"image-list--{name}")
        return style

    # -- data ---------------------------------------------------------------------------
    @property
    def current(self) -> Row | None:
        """The row under the cursor, or None."""
        view = self.index.view
        return view[self.cursor] if 0 <= self.cursor < len(view) else None

    def reset_view(self, keep: str | None = None) -> None:
        """Call after the index view changed: resize, keep the cursor on ``keep`` if still shown."""
        pos = self.index.position(keep) if keep else None
        self.virtual_size = Size(self.size.width or 1, len(self.index.view))
        self.cursor = pos if pos is not None else min(self.cursor, max(0, len(self.index.view) - 1))
        self.refresh()

    def refresh_row(self, relpath: str) -> None:
        """Repaint the row of one image if it is visible."""
        pos = self.index.position(relpath)
        if pos is not None:
            self.refresh_line(pos - int(self.scroll_offset.y))

    def refresh_line(self, y: int) -> None:
        """Repaint one visible line (``y`` relative to the top of the widget)."""
        if 0 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    # -- cursor -----------------------------------------------------------------------
    def validate_cursor(self, value: int) -> int:
        n = len(self.index.view)
        return 0 if n == 0 else max(0, min(value, n - 1))

    def watch_cursor(self, old: int, new: int) -> None:
        self._scroll_cursor_into_view()
        if old != new:
            self.refresh_line(old - int(self.scroll_offset.y))
        self.refresh_line(new - int(self.scroll_offset.y))
        self.post_message(self.Highlighted(self.current))

    def _scroll_cursor_into_view(self) -> None:
        height = self.scrollable_content_region.height or self.size.height
        top = int(self.scroll_offset.y)
        if height <= 0:
            return
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def action_cursor(self, delta: int) -> None:
        """Move the cursor by ``delta`` rows."""
        self.cursor = self.cursor + delta

    def action_page(self, direction: int) -> None:
        """Move the cursor by one screen."""
        self.cursor = self.cursor + direction * max(1, self.size.height - 1)

    def action_jump(self, where: int) -> None:
        """Move to the first (0) or last (-1) row."""
        self.cursor = 0 if where == 0 else len(self.index.view) - 1

    def action_toggle_mark(self) -> None:
        """Mark or unmark the current image for bulk actions, then move down."""
        row = self.current
        if row is None:
            return
        row.marked = not row.marked
        self.refresh_row(row.relpath)
        self.post_message(self.MarksChanged())
        self.cursor = self.cursor + 1

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.index.view))
        self._scroll_cursor_into_view()

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        y = offset.y + int(self.scroll_offset.y)
        if 0 <= y < len(self.index.view):
            self.cursor = y

    # -- painting ------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        i = y + int(self.scroll_offset.y)
        view = self.index.view
        base = self.rich_style
        if i >= len(view):
            return Strip.blank(width, base)
        row = view[i]
        segments = self._row_segments(row, width, base)
        if i == self.cursor:
            cursor_style = self._style("cursor")
            segments = [Segment(s.text, (s.style or Style()) + cursor_style) for s in segments]
        return Strip(segments).adjust_cell_length(width, base)

    def _row_segments(self, row: Row, width: int, base: Style) -> list[Segment]:
        rec = row.record
        comp = self._style
        mark = "●" if row.marked else " "
        status = STATUS_GLYPH.get(row.status, "·")
        status_style = (comp("accepted") if row.status == ACCEPTED
                        else comp("rejected") if row.status in (REJECTED, EXCLUDED)
                        else comp("dim"))
        size = rec.display_size
        pending = rec.digest is None and rec.error is None  # listed by the scan, not read yet
        dims = f"{size[0]}x{size[1]}" if size else ("…" if pending else "?")
        if pending:
            cap, cap_style = "…", comp("dim")
        elif row.draft is not None:
            cap, cap_style = "edit", comp("marked")
        elif row.needs_caption:
            cap, cap_style = "none", comp("flagged")
        else:
            cap, cap_style = f"{len(rec.caption or '')}c", comp("dim")
        enh = " +" if row.enhanced else "  "
        flags = row.flags()
        flag = f"!{len(flags)}" if flags else ""
        # columns: mark(1) status(2) name(*) enh(2) dims(10) caption(5) flags(4)
        fixed = 1 + 2 + 2 + 10 + 5 + 4
        name_w = max(6, width - fixed)
        show_dims = width >= 40
        if not show_dims:
            name_w += 10
        segs = [
            Segment(mark, comp("marked")),
            Segment(f"{status} ", status_style),
            Segment(_cut_middle(rec.relpath, name_w), base),
            Segment(enh, comp("accepted")),
        ]
        if show_dims:
            segs.append(Segment(_fit(dims, 9).rjust(10), comp("dim")))
        segs.append(Segment(_fit(cap, 4).rjust(5), cap_style))
        segs.append(Segment((" " + flag[:3]).ljust(4), comp("flagged")))
        return segs
