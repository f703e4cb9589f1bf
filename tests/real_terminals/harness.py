"""Run the review app inside a real terminal and report where its preview is.

Usage (inside the terminal under test)::

    python -m tests.real_terminals.harness DATASET REPORT.json [--preview MODE]

It does what ``fluxgym-coach tui`` does before the app starts (textual-image's
probe at import, the colour depth and window size of
:mod:`fluxgym_coach.tui.terminal`), opens the app with audit and plugins off,
and once the first thumbnail has been drawn and the frame written writes
``REPORT.json``: the image widget's region in cells, the terminal size in cells
and pixels (``TIOCGWINSZ``, read then), the size the app laid itself out for,
the renderer and colour system in use, and the thumbnail as PNG next to it
(``REPORT.png``). It keeps running until killed, so the screen can be
photographed (the photographer waits for the terminal to finish painting).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import struct
import sys
import termios
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def painted(widget) -> bool:
    """The image widget has produced its picture: Sixel data encoded, a kitty image sent
    (those are made while rendering, a frame after the widget is shown), or it has cells."""
    from textual_image.widget import SixelImage

    from fluxgym_coach.tui.widgets.renderers import KittyPlacedImage

    if widget is None:
        return True
    if isinstance(widget, SixelImage):
        return any(getattr(c, "_cached_sixels", None) is not None for c in widget.children)
    if isinstance(widget, KittyPlacedImage):
        return type(widget)._sent is not None
    return widget.content_region.area > 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("report")
    ap.add_argument("--preview", default="auto")
    args = ap.parse_args()

    from fluxgym_coach.tui.terminal import (
        apply_colour_depth,
        current_terminal,
        use_real_window_size,
    )
    from fluxgym_coach.tui.widgets import (
        preview as pv,  # textual-image probes the terminal here
    )

    term = current_terminal()
    apply_colour_depth(term)
    env_size = {k: os.environ[k] for k in ("COLUMNS", "LINES") if k in os.environ}
    dropped = use_real_window_size()
    from fluxgym_coach.tui.app import ReviewApp

    report = Path(args.report)

    class Harness(ReviewApp):
        shown = None

        def on_mount(self) -> None:
            preview = self.query_one(pv.Preview)
            show_image = preview.show_image

            def traced(key, image, title) -> None:
                show_image(key, image, title)
                if self.shown is None:  # the first preview drawn is the one photographed
                    self.shown = image
                    self._until_painted = self.set_interval(0.05, self._check_painted)
            preview.show_image = traced

        def _check_painted(self) -> None:
            if painted(self.query_one(pv.Preview)._image_widget):
                self._until_painted.stop()
                self.call_after_refresh(self._ask_terminal)

        def _ask_terminal(self) -> None:
            # A cursor position request after the frame: the terminal (or tmux) answers it
            # once it has read everything before it, image included.
            self._driver.write("\x1b[6n")
            self._driver.flush()

        def on_cursor_position(self, event) -> None:
            if self.shown is not None:
                write(self.shown)

    app = Harness(args.dataset, preview=args.preview, audit=False, plugins=False, scan=False)

    def write(image) -> None:
        if report.exists():
            return
        preview = app.query_one(pv.Preview)
        widget = preview._image_widget
        region = widget.content_region if widget is not None else preview.content_region
        image.save(report.with_suffix(".part.png"))
        report.with_suffix(".part.png").replace(report.with_suffix(".png"))
        rows, cols, xpix, ypix = struct.unpack(  # the size now, after any late resize
            "HHHH", fcntl.ioctl(sys.__stdout__.fileno(), termios.TIOCGWINSZ, b"\0" * 8))
        tmp = report.with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "region": [region.x, region.y, region.width, region.height],
            "cells": [cols, rows], "pixels": [xpix, ypix],
            "app_size": [app.size.width, app.size.height], "dropped_env": dropped,
            "env_size": env_size,
            "renderer": preview.renderer, "color_system": app.console.color_system,
            "status": pv.preview_status(args.preview, app.console.color_system),
            "fix_shown": preview.fix if preview.query_one("#preview-fix").display else "",
            "colour_reason": term.colour_reason,
            "tmux_features": sorted(term.tmux.client_features) if term.tmux else None}))
        tmp.replace(report)

    app.run()


if __name__ == "__main__":
    main()
