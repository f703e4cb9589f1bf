"""The app lays itself out for the terminal's real size, not a stale ``$COLUMNS``/``$LINES``.

A Textual app runs in a real pseudo-terminal set to 110x34 (``TIOCSWINSZ``), with
``COLUMNS=200 LINES=60`` in its environment, as a shell's ``export``, tmux's global
environment or a test runner (tests/conftest.py) leave them. Textual's driver reads
the size with ``shutil.get_terminal_size``, which prefers the variables; the control
run shows that, the fixed run that :func:`use_real_window_size` makes it read 110x34
at start-up and 90x30 after a resize (``SIGWINCH``; without the fix a resize would
read the variables again).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from fluxgym_coach.tui.terminal import use_real_window_size

ROOT = Path(__file__).resolve().parents[1]
APP = """
import fcntl, json, sys, termios
fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes our controlling terminal: SIGWINCH
from fluxgym_coach.tui.terminal import use_real_window_size
from textual.app import App

out, fix = sys.argv[1], sys.argv[2] == "fix"
dropped = use_real_window_size() if fix else []
sizes = []

class SizeApp(App):
    def on_resize(self, event):
        sizes.append([event.size.width, event.size.height])
        if not fix:  # the control: the start-up size is enough
            self.exit()
        elif len(sizes) == 1:  # the start-up size; now the terminal is made 90x30
            print("resize-me", file=open(out + ".ready", "w"), flush=True)
        elif sizes[-1] == [90, 30]:
            self.exit()

SizeApp().run()
json.dump({"sizes": sizes, "dropped": dropped}, open(out, "w"))
"""


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _run_in_pty(tmp_path: Path, fix: bool) -> dict:
    """Run :data:`APP` in a 110x34 pseudo-terminal, resize it to 90x30 once the app has
    its first size; return what it saw. Deadline 60 s."""
    master, slave = pty.openpty()
    _set_size(slave, 110, 34)
    out = tmp_path / f"sizes-{fix}.json"
    env = dict(os.environ, COLUMNS="200", LINES="60", TERM="xterm-256color",
               PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", APP, str(out), "fix" if fix else "control"],
                            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT,
                            start_new_session=True)
    os.close(slave)
    resized, end = False, time.monotonic() + 60
    try:
        while proc.poll() is None and time.monotonic() < end:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    os.read(master, 65536)  # drain the app's output so it never blocks
                except OSError:
                    break
            if not resized and out.with_suffix(".json.ready").exists():
                _set_size(master, 90, 30)  # the kernel sends SIGWINCH to the app
                resized = True
        assert proc.wait(timeout=max(1.0, end - time.monotonic())) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
    return json.loads(out.read_text())


def test_stale_columns_override_the_terminal_without_the_fix(tmp_path):
    seen = _run_in_pty(tmp_path, fix=False)
    assert seen["sizes"][0] == [200, 60]  # the cause of the too-wide layout


def test_the_app_uses_the_terminal_size_at_start_and_after_a_resize(tmp_path):
    seen = _run_in_pty(tmp_path, fix=True)
    assert seen["dropped"] == ["COLUMNS", "LINES"]
    assert seen["sizes"][0] == [110, 34]
    assert seen["sizes"][-1] == [90, 30]


def test_nothing_is_dropped_without_a_terminal(tmp_path):
    env = {"COLUMNS": "200", "LINES": "60"}
    with open(tmp_path / "not-a-tty", "w") as f:
        assert use_real_window_size(env, f.fileno()) == []
    assert env == {"COLUMNS": "200", "LINES": "60"}
    master, slave = pty.openpty()
    try:
        assert use_real_window_size(env, slave) == ["COLUMNS", "LINES"] and env == {}
    finally:
        os.close(master)
        os.close(slave)
