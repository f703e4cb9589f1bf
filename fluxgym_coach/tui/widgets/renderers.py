r"""Image widgets for the preview: kitty graphics (placeholders or placed, direct or
through tmux passthrough), Sixel through tmux, and half-block cells.

Built on textual-image's widget base, renderables and Sixel painter (subclassed,
not copied). :mod:`.preview` chooses among them. Sources: the kitty graphics
protocol (transmission, placement ``a=p``, Unicode placeholders ``U=1``,
deletion ``a=d``); tmux(1) ``allow-passthrough`` (``ESC Ptmux;`` envelope with
doubled ESC; lnqs/textual-image #104).
"""

from __future__ import annotations

import os
import sys
from collections import OrderedDict
from collections.abc import Iterator, Mapping

from PIL import Image as PILImage
from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.control import Control
from rich.measure import Measurement
from rich.segment import ControlType, Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.dom import NoScreen
from textual.errors import NoWidget
from textual.geometry import Region
from textual.strip import Strip
from textual_image import widget as ti_widget
from textual_image._geometry import ImageSize
from textual_image._terminal import get_cell_size
from textual_image.renderable import tgp as ti_tgp
from textual_image.widget import sixel as ti_sixel
from textual_image.widget._base import Image as ti_BaseImage


# -- kitty graphics, direct or through tmux -------------------------------------------------
def tmux_passthrough(sequence: str) -> str:
    r"""``sequence`` wrapped for tmux's passthrough: ``ESC Ptmux;`` + the sequence with
    every ESC doubled + ``ESC \`` (tmux(1), ``allow-passthrough``)."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def kitty_command(wrap: bool, payload: str | None = None, **keys: int | str | None) -> str:
    r"""One kitty graphics command ``ESC _G keys ; payload ESC \``, wrapped for tmux when ``wrap``."""
    body = ",".join(f"{k}={v}" for k, v in keys.items() if v is not None)
    seq = f"\x1b_G{body}{';' + payload if payload else ''}\x1b\\"
    return tmux_passthrough(seq) if wrap else seq


def write_terminal(data: str) -> None:
    """Write ``data`` straight to the terminal (``sys.__stdout__``), as textual-image does."""
    out = sys.__stdout__
    if out is None:
        return
    out.write(data)
    out.flush()


class _KittyRenderable(ti_tgp.Image):
    """textual-image's kitty renderable with our writer: the last image sent is kept in
    the terminal and re-used while the same thumbnail is shown at the same size (a
    repaint sends a few bytes, not the PNG again)."""

    wrap = False
    _sent: tuple[tuple[int, int, int, int, int], int] | None = None  # (key, terminal image id)

    def __init__(self, image: PILImage.Image, width: int | str | None = None,
                 height: int | str | None = None) -> None:
        super().__init__(image, width, height)
        self._source = image

    def cleanup(self) -> None:  # the terminal copy is freed when another image replaces it
        self.terminal_image_id = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        cells = get_cell_size()
        cw, ch = self._render_size.get_cell_size(options.max_width, options.max_height, cells)
        pw, ph = cw * cells.width, ch * cells.height
        key = (id(self._source), cw, ch, pw, ph)
        sent = type(self)._sent
        if sent is not None and sent[0] == key:
            self.terminal_image_id = sent[1]
        else:
            if sent is not None:
                write_terminal(kitty_command(self.wrap, a="d", d="I", i=sent[1], q=2))
            self._send_image_to_terminal(pw, ph)
            self._create_virtual_placement(cw, ch)
            type(self)._sent = (key, self.terminal_image_id)
        yield from self._render_diacritics(cw, ch)

    def _send_image_to_terminal(self, width: int, height: int) -> None:
        self.terminal_image_id = next(ti_tgp.Image._image_id_counter) & 0xFFFFFFFF or 1
        data = self._image_data.scaled(width, height).to_base64()
        parts = []
        while data:
            chunk, data = data[:4096], data[4096:]
            parts.append(kitty_command(self.wrap, payload=chunk, i=self.terminal_image_id,
                                       m=1 if data else 0, f=100, q=2))
        write_terminal("".join(parts))

    def _create_virtual_placement(self, width: int, height: int) -> None:
        write_terminal(kitty_command(self.wrap, a="p", i=self.terminal_image_id, c=width, r=height,
                             U=1, q=2))


class _KittyTmuxRenderable(_KittyRenderable):
    """The kitty renderable inside tmux: every command wrapped for passthrough."""

    wrap = True
    _sent = None


# -- half-block cells -----------------------------------------------------------------------
_HALFCELL_CACHE: OrderedDict[tuple[int, int, int], tuple[PILImage.Image, list[Segment]]] = OrderedDict()


def halfcell_segments(image: PILImage.Image, width: int, height: int) -> list[Segment]:
    """``image`` as ``height`` lines of ``width`` ``▀`` cells (2 pixels per cell: the
    upper in the foreground, the lower in the background colour), each line ending
    in a newline segment. Cached for the last 8 (image, size) pairs."""
    key = (id(image), width, height)
    hit = _HALFCELL_CACHE.get(key)
    if hit is not None and hit[0] is image:
        _HALFCELL_CACHE.move_to_end(key)
        return hit[1]
    import numpy as np  # here: the TUI's first screen is drawn before numpy is loaded

    px = np.asarray(image.convert("RGB").resize((max(1, width), max(2, height * 2)),
                                                PILImage.Resampling.BOX))
    segments: list[Segment] = []
    newline = Segment("\n")
    rgb, style = Color.from_rgb, Style.from_color  # from_color: 20 % faster than Style(...)
    for y in range(0, px.shape[0] - 1, 2):
        upper, lower = px[y].tolist(), px[y + 1].tolist()
        segments.extend(Segment("▀", style(rgb(*u), rgb(*lo)))
                        for u, lo in zip(upper, lower))
        segments.append(newline)
    _HALFCELL_CACHE[key] = (image, segments)
    while len(_HALFCELL_CACHE) > 8:
        _HALFCELL_CACHE.popitem(last=False)
    return segments


class _HalfcellRenderable:
    """Rich renderable of :func:`halfcell_segments` sized like textual-image's."""

    def __init__(self, image: PILImage.Image, width: int | str | None = None,
                 height: int | str | None = None) -> None:
        self._image = image
        self._render_size = ImageSize(image.width, image.height, width, height)

    def cleanup(self) -> None:
        """Nothing to free."""

    def _cells(self, options: ConsoleOptions) -> tuple[int, int]:
        return self._render_size.get_cell_size(options.max_width, options.max_height, get_cell_size())

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        yield from halfcell_segments(self._image, *self._cells(options))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        width = self._cells(options)[0]
        return Measurement(width, width)


