"""The preview pane: one image widget of textual-image, fed with ready-made thumbnails.

The renderer is chosen once: ``auto`` lets textual-image detect the terminal
(kitty graphics, Sixel, half-block cells, Unicode when not a TTY); ``kitty``,
``sixel``, ``halfcell`` and ``unicode`` force one; ``off`` shows text only.
textual-image probes the terminal when it is imported, so this module imports
it at the top and the CLI imports this module before the app runs.
"""

from __future__ import annotations

from PIL import Image as PILImage
from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import Static
from textual_image import widget as ti_widget

#: Seconds the cursor must rest before a preview that must be decoded is drawn.
DECODE_DELAY = 0.15
#: Least seconds between two previews drawn from memory (a held key repaints at <= 12.5 Hz).
PREVIEW_THROTTLE = 0.08


def preview_delay(in_memory: bool, since_last_draw: float) -> float:
    """Seconds to wait before drawing the preview after a cursor move.

    ``in_memory``: the thumbnail is in the in-memory LRU (drawing costs only the
    render). ``since_last_draw``: seconds since the previous preview was drawn.
    0 means draw now. A thumbnail that must be decoded waits :data:`DECODE_DELAY`
    (a held key starts no decodes); one in memory is drawn at once, at most every
    :data:`PREVIEW_THROTTLE` s (leading edge, then the remainder as a timer).
    """
    if not in_memory:
        return DECODE_DELAY
    return max(0.0, PREVIEW_THROTTLE - since_last_draw)


#: Accepted values of ``--preview`` / ``$FLUXGYM_COACH_PREVIEW``.
PREVIEW_MODES = ("auto", "kitty", "sixel", "halfcell", "unicode", "off")

_CLASSES = {
    "auto": ti_widget.Image,
    "kitty": ti_widget.TGPImage,
    "sixel": ti_widget.SixelImage,
    "halfcell": ti_widget.HalfcellImage,
    "unicode": ti_widget.UnicodeImage,
}


def renderer_name(mode: str) -> str:
    """The renderer a preview mode uses, in words (``auto`` resolved to what was detected)."""
    if mode == "off":
        return "off"
    cls = _CLASSES[mode]
    renderable = getattr(cls, "_Renderable", None)
    module = getattr(renderable, "__module__", "") or ""
    for name, label in (("tgp", "kitty"), ("sixel", "sixel"), ("halfcell", "halfcell"),
                        ("unicode", "unicode")):
        if module.endswith(name) or cls.__name__.lower().startswith(name):
            return label
    return "sixel" if cls is ti_widget.SixelImage else mode


class Preview(Container):
    """The preview pane: shows a thumbnail (PIL image) or a line of text."""

    DEFAULT_CSS = """
    Preview { height: 1fr; border: round $primary-darken-2; border-title-align: left; }
    Preview > .preview-image { width: auto; height: 100%; }
    Preview > #preview-text { color: $text-muted; padding: 0 1; }
    """

    def __init__(self, mode: str = "auto", *, id: str | None = None) -> None:
        if mode not in PREVIEW_MODES:
            raise ValueError(f"unknown preview mode {mode!r}: use one of {', '.join(PREVIEW_MODES)}")
        super().__init__(id=id)
        self.mode = mode
        self.shown_key: str | None = None
        self._image_widget = None if mode == "off" else _CLASSES[mode](classes="preview-image")

    def compose(self) -> ComposeResult:
        if self._image_widget is not None:
            self._image_widget.display = False
            yield self._image_widget
        yield Static("", id="preview-text")

    def show_image(self, key: str, image: PILImage.Image, title: str) -> None:
        """Show ``image`` (already a thumbnail) with ``title`` in the border."""
        self.border_title = title
        self.shown_key = key
        if self._image_widget is None:
            self.show_text("preview off", title, key)
            return
        self.query_one("#preview-text", Static).display = False
        self._image_widget.display = True
        self._image_widget.image = image

    def show_text(self, text: str, title: str | None = None, key: str | None = None) -> None:
        """Show a line of text instead of an image."""
        if title is not None:
            self.border_title = title
        self.shown_key = key
        if self._image_widget is not None:
            self._image_widget.display = False
        label = self.query_one("#preview-text", Static)
        label.display = True
        label.update(text)
