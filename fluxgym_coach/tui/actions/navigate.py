"""Moving through the list: filters, sorts, the incremental search, jumps to the
next unreviewed / flagged image, marks, and showing one image by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.widgets import Input

from ..model import FILTERS, SORTS, UNREVIEWED, Row


class NavigateActions:
    """Filter, sort, search, jump, mark."""

    def _refilter(self, keep: str | None = None) -> None:
        row = self.current
        self.index.apply()
        self.image_list.reset_view(keep=keep or (row.relpath if row else None))
        self._show_current(immediate=False)
        self.recount()
        self.save_state()

    def action_cycle_filter(self) -> None:
        """Next filter."""
        self.set_filter(FILTERS[(FILTERS.index(self.index.filter) + 1) % len(FILTERS)])

    def watch_filter_name(self, name: str) -> None:
        self.index.filter = name
        self._refilter()
        self._update_status()  # the status line names the filter and the count: no toast

    def watch_sort_name(self, name: str) -> None:
        self.index.sort = name
        self._refilter()
        self._update_status()

    def watch_search_text(self, text: str) -> None:
        self.index.query = text
        self._refilter()
        self._update_status()

    def set_filter(self, name: str) -> None:
        """Show only the images that pass filter ``name``."""
        self.filter_name = name

    def action_cycle_sort(self) -> None:
        """Next sort order."""
        self.set_sort(SORTS[(SORTS.index(self.index.sort) + 1) % len(SORTS)])

    def set_sort(self, name: str) -> None:
        """Sort the list by ``name``."""
        self.sort_name = name

    def _jump_to(self, predicate: Callable[[Row], bool], what: str) -> None:
        pos = self.index.next_matching(self.image_list.cursor, predicate)
        if pos is None:
            self.notify(f"no {what} image in view", timeout=3)
            return
        self.image_list.cursor = pos

    def action_next_unreviewed(self) -> None:
        """Move to the next unreviewed image."""
        self._jump_to(lambda r: r.status == UNREVIEWED, "unreviewed")

    def action_next_flagged(self) -> None:
        """Move to the next flagged image."""
        self._jump_to(lambda r: r.flagged, "flagged")

    def action_search(self) -> None:
        """Open the search field."""
        field = self.query_one("#search", Input)
        field.add_class("visible")
        field.focus()

    def on_key(self, event: Any) -> None:
        field = self.query_one("#search", Input)
        if event.key == "escape" and field.has_focus:
            event.stop()
            field.value = ""
            field.remove_class("visible")
            self.image_list.focus()

    def mark_all(self, marked: bool) -> None:
        """Mark (or unmark) every image in view."""
        for r in (self.index.view if marked else self.index.rows):
            r.marked = marked
        self.image_list.refresh()
        self.recount_marks()

    def recount(self) -> None:
        """Bring the counted view state to the rows (after a decision, a toggled mark,
        marking all, a reload, rows found by the scan): ``view_counts`` (shown, total),
        ``marked``, ``reviewed``. Their watchers redraw the status line when one changed:
        nothing else redraws it (besides the filter, sort and search watchers)."""
        idx = self.index
        self.view_counts = (len(idx.view), len(idx.rows))
        self.marked = sum(1 for r in idx.rows if r.marked)
        self.reviewed = sum(1 for r in idx.rows if r.status != UNREVIEWED)

    #: The name earlier versions used (the marks are one of the counts).
    recount_marks = recount

    def watch_marked(self, count: int) -> None:
        self._update_status()

    def watch_reviewed(self, count: int) -> None:
        self._update_status()

    def watch_view_counts(self, counts: tuple[int, int]) -> None:
        self._update_status()

    def show_relpath(self, relpath: str) -> None:
        """Move the cursor to an image (clearing the filter and search when it is hidden)."""
        if relpath not in self.index.by_relpath:
            self.notify(f"{relpath} is not in this dataset", severity="warning", timeout=4)
            return
        if self.index.position(relpath) is None:
            # both cleared at once, then one pass that keeps ``relpath`` (the watchers
            # would each re-apply the list and move the preview to the old cursor)
            with self.prevent(Input.Changed):
                self.query_one("#search", Input).value = ""
            self.set_reactive(type(self).search_text, "")
            self.set_reactive(type(self).filter_name, "all")
            self.index.filter, self.index.query = "all", ""
            self._refilter(keep=relpath)
        pos = self.index.position(relpath)
        if pos is not None:
            self.image_list.cursor = pos
        self.image_list.focus()
