"""Terminal detection against a real tmux server on a private socket, with a client
attached through a pseudo-terminal (no mocks of tmux)."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fluxgym_coach.tui.terminal import (
    COLORS_16,
    COLORS_256,
    TRUECOLOR,
    TerminalInfo,
    TmuxInfo,
    apply_colour_depth,
    detect_terminal,
    terminfo_has_rgb,
)
from tests.real_terminals.child import end_pty_child, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (apt-get install tmux)")
ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import json, sys
from fluxgym_coach.tui.terminal import detect_terminal
info = detect_terminal()
t = info.tmux
json.dump({"colour": info.colour, "reason": info.colour_reason, "fixes": list(info.fixes),
           "kitty": info.kitty_graphics_outside,
           "tmux": None if t is None else {"termname": t.client_termname, "rgb": t.rgb,
                                           "passthrough": t.passthrough,
                                           "features": sorted(t.client_features)}},
          open(sys.argv[1], "w"))
"""


class Tmux:
    """A tmux server of its own (``-L``), with a client attached in a pty."""

    def __init__(self, tmp: Path, name: str, client_term: str, conf: str = "") -> None:
        self.sock, self.tmp = f"test-fgc-{os.getpid()}-{name}", tmp
        conf_file = tmp / f"{name}.conf"
        conf_file.write_text(conf)
        self.base = ["tmux", "-L", self.sock, "-f", str(conf_file)]
        subprocess.run([*self.base, "new-session", "-d", "-s", "main", "-x", "100", "-y", "30"],
                       check=True, timeout=10)
        self.client_pid, self.client_fd = pty.fork()
        if self.client_pid == 0:  # the client: an outer terminal with this TERM
            os.environ["TERM"] = client_term
            os.environ.pop("TMUX", None)
            os.execvp("tmux", ["tmux", "-L", self.sock, "attach", "-t", "main"])
        wait_for(lambda: self.run("list-clients", "-F", "#{client_termname}").strip(),
                 "the tmux client to attach", 15.0, step=0.05)

    def run(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True,
                              timeout=10, check=False).stdout

    def probe(self, env: str = "") -> dict:
        """Run the detection inside a pane of this server; return what it found."""
        out = self.tmp / f"probe-{time.monotonic_ns()}.json"
        script = self.tmp / "probe.py"
        script.write_text(PROBE)
        cmd = (f"env -u COLORTERM -u TEXTUAL_COLOR_SYSTEM {env} PYTHONPATH={ROOT} "
               f"{sys.executable} {script} {out}")
        self.run("new-window", "-t", "main", cmd)
        wait_for(lambda: out.exists() and out.stat().st_size > 0, "the probe in tmux", 15.0, step=0.05)
        return json.loads(out.read_text())

    def close(self) -> None:
        self.run("kill-server")
        end_pty_child(self.client_pid, self.client_fd)


@pytest.fixture
def tmux_factory(tmp_path):
    servers: list[Tmux] = []

    def make(name: str, client_term: str, conf: str = "") -> Tmux:
        servers.append(Tmux(tmp_path, name, client_term, conf))
        return servers[-1]
    yield make
    for s in servers:
        s.close()


def test_tmux_without_rgb_is_256_colours_with_the_fix(tmux_factory):
    found = tmux_factory("plain", "xterm-256color").probe()
    assert found["tmux"]["termname"] == "xterm-256color"
    assert found["tmux"]["rgb"] is False
    assert found["colour"] == COLORS_256
    assert any("terminal-features ',xterm-256color:RGB'" in f for f in found["fixes"])


def test_tmux_terminal_features_rgb_gives_24_bit(tmux_factory):
    conf = "set -as terminal-features ',xterm-256color:RGB'\n"
    found = tmux_factory("rgb", "xterm-256color", conf).probe()
    assert found["tmux"]["rgb"] is True
    assert found["colour"] == TRUECOLOR
    assert "RGB" in found["reason"] and not any("RGB" in f for f in found["fixes"])
    assert any(f.startswith("--preview sixel") for f in found["fixes"])  # no kitty outside


def test_tmux_terminal_overrides_tc_gives_24_bit(tmux_factory):
    conf = "set -as terminal-overrides ',xterm-256color:Tc'\n"
    found = tmux_factory("tc", "xterm-256color", conf).probe()
    assert found["colour"] == TRUECOLOR