class _NoRenderable:
    """Renders nothing (the placed kitty image is drawn by the terminal, not as text)."""

    def __init__(self, image: object, width: object = None, height: object = None) -> None:
        pass

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        yield Segment("")

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(0, 0)

    def cleanup(self) -> None:
        """Nothing to free."""


def tmux_pane_origin(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(left, top) cell of our tmux pane in the client's screen; (0, 0) when unknown."""
    import subprocess

    env = os.environ if env is None else env
    target = ["-t", env["TMUX_PANE"]] if env.get("TMUX_PANE") else []
    try:
        out = subprocess.run(["tmux", "display-message", "-p", *target, "#{pane_left} #{pane_top}"],
                             capture_output=True, text=True, timeout=2, check=False).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return 0, 0


class KittyPlacedImage(ti_BaseImage, Renderable=_NoRenderable):
    """Image widget: kitty graphics placed at the widget's cell (``a=p`` at the cursor),
    for kitty before 0.28, which has no Unicode placeholders. The image is sent once
    per thumbnail and size; a repaint moves the one placement (``p=1``). The placement
    goes out inside the frame (a zero-width segment), in order with the text."""

    wrap = False
    _sent: tuple[tuple[int, int, int], int] | None = None

    def _place(self, image_id: int, visible: Region, width: int, height: int) -> list[Segment]:
        place = kitty_command(False, a="p", i=image_id, p=1, c=width, r=height, C=1, q=2)
        return [Segment(Control.move_to(visible.x, visible.y).segment.text),
                Segment(place, control=((ControlType.CURSOR_FORWARD, 0),)),
                Segment(Control.move_to(visible.right, visible.bottom).segment.text)]

    def render_lines(self, crop: Region) -> list[Strip]:
        try:
            if not self.image or not self.screen.is_active:
                return []
            visible = self.screen.find_widget(self).visible_region
        except (NoScreen, NoWidget):
            return []
        width, height = self.content_size
        cells = get_cell_size()
        key = (id(self.image), width, height)
        cls = type(self)
        sent = cls._sent
        if sent is None or sent[0] != key:
            if sent is not None:
                write_terminal(kitty_command(self.wrap, a="d", d="I", i=sent[1], q=2))
            image_id = next(ti_tgp.Image._image_id_counter) & 0xFFFFFF or 1
            data = ti_tgp.PixelData(self.image).scaled(width * cells.width,
                                                      height * cells.height).to_base64()
            parts = []
            while data:
                chunk, data = data[:4096], data[4096:]
                parts.append(kitty_command(self.wrap, payload=chunk, a="t", i=image_id,
                                           m=1 if data else 0, f=100, q=2))
            write_terminal("".join(parts))
            sent = cls._sent = (key, image_id)
        segments = self._place(sent[1], visible, width, height)
        return [Strip.blank(crop.width)] * (crop.height - 1) + [Strip(segments, crop.width)]

    @classmethod
    def hide(cls) -> None:
        """Remove the placement from the screen (the image stays in the terminal)."""
        if cls._sent is not None:
            write_terminal(kitty_command(cls.wrap, a="d", d="i", i=cls._sent[1], q=2))


class KittyPlacedTmuxImage(KittyPlacedImage, Renderable=_NoRenderable):
    """:class:`KittyPlacedImage` through tmux passthrough: tmux does not know where a
    passed-through image sits, so the placement carries its own cursor move to the
    pane's cell on the client's screen (save cursor, move, place, restore). The image
    stays where it was placed when tmux switches windows or moves panes (kitty 0.28+
    with Unicode placeholders follows them: ``kitty-tmux``)."""

    wrap = True
    _sent = None

    def _place(self, image_id: int, visible: Region, width: int, height: int) -> list[Segment]:
        left, top = tmux_pane_origin()
        place = kitty_command(False, a="p", i=image_id, p=1, c=width, r=height, C=1, q=2)
        seq = tmux_passthrough(f"\x1b7\x1b[{top + visible.y + 1};{left + visible.x + 1}H{place}\x1b8")
        return [Segment(seq, control=((ControlType.CURSOR_FORWARD, 0),))]


class _SixelThroughTmux(ti_sixel._ImageSixelImpl):
    """textual-image's Sixel painter with the Sixel data sent through tmux passthrough,
    preceded by a move to the widget's cell on the client's screen (cursor saved and
    restored inside the envelope): for tmux without Sixel of its own (before 3.4, or
    built without it). tmux does not know the picture is there: it is redrawn with the
    widget, and a tmux redraw of the pane (window switch) wipes it until then."""

    def _get_sixel_segments(self, sixel_data: str) -> list[Segment]:
        visible = self.screen.find_widget(self).visible_region
        left, top = tmux_pane_origin()
        seq = tmux_passthrough(f"\x1b7\x1b[{top + visible.y + 1};{left + visible.x + 1}H"
                               f"{sixel_data}\x1b8")
        return [Segment(seq, control=((ControlType.CURSOR_FORWARD, 0),))]


class SixelTmuxImage(ti_widget.SixelImage, Renderable=ti_sixel._NoopRenderable):
    """Image widget: Sixel through tmux passthrough (see :class:`_SixelThroughTmux`)."""

    def compose(self) -> ComposeResult:
        yield _SixelThroughTmux(self.image, self._sixel_options)


class KittyImage(ti_BaseImage, Renderable=_KittyRenderable):
    """Image widget: kitty graphics with Unicode placeholders."""


class KittyTmuxImage(ti_BaseImage, Renderable=_KittyTmuxRenderable):
    """Image widget: kitty graphics through tmux passthrough."""


class HalfcellImage(ti_BaseImage, Renderable=_HalfcellRenderable):
    """Image widget: half-block cells in the app's colours."""


#: The image widget of each renderer of :data:`.preview.RENDERERS` (``off`` has none).
WIDGETS = {
    "kitty": KittyImage,
    "kitty-placed": KittyPlacedImage,
    "kitty-placed-tmux": KittyPlacedTmuxImage,
    "kitty-tmux": KittyTmuxImage,
    "sixel": ti_widget.SixelImage,
    "sixel-tmux": SixelTmuxImage,
    "halfcell": HalfcellImage,
    "unicode": ti_widget.UnicodeImage,
}
