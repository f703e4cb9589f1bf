"""Run the review app inside a real terminal and report where its preview is.

Usage (inside the terminal under test)::

    python -m tests.real_terminals.harness DATASET REPORT.json [--preview MODE]

It does what ``fluxgym-coach tui`` does before the app starts (textual-image's
probe at import, the colour depth of :mod:`fluxgym_coach.tui.terminal`), opens
the app with audit and plugins off, and once the first thumbnail has been drawn
and painted writes ``REPORT.json``: the image widget's region in cells, the
terminal size in cells and pixels (``TIOCGWINSZ``), the renderer and colour
system in use, and the thumbnail as PNG next to it (``REPORT.png``). It keeps
running until killed, so the screen can be photographed.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import struct
import sys
import termios
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("report")
    ap.add_argument("--preview", default="auto")
    args = ap.parse_args()

    from fluxgym_coach.tui.widgets import preview as pv  # textual-image probes the terminal here
    from fluxgym_coach.tui.terminal import apply_colour_depth, current_terminal

    term = current_terminal()
    apply_colour_depth(term)
    from fluxgym_coach.tui.app import ReviewApp

    rows, cols, xpix, ypix = struct.unpack(
        "HHHH", fcntl.ioctl(sys.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8))
    report = Path(args.report)

    class Harness(ReviewApp):
        def on_mount(self) -> None:
            preview = self.query_one(pv.Preview)
            show_image = preview.show_image

            def traced(key, image, title) -> None:
                show_image(key, image, title)
                self.call_after_refresh(lambda: self.set_timer(1.5, lambda: write(image)))
            preview.show_image = traced

    app = Harness(args.dataset, preview=args.preview, audit=False, plugins=False, scan=False)

    def write(image) -> None:
        if report.exists():  # the first preview drawn is the one photographed
            return
        preview = app.query_one(pv.Preview)
        widget = preview._image_widget
        region = widget.content_region if widget is not None else preview.content_region
        image.save(report.with_suffix(".part.png"))
        report.with_suffix(".part.png").replace(report.with_suffix(".png"))
        tmp = report.with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "region": [region.x, region.y, region.width, region.height],
            "cells": [cols, rows], "pixels": [xpix, ypix],
            "renderer": preview.renderer, "color_system": app.console.color_system,
            "status": pv.preview_status(args.preview, app.console.color_system),
            "colour_reason": term.colour_reason,
            "tmux_features": sorted(term.tmux.client_features) if term.tmux else None}))
        tmp.replace(report)

    app.run()


if __name__ == "__main__":
    main()
