"""Waiting on, and ending, programs the tests started (in a pseudo-terminal, ``pty.fork``,
or in a terminal emulator)."""

from __future__ import annotations

import os
import time


def wait_for(check, what: str, deadline: float = 60.0, step: float = 0.2):
    """Poll ``check()`` every ``step`` s until it returns something true (returned) or
    ``deadline`` seconds pass (TimeoutError naming ``what``)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(f"timed out after {deadline:.0f} s waiting for {what}")


def end_pty_child(pid: int, fd: int) -> None:
    """Kill the child ``pid`` (SIGKILL; one already gone is fine), reap it so no zombie
    is left, and close the pty's master ``fd``."""
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    os.close(fd)
