"""Preview renderers: the tmux passthrough envelope, kitty re-use, half-blocks, choice."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
from PIL import Image
from rich.console import Console

from fluxgym_coach.tui.terminal import COLORS_256, TRUECOLOR, TerminalInfo, TmuxInfo
from fluxgym_coach.tui.widgets import preview as pv
from fluxgym_coach.tui.widgets import renderers as rd


def tmux(passthrough: bool = True, rgb: bool = True, name: str = "xterm-kitty") -> TmuxInfo:
    return TmuxInfo("3.3a", name, "", frozenset({"256", "RGB"} if rgb else {"256"}), passthrough)


def test_tmux_passthrough_doubles_every_escape():
    seq = "\x1b_Gi=1,a=p;\x1b\\"
    wrapped = rd.tmux_passthrough(seq)
    assert wrapped.startswith("\x1bPtmux;\x1b\x1b_G") and wrapped.endswith("\x1b\x1b\\\x1b\\")
    inner = wrapped[len("\x1bPtmux;"):-2]
    assert inner.replace("\x1b\x1b", "\x1b") == seq and "\x1b" not in inner.replace("\x1b\x1b", "")


def render_kitty(cls, image, monkeypatch, size=(20, 10)) -> str:
    out = io.StringIO()
    monkeypatch.setattr(sys, "__stdout__", out)
    console = Console(width=size[0], height=size[1], force_terminal=True, color_system="truecolor")
    renderable = cls(image, "auto", "auto")
    list(console.render(renderable, console.options.update(width=size[0], height=size[1])))
    return out.getvalue()


def test_kitty_through_tmux_is_wrapped_and_a_repaint_sends_nothing_new(monkeypatch):
    im = Image.new("RGB", (64, 48), (200, 30, 30))
    sent = render_kitty(rd._KittyTmuxRenderable, im, monkeypatch)
    commands = re.findall(r"\x1bPtmux;(.*?)\x1b\\(?!\x1b)", sent, re.DOTALL)
    assert commands and all(c.startswith("\x1b\x1b_G") for c in commands)
    assert "\x1b\x1b_Ga=p," in sent and "U=1" in sent  # virtual placement for the placeholders
    again = render_kitty(rd._KittyTmuxRenderable, im, monkeypatch)
    assert again == ""  # same thumbnail, same size: the terminal keeps the image
    other = render_kitty(rd._KittyTmuxRenderable, Image.new("RGB", (64, 48)), monkeypatch)
    assert "a=d,d=I" in other and "f=100" in other  # the old image freed, the new one sent
    direct = render_kitty(rd._KittyRenderable, im, monkeypatch)
    assert direct.startswith("\x1b_G") and "tmux;" not in direct


def test_halfcell_cells_carry_upper_and_lower_pixels():
    rng = np.random.default_rng(1)
    im = Image.fromarray(rng.integers(0, 256, (8, 6, 3), dtype=np.uint8))
    segments = rd.halfcell_segments(im, 6, 4)
    cells = [s for s in segments if s.text == "▀"]
    assert len(cells) == 24 and sum(s.text == "\n" for s in segments) == 4
    px = np.asarray(im)
    for i, cell in enumerate(cells):
        y, x = divmod(i, 6)
        assert cell.style.color.triplet == tuple(px[2 * y, x])
        assert cell.style.bgcolor.triplet == tuple(px[2 * y + 1, x])
    assert rd.halfcell_segments(im, 6, 4) is segments  # cached


def test_auto_renderer_inside_tmux():
    env = {"TMUX": "/tmp/tmux-0/default,1,0"}
    good = TerminalInfo(TRUECOLOR, "tmux client xterm-kitty has RGB", tmux(), True)
    assert pv.resolve_renderer("auto", good, env, detected="halfcell") == "kitty-tmux"
    off = TerminalInfo(TRUECOLOR, "", tmux(passthrough=False), True,
                       ("tmux set -g allow-passthrough on (kitty graphics through tmux)",))
    assert pv.resolve_renderer("auto", off, env, detected="halfcell") == "halfcell"
    no_rgb = TerminalInfo(COLORS_256, "", tmux(rgb=False), True)
    assert pv.resolve_renderer("auto", no_rgb, env, detected="halfcell") == "halfcell"
    assert pv.resolve_renderer("auto", good, env, detected="sixel") == "sixel"  # tmux >= 3.4 sixel
    assert pv.resolve_renderer("auto", good, {}, detected="kitty") == "kitty"
    assert pv.resolve_renderer("kitty", None, env) == "kitty-tmux"
    status = pv.preview_status("halfcell", "256", off)
    assert "half-blocks, 256 colours" in status and "allow-passthrough on" in status
    assert pv.preview_status("halfcell", "truecolor",
                             TerminalInfo(TRUECOLOR, "COLORTERM=truecolor")).endswith("24-bit")
    assert pv.preview_fix("halfcell", "256", off).startswith("tmux set -g allow-passthrough on")
    assert pv.preview_fix("kitty", "truecolor", good) == ""  # not poor: nothing to fix
    lacks = TerminalInfo(COLORS_256, "tmux client xterm-kitty lacks RGB", tmux(rgb=False), True,
                         ("tmux set -as terminal-features ',xterm-kitty:RGB' ...",),
                         "tmux set -as terminal-features ',xterm-kitty:RGB' ...")
    fix = pv.preview_fix("kitty", "256", lacks)  # forced kitty through tmux without RGB
    assert fix.startswith("kitty placeholders need 24-bit colour: tmux set -as terminal-features")
