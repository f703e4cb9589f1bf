r"""The preview pane: one image widget, fed with ready-made thumbnails.

Renderers (``--preview`` / ``$FLUXGYM_COACH_PREVIEW``): ``auto`` picks the best
the terminal has (:func:`resolve_renderer`); ``kitty``, ``sixel``, ``halfcell``
and ``unicode`` force one; ``off`` shows text only.

- **kitty** (kitty graphics protocol with Unicode placeholders, virtual
  placement ``U=1``): textual-image's renderable, with our own writer that
  re-uses an image already sent for the same thumbnail and cell size, and,
  inside tmux, wraps every sequence for tmux passthrough (``ESC Ptmux;`` ... ``ESC \``
  with each inner ESC doubled; lnqs/textual-image #104). The placeholder cells
  carry the image id in their 24-bit foreground colour, so tmux must pass RGB.
- **sixel**: textual-image's Sixel widget (xterm -ti vt340, foot, WezTerm,
  tmux >= 3.4 built with Sixel).
- **halfcell**: ``▀`` cells, upper pixel in the foreground and lower in the
  background colour; ours, built with numpy and cached per thumbnail and size
  (textual-image's builds one Style per pixel in Python on every render).
- **unicode**: textual-image's monochrome fallback (not a terminal).

textual-image probes the terminal (Sixel, then kitty graphics) when it is
imported, so in a terminal this module imports it at the top and the CLI imports
this module before the app runs. Without a terminal (headless tests, benches) it
is imported when the pane mounts its image widget, after the app's first paint
(textual-image imports numpy: the list's first screen needs neither). Sources:
kitty graphics protocol ("Unicode placeholders"), tmux(1) ``allow-passthrough``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from PIL import Image as PILImage
from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import Static

from ..terminal import (
    KITTY_PLACEHOLDERS_SINCE,
    TRUECOLOR,
    TerminalInfo,
    current_terminal,
    kitty_version,
)
from ..crop import CropState, overlaid, title_suffix

if sys.__stdout__ is not None and sys.__stdout__.isatty():
    # textual-image probes the terminal when imported: here, before Textual reads it
    import textual_image.renderable  # noqa: F401

#: Seconds the cursor must rest before a preview that must be decoded is drawn.
DECODE_DELAY = 0.15
#: Least seconds between two previews drawn from memory (a held key repaints at <= 12.5 Hz).
PREVIEW_THROTTLE = 0.08
#: Seconds an image shown before the pane's image widget is mounted waits at most for
#: :meth:`Preview.prepare` (see :meth:`Preview.show_image`).
DEFERRED_WAIT = 1.0


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
#: What :func:`resolve_renderer` may answer.
RENDERERS = ("kitty", "kitty-placed", "kitty-tmux", "kitty-placed-tmux", "sixel-tmux", "sixel", "halfcell", "unicode", "off")



def detected_renderer() -> str:
    """What textual-image's own probe (at import) found: kitty, sixel, halfcell or unicode."""
    from textual_image import renderable as ti_renderable

    auto = ti_renderable.Image
    return {ti_renderable.TGPImage: "kitty", ti_renderable.SixelImage: "sixel",
            ti_renderable.HalfcellImage: "halfcell"}.get(auto, "unicode")


def query_xtversion(timeout: float = 0.5) -> str:
    """The terminal's XTVERSION reply (``CSI > 0 q``), e.g. ``kitty(0.26.5)``; "" when
    there is none. Only before Textual starts (its input thread takes replies after)."""
    from textual_image._terminal import TerminalError, capture_terminal_response

    from .renderers import write_terminal

    try:
        with capture_terminal_response("\x1bP>|", "\x1b\\", timeout) as reply:
            write_terminal("\x1b[>0q")
    except (TerminalError, TimeoutError, OSError):
        return ""
    return reply.sequence[len("\x1bP>|"):-2]


#: XTVERSION of a kitty-graphics terminal we run in directly (asked at import).
TERMINAL_VERSION = (query_xtversion() if sys.__stdout__ and sys.__stdout__.isatty()
                    and not os.environ.get("TMUX") and detected_renderer() == "kitty" else "")


