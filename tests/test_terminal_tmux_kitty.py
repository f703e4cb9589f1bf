"""kitty graphics with Unicode placeholders through a real tmux: what reaches the outer terminal.

kitty >= 0.28 (the first with placeholders) is not in Debian 12, so this test stands in
for the outer terminal: a tmux client runs in a pseudo-terminal as ``TERM=xterm-kitty``
(110x34 cells), and the review app (``tests/real_terminals/harness.py``, ``auto``) runs
in a pane with ``allow-passthrough on``. Everything tmux sends to that client is read
and decoded as a terminal would: the kitty commands that came through passthrough
(unwrapped by tmux), and the placeholder cells ``U+10EEEE`` with their row/column
diacritics and the 24-bit foreground colour that carries the image id (kitty graphics
protocol, "Unicode placeholders"). Checks that the image is transmitted once, that a
virtual placement of the preview's size exists for it, and that the cells tmux draws
name that image and cover every row and column of it.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from fluxgym_coach.tui.terminal import terminfo_has_rgb
from tests.real_terminals.child import end_pty_child, wait_for

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None,
                       reason="tmux is not installed (apt-get install tmux)"),
    pytest.mark.skipif(not terminfo_has_rgb("xterm-kitty"),
                       reason="no xterm-kitty terminfo entry (apt-get install kitty-terminfo)"),
]
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "dataset" / "astronaut.png"
CONF = """set -g status off
set -g allow-passthrough on
set -g default-terminal tmux-256color
set -sg escape-time 10
"""
_TOKEN = re.compile(r"\x1b\[([0-9;:?<=>]*)([@-~])|\x1b_G([^\x1b]*)\x1b\\|\x1b[P\]^][^\x1b]*\x1b\\"
                    r"|\x1b.|(\U0010EEEE)|(\x08)", re.DOTALL)


def _sgr_fg(params: str, fg: tuple | None) -> tuple | None:
    """The foreground after an SGR with ``params`` (24-bit only; others reset it to None)."""
    if params in ("", "0"):
        return None
    m = re.fullmatch(r"38[;:]2[;:]:?(\d+)[;:](\d+)[;:](\d+)", params)
    if m:
        return tuple(int(x) for x in m.groups())
    for part in re.split(r";(?=\d)", params):
        if part in ("0", "39") or part.startswith("38"):
            m = re.fullmatch(r"38[;:]2[;:]:?(\d+)[;:](\d+)[;:](\d+)", part)
            fg = tuple(int(x) for x in m.groups()) if m else None
    return fg


def decode(stream: str) -> tuple[list[dict], list[tuple]]:
    """The kitty commands (key=value dicts) and the placeholder cells
    ``(fg, row, col)`` in what tmux sent to its client (a backspace takes the last
    cell back: tmux writes a cell again, with one more diacritic, after a BS)."""
    from textual_image.renderable.tgp import _NUMBER_TO_DIACRITIC

    index = {d: n for n, d in enumerate(_NUMBER_TO_DIACRITIC)}
    commands, cells, fg = [], [], None
    for m in _TOKEN.finditer(stream):
        if m.group(2) == "m" and not (m.group(1) or "").startswith(("?", ">", "<", "=")):
            fg = _sgr_fg(m.group(1) or "", fg)
        elif m.group(3) is not None:
            keys = m.group(3).split(";", 1)[0]
            commands.append(dict(kv.split("=", 1) for kv in keys.split(",") if "=" in kv))
        elif m.group(4):
            marks, at = [], m.end()
            while at < len(stream) and ord(stream[at]) in index and len(marks) < 3:
                marks.append(index[ord(stream[at])])
                at += 1
            cells.append((fg, marks[0] if marks else None, marks[1] if len(marks) > 1 else None))
        elif m.group(5) and cells:  # tmux adds each combining mark by backing up and
            cells.pop()  # writing the cell again: the last write counts
    return commands, cells


class Client:
    """A tmux client in a 110x34 pseudo-terminal whose output is collected."""

    def __init__(self, base: list[str], term: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["TERM"] = term
            os.environ.pop("TMUX", None)
            os.execvp(base[0], [*base, "attach", "-t", "main"])
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 34, 110, 990, 612))
        self.data = bytearray()
        self._stop = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop:
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                self.data += chunk

    def close(self) -> None:
        self._stop = True
        self._reader.join(timeout=5)
        end_pty_child(self.pid, self.fd)


def test_kitty_placeholders_reach_the_outer_terminal_through_tmux(one_image, tmp_path):
    conf = tmp_path / "tmux.conf"
    conf.write_text(CONF)
    base = ["tmux", "-L", f"fgc-kitty-{os.getpid()}", "-f", str(conf)]
    def run(*args: str) -> str:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=10,
                              check=False).stdout

    subprocess.run([*base, "new-session", "-d", "-s", "main", "-x", "110", "-y", "34", "cat"],
                   check=True, timeout=10)
    client = Client(base, "xterm-kitty")
    report = tmp_path / "report.json"
    try:
        wait_for(lambda: run("list-clients", "-F", "#{client_termname}").strip(), "the client", step=0.05)
        env = " ".join(f"-u {v}" for v in ("COLORTERM", "COLUMNS", "LINES", "NO_COLOR",
                                            "TEXTUAL_COLOR_SYSTEM", "KITTY_WINDOW_ID"))
        cmd = (f"env {env} PYTHONPATH={ROOT} FLUXGYM_COACH_CACHE_DIR={tmp_path / 'cache'} "
               f"{sys.executable} -m tests.real_terminals.harness {one_image} {report}")
        run("new-window", "-t", "main", cmd)
        wait_for(report.exists, "the app's report", step=0.05)
        found = json.loads(report.read_text())
        assert found["renderer"] == "kitty-tmux", found
        assert found["colour_reason"] == "tmux client xterm-kitty has setrgbf/setrgbb in terminfo"
        w, h = found["region"][2:]

        def decoded():
            commands, cells = decode(client.data.decode("utf-8", "replace"))
            places = [c for c in commands if c.get("a") == "p" and c.get("U") == "1"]
            if not places:
                return None
            image = int(places[-1]["i"])
            colour = ((image >> 16) & 255, (image >> 8) & 255, image & 255)
            mine = {(r, c) for fg, r, c in cells if fg == colour}
            return (commands, places[-1], image, mine) if len(mine) >= w * h else None
        commands, place, image, mine = wait_for(decoded, "the placeholder cells at the client", step=0.05)
    finally:
        run("kill-server")
        client.close()
    sent = [c for c in commands if c.get("i") == str(image) and c.get("f") == "100"]
    assert sent and sent[-1].get("m") == "0", "the image's PNG reached the terminal, all chunks"
    assert (int(place["c"]), int(place["r"])) == (w, h)  # placed at the preview's cell size
    assert mine == {(r, c) for r in range(h) for c in range(w)}  # every cell of the image
