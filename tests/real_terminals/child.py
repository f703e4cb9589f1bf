"""Ending a program the tests started in a pseudo-terminal (``pty.fork``)."""

from __future__ import annotations

import os


def end_pty_child(pid: int, fd: int) -> None:
    """Kill the child ``pid`` (SIGKILL; one already gone is fine), reap it so no zombie
    is left, and close the pty's master ``fd``."""
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    os.close(fd)