def resolve_renderer(mode: str, term: TerminalInfo | None = None,
                     env: Mapping[str, str] | None = None, detected: str | None = None,
                     version: str | None = None) -> str:
    """The renderer (one of :data:`RENDERERS`) a preview mode uses here.

    ``auto``: textual-image's probe (``detected``, default :func:`detected_renderer`),
    except inside tmux, where the probe cannot see kitty graphics: there kitty
    through passthrough is used when the outer terminal speaks it (``term``, default
    :func:`~..terminal.current_terminal`), ``allow-passthrough`` is on and tmux
    passes 24-bit colour (the placeholders carry the image id in it). ``kitty``
    inside tmux always wraps. A kitty older than 0.28 (``version``, its XTVERSION
    reply; default :data:`TERMINAL_VERSION`) has no placeholders: images are placed
    at the cursor there (``kitty-placed``), and not shown through tmux.
    Raises ValueError for an unknown mode.
    """
    if mode not in PREVIEW_MODES:
        raise ValueError(f"unknown preview mode {mode!r}: use one of {', '.join(PREVIEW_MODES)}")
    env = os.environ if env is None else env
    in_tmux = bool(env.get("TMUX"))
    old = kitty_version(TERMINAL_VERSION if version is None else version)
    direct_kitty = "kitty-placed" if old is not None and old < KITTY_PLACEHOLDERS_SINCE else "kitty"
    if mode == "kitty" and in_tmux:
        term = term or current_terminal()
        outer = kitty_version(term.tmux.client_termtype) if term.tmux else None
        return ("kitty-placed-tmux" if outer is not None and outer < KITTY_PLACEHOLDERS_SINCE
                else "kitty-tmux")
    if mode == "kitty":
        return direct_kitty
    if mode == "sixel" and in_tmux:  # tmux's own Sixel (3.4+) answers the probe with 4
        return "sixel" if (detected or detected_renderer()) == "sixel" else "sixel-tmux"
    if mode != "auto":
        return mode
    found = detected or detected_renderer()
    if not in_tmux:
        return direct_kitty if found == "kitty" else found
    if found in ("sixel", "unicode"):
        return found
    term = term or current_terminal()
    outer = kitty_version(term.tmux.client_termtype) if term.tmux else None
    if term.tmux is not None and term.kitty_graphics_outside and term.tmux.passthrough:
        if outer is not None and outer < KITTY_PLACEHOLDERS_SINCE:
            return "kitty-placed-tmux"  # no placeholders: placed at the pane's cell
        if term.colour == TRUECOLOR:  # the placeholders carry the image id in 24-bit colour
            return "kitty-tmux"
    return "halfcell" if found == "kitty" else found


_LABELS = {"kitty": "kitty graphics", "kitty-placed": "kitty graphics (placed)",
           "kitty-placed-tmux": "kitty graphics via tmux (placed)",
           "sixel-tmux": "sixel via tmux passthrough", "kitty-tmux": "kitty graphics via tmux", "sixel": "sixel",
           "halfcell": "half-blocks", "unicode": "unicode", "off": "off"}
_COLOUR_SYSTEMS = {"truecolor": "24-bit", "256": "256 colours", "standard": "16 colours",
                   "windows": "16 colours"}


def renderer_name(mode: str) -> str:
    """The renderer (one of :data:`RENDERERS`) a preview mode uses here (``auto`` resolved)."""
    return resolve_renderer(mode)


def preview_fix(mode: str, color_system: str | None = None,
                term: TerminalInfo | None = None) -> str:
    """The one-line fix when the preview is poor (half-blocks or unicode, or kitty
    placeholders without 24-bit colour), else "".

    ``color_system`` as for :func:`preview_status`. The colour fix is left out when
    the app already draws in 24-bit colour. E.g. ``tmux set -g allow-passthrough on
    (kitty graphics through tmux)``.
    """
    term = term or current_terminal()
    renderer = resolve_renderer(mode, term)
    depth = _COLOUR_SYSTEMS.get(color_system or "", term.depth_label)
    if renderer in ("kitty", "kitty-tmux") and depth != "24-bit":
        # the placeholder cells carry the image id in their 24-bit colour: fewer colours
        # turn them into other ids (no image, or the wrong one)
        return ("kitty placeholders need 24-bit colour: "
                + (term.colour_fix or "export COLORTERM=truecolor"))
    if renderer not in ("halfcell", "unicode"):
        return ""
    fixes = [f for f in term.fixes if depth != "24-bit" or f != term.colour_fix]
    return fixes[0] if fixes else ""


def preview_status(mode: str, color_system: str | None = None,
                   term: TerminalInfo | None = None) -> str:
    """The status-line field: renderer, colour depth and, when poor, the one-line fix.

    ``color_system``: the app console's (``App.console.color_system``: ``truecolor``,
    ``256``, ``standard``); default: the detected depth. E.g.
    ``preview half-blocks, 256 colours (fix: tmux set -as terminal-features ',xterm-256color:RGB' ...)``.
    The status line is cut at the terminal's width, so :class:`Preview` also shows
    the fix (:func:`preview_fix`) inside the preview pane, where it wraps.
    """
    term = term or current_terminal()
    renderer = resolve_renderer(mode, term)
    depth = _COLOUR_SYSTEMS.get(color_system or "", term.depth_label)
    text = f"preview {_LABELS[renderer]}, {depth}"
    fix = preview_fix(mode, color_system, term)
    return f"{text} (fix: {fix})" if fix else text


