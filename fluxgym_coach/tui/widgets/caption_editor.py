"""The caption editor: a text area for the current image's caption, with a dirty
marker, plus a one-line tag field with autocomplete (ctrl+t).

The editor never writes files: ctrl+s posts :class:`CaptionEditor.SaveRequested`
and the app saves through :meth:`fluxgym_coach.dataset.Dataset.write_caption`
(atomic write, history). Dirty means the text differs from what was last
loaded or saved, so a programmatic load never marks it dirty.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.suggester import Suggester
from textual.widgets import Input, Static, TextArea


class TagSuggester(Suggester):
    """Completes the tag being typed with ``complete(prefix) -> [tags]`` (the app
    passes :meth:`fluxgym_coach.captions.tags.TagIndex.complete` over the dataset's captions)."""

    def __init__(self, complete: Callable[[str], list[str]]) -> None:
        super().__init__(use_cache=False, case_sensitive=False)
        self._complete = complete

    async def get_suggestion(self, value: str) -> str | None:
        prefix = value.strip()
        if not prefix:
            return None
        for candidate in self._complete(prefix):
            if candidate.lower().startswith(prefix.lower()) and candidate.lower() != prefix.lower():
                return value[: len(value) - len(value.lstrip())] + candidate
        return None


class CaptionArea(TextArea):
    """The caption text area (soft wrap; tab leaves the field)."""


class CaptionEditor(Vertical):
    """Caption text area and tag field of the current image."""

    DEFAULT_CSS = """
    CaptionEditor { height: auto; border: round $primary-darken-2; border-title-align: left; }
    CaptionEditor:focus-within { border: round $accent; }
    CaptionEditor CaptionArea { height: 3; border: none; padding: 0; }
    CaptionEditor #tag-input { height: 1; border: none; padding: 0 1; display: none; }
    CaptionEditor #tag-proposals { height: auto; max-height: 2; padding: 0 1; display: none;
                                   color: $text-muted; }
    CaptionEditor.tagging #tag-input { display: block; }
    CaptionEditor.tagging #tag-proposals { display: block; }
    """

    BINDINGS = [
        # Not a priority binding: it must wait behind the keys typed before it
        # (a priority binding runs first, saving the text without them).
        Binding("ctrl+s", "save", "Save caption"),
        Binding("ctrl+t", "add_tag", "Add tag"),
        Binding("escape", "leave", "Back to list"),
    ]

    dirty: reactive[bool] = reactive(False)

    class SaveRequested(Message):
        """The user asked to save ``text`` as the caption of ``relpath``."""

        def __init__(self, relpath: str, text: str) -> None:
            super().__init__()
            self.relpath = relpath
            self.text = text

    class TagFieldOpened(Message):
        """The tag field opened for ``relpath`` (the app fetches tag proposals)."""

        def __init__(self, relpath: str) -> None:
            super().__init__()
            self.relpath = relpath

    class Left(Message):
        """The user left the editor (escape)."""

    class DraftChanged(Message):
        """The text of ``relpath`` became dirty (``draft`` set) or clean (``draft`` None)."""

        def __init__(self, relpath: str, draft: str | None) -> None:
            super().__init__()
            self.relpath = relpath
            self.draft = draft

    def __init__(self, complete: Callable[[str], list[str]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.relpath: str | None = None
        self.saved_text = ""
        self.proposals: list[str] = []
        self._complete = complete
        self.border_title = "Caption"

    def compose(self) -> ComposeResult:
        # No cursor blink anywhere: an idle app sends nothing over SSH.
        area = CaptionArea("", soft_wrap=True, tab_behavior="focus", id="caption-area",
                           placeholder="no caption: type one, ctrl+s saves")
        area.cursor_blink = False
        yield area
        tag = Input(placeholder="tag (→ completes, enter adds, escape closes)", id="tag-input",
                    suggester=TagSuggester(self._complete_with_proposals))
        tag.cursor_blink = False
        yield tag
        yield Static("", id="tag-proposals")

    def _complete_with_proposals(self, prefix: str) -> list[str]:
        p = prefix.lower()
        first = [t for t in self.proposals if t.lower().startswith(p)]
        return first + [t for t in self._complete(prefix) if t not in first]

    @property
    def area(self) -> CaptionArea:
        """The text area."""
        return self.query_one(CaptionArea)

    @property
    def text(self) -> str:
        """The text being edited."""
        return self.area.text

    def load(self, relpath: str | None, saved: str, draft: str | None = None) -> None:
        """Show the caption of ``relpath``: ``saved`` is the sidecar text, ``draft``
        unsaved text kept from an earlier visit (shown, and marked dirty)."""
        self.relpath = relpath
        self.saved_text = saved
        self.area.load_text(draft if draft is not None else saved)
        self.area.read_only = relpath is None
        self._update_dirty()

    def mark_saved(self, text: str) -> None:
        """Record ``text`` as what is on disk now."""
        self.saved_text = text
        self._update_dirty()

    def _update_dirty(self) -> None:
        self.dirty = self.relpath is not None and self.area.text != self.saved_text

    def watch_dirty(self, dirty: bool) -> None:
        self.border_title = "Caption ● unsaved (ctrl+s saves)" if dirty else "Caption"

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        was = self.dirty
        self._update_dirty()
        if self.relpath is not None and (self.dirty or was):
            self.post_message(self.DraftChanged(self.relpath, self.area.text if self.dirty else None))

    def action_save(self) -> None:
        """Ask the app to save the caption."""
        if self.relpath is not None:
            self.post_message(self.SaveRequested(self.relpath, self.area.text))

    def action_leave(self) -> None:
        """Close the tag field, or leave the editor."""
        if self.has_class("tagging"):
            self.remove_class("tagging")
            self.area.focus()
            return
        self.post_message(self.Left())

    def action_add_tag(self) -> None:
        """Open the tag field (autocomplete)."""
        if self.relpath is None:
            return
        self.add_class("tagging")
        self.query_one("#tag-input", Input).focus()
        self.proposals = []
        self.query_one("#tag-proposals", Static).update("")
        self.post_message(self.TagFieldOpened(self.relpath))

    def set_proposals(self, relpath: str, tags: list[str]) -> None:
        """Tags proposed for ``relpath`` (best first): shown under the tag field and
        completed first."""
        if relpath != self.relpath:
            return
        self.proposals = list(tags)
        text = "proposed: " + ", ".join(tags[:8]) if tags else "no proposal for this image"
        self.query_one("#tag-proposals", Static).update(text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "tag-input":
            return
        event.stop()
        tag = event.value.strip().strip(",").strip()
        if tag:
            text = self.area.text.strip()
            existing = [t.strip().lower() for t in text.split(",") if t.strip()]
            if tag.lower() not in existing:
                self.area.load_text(f"{text}, {tag}" if text else tag)
                self.area.move_cursor(self.area.document.end)
        event.input.value = ""