@pytest.mark.skipif(not terminfo_has_rgb("xterm-kitty"),
                    reason="no xterm-kitty terminfo entry (apt-get install kitty-terminfo)")
def test_kitty_terminfo_setrgb_gives_24_bit_without_rgb_feature(tmux_factory):
    # tmux sends 24-bit colour with the client's setrgbf/setrgbb and lists no RGB feature
    # (tmux tty-term.c); measured: half-block colours exact in kitty 0.26.5 in tmux 3.3a
    found = tmux_factory("kitty-rgb", "xterm-kitty").probe()
    assert "RGB" not in found["tmux"]["features"]
    assert found["tmux"]["rgb"] is True and found["colour"] == TRUECOLOR
    assert found["reason"] == "tmux client xterm-kitty has setrgbf/setrgbb in terminfo"


def test_kitty_client_without_passthrough_says_how_to_enable_it(tmux_factory):
    server = tmux_factory("kitty", "xterm-kitty", "set -g allow-passthrough off\n")
    found = server.probe()
    assert found["kitty"] is True and found["tmux"]["passthrough"] is False
    assert found["fixes"][0].startswith("tmux set -g allow-passthrough on")
    server.run("set", "-g", "allow-passthrough", "on")
    found = server.probe()
    assert found["tmux"]["passthrough"] is True
    assert not any("allow-passthrough" in f for f in found["fixes"])


def test_variables_outside_tmux():
    assert detect_terminal({"TERM": "xterm-256color", "COLORTERM": "truecolor"}).colour == TRUECOLOR
    plain = detect_terminal({"TERM": "xterm-256color"})
    assert plain.colour == COLORS_256 and "COLORTERM" in plain.fixes[0]
    assert detect_terminal({"TERM": "xterm-kitty"}).colour == TRUECOLOR
    assert detect_terminal({"TERM": "xterm-256color", "VTE_VERSION": "7600"}).colour == TRUECOLOR
    assert detect_terminal({"TERM": "xterm-256color", "VTE_VERSION": "3405"}).colour == COLORS_256
    assert detect_terminal({"TERM": "xterm"}).colour == COLORS_16
    xterm = detect_terminal({"TERM": "xterm-256color", "XTERM_VERSION": "XTerm(379)"})
    assert xterm.colour == TRUECOLOR and xterm.colour_reason == "XTERM_VERSION=XTerm(379)"
    forced = detect_terminal({"TERM": "xterm-256color", "TEXTUAL_COLOR_SYSTEM": "truecolor"})
    assert forced.colour == TRUECOLOR and not forced.fixes


def test_apply_colour_depth_sets_colorterm_that_rich_reads():
    from rich.console import Console

    env = {"TERM": "xterm-256color"}
    info = detect_terminal({"TERM": "xterm-256color", "WEZTERM_PANE": "1"})
    assert apply_colour_depth(info, env) is True and env["COLORTERM"] == "truecolor"
    console = Console(force_terminal=True, color_system="auto", _environ=env)
    assert console.color_system == "truecolor"
    # The user's choice is kept; 256 colours stay 256.
    assert apply_colour_depth(info, {"TEXTUAL_COLOR_SYSTEM": "256"}) is False
    assert apply_colour_depth(detect_terminal({"TERM": "xterm-256color"}), {}) is False


def test_apply_colour_depth_drops_a_leaked_colorterm_when_tmux_lacks_rgb():
    from rich.console import Console

    client = TmuxInfo("3.3a", "xterm-256color", "", frozenset({"256"}), True)
    info = TerminalInfo(COLORS_256, "tmux client xterm-256color lacks RGB", client)
    env = {"TERM": "tmux-256color", "COLORTERM": "truecolor"}  # from the shell that started tmux
    assert apply_colour_depth(info, env) is True and "COLORTERM" not in env
    assert Console(force_terminal=True, color_system="auto", _environ=env).color_system == "256"
    kept = {"TERM": "tmux-256color", "COLORTERM": "truecolor", "TEXTUAL_COLOR_SYSTEM": "truecolor"}
    assert apply_colour_depth(info, kept) is False and kept["COLORTERM"] == "truecolor"
    outside = TerminalInfo(COLORS_256, "TERM=xterm-256color, no COLORTERM")
    assert apply_colour_depth(outside, {"COLORTERM": "truecolor"}) is False