class Preview(Container):
    """The preview pane: shows a thumbnail (PIL image) or a line of text.

    The crop overlay (:mod:`fluxgym_coach.tui.crop`): while ``crop.on`` and a
    ``crop_provider`` is set, :meth:`show_image` asks it for the
    :class:`~fluxgym_coach.audit.preview_geometry.TrainerView` of the image shown
    (``provider(key, thumbnail)``; None: no overlay for that key), shows the
    thumbnail with the dropped region dimmed and the kept window outlined, and
    adds the profile to the title. ``plain`` is the thumbnail as given,
    ``crop_view`` the view drawn (None when none is).
    """

    DEFAULT_CSS = """
    Preview { height: 1fr; border: round $primary-darken-2; border-title-align: left; }
    Preview > .preview-image { width: auto; height: 100%; }
    Preview > #preview-text { color: $text-muted; padding: 0 1; }
    Preview > #preview-fix { dock: bottom; height: auto; max-height: 3; color: $warning;
                             padding: 0 1; }
    """
    #: Least content rows for the fix line to be shown (a small preview keeps its rows).
    FIX_MIN_ROWS = 12

    def __init__(self, mode: str = "auto", *, id: str | None = None) -> None:
        self.renderer = resolve_renderer(mode)
        super().__init__(id=id)
        self.mode = mode
        self.shown_key: str | None = None
        self.fix = ""  #: the one-line fix shown in the pane (``auto`` only), set on mount
        self.crop = CropState()
        self.crop_provider: Callable[[str, PILImage.Image], object] | None = None
        self.crop_view = None
        self.plain: PILImage.Image | None = None
        #: The image widget (None: not mounted yet, or ``off``); mounted by :meth:`prepare`
        #: (after the app's first paint) or by the first :meth:`show_image`.
        self._image_widget: Any = None
        self._deferred: tuple[str, PILImage.Image, str] | None = None  # see show_image

    def compose(self) -> ComposeResult:
        fix = Static("", id="preview-fix")
        fix.display = False
        yield fix
        yield Static("", id="preview-text")

    def prepare(self) -> None:
        """Mount the image widget now (the app calls this once its start-up work is
        under way, so the first image does not wait for textual-image's import) and
        show the image :meth:`show_image` kept back, if any."""
        self._ensure_image_widget()
        self._show_deferred()

    def _ensure_image_widget(self) -> Any:
        """The image widget, created and mounted (hidden, above the text) on first use;
        None for ``off``. Its module imports textual-image (and numpy)."""
        if self._image_widget is None and self.renderer != "off":
            from .renderers import WIDGETS

            widget = WIDGETS[self.renderer](classes="preview-image")
            widget.display = False
            self._image_widget = widget
            self.mount(widget, before=self.query_one("#preview-text", Static))
        return self._image_widget

    def on_mount(self) -> None:
        # Only for ``auto``: a renderer the user chose is kept without a word here (the
        # status line still names the fix).
        self.fix = preview_fix(self.mode, self.app.console.color_system) if self.mode == "auto" else ""
        self.query_one("#preview-fix", Static).update(f"fix: {self.fix}" if self.fix else "")
        self._show_fix()

    def on_resize(self) -> None:
        self._show_fix()

    def _show_fix(self) -> None:
        """The fix line is shown when there is one and the pane is tall enough."""
        self.query_one("#preview-fix", Static).display = (
            bool(self.fix) and self.size.height >= self.FIX_MIN_ROWS)

    def show_image(self, key: str, image: PILImage.Image, title: str) -> None:
        """Show ``image`` (already a thumbnail) with ``title`` in the border (and the
        crop overlay when it is on, see the class docstring).

        When the image widget is not mounted yet and mounting it would import
        textual-image (no terminal probed it at start), the image is shown by
        :meth:`prepare` (called by the app's start-up work after the first paint),
        or after :data:`DEFERRED_WAIT` s: the list's first screen is not held
        behind that import."""
        if self._image_widget is None and self.renderer != "off" and "textual_image" not in sys.modules:
            if self._deferred is None:
                self.set_timer(DEFERRED_WAIT, self._show_deferred)
            self._deferred = (key, image, title)
            return
        self._deferred = None
        self.plain, self.crop_view = image, None
        if self.crop.on and self.crop_provider is not None:
            view = self.crop_provider(key, image)
            if view is not None:
                self.crop_view = view
                title += title_suffix(view)
                if view.crop is not None:
                    image = overlaid(image, view)
        self.border_title = title
        self.shown_key = key
        widget = self._ensure_image_widget()
        if widget is None:
            self.show_text("preview off", title, key)
            return
        self.query_one("#preview-text", Static).display = False
        widget.display = True
        widget.image = image

    def _show_deferred(self) -> None:
        args, self._deferred = self._deferred, None
        if args is not None:
            self._ensure_image_widget()
            self.show_image(*args)

    def show_text(self, text: str, title: str | None = None, key: str | None = None) -> None:
        """Show a line of text instead of an image."""
        self._deferred = None
        if title is not None:
            self.border_title = title
        self.shown_key = key
        if self._image_widget is not None:
            from .renderers import KittyPlacedImage

            if self._image_widget.display and isinstance(self._image_widget, KittyPlacedImage):
                type(self._image_widget).hide()
            self._image_widget.display = False
        label = self.query_one("#preview-text", Static)
        label.display = True
        label.update(text)
