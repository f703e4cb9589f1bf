"""Tell a second review of the same dataset that another one is open.

Two TUIs on one dataset each keep their own view of the captions and the
decisions; the saves are safe (a changed sidecar is detected before it is
overwritten, see :mod:`fluxgym_coach.captions.sync`), but the user should know.
On start the app writes ``<dataset>/.fluxgym-coach/tui.lock`` (JSON: ``pid``,
``host``, ``started``, Unix time) and removes it on exit. A lock left by a
process that is no longer running on this host (a crash, a dropped SSH
session with the process killed) is ignored and replaced.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "tui.lock"


@dataclass(frozen=True, slots=True)
class OtherSession:
    """The review that holds the lock: its ``pid``, ``host`` and start time (s)."""

    pid: int
    host: str
    started: float

    def describe(self) -> str:
        """``"pid 1234 on gpu-box, since 14:02"``."""
        since = time.strftime("%H:%M", time.localtime(self.started))
        return f"pid {self.pid} on {self.host}, since {since}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


class SessionLock:
    """The lock file of one dataset's store folder (``store_dir``)."""

    def __init__(self, store_dir: str | Path) -> None:
        self.path = Path(store_dir) / LOCK_NAME
        self.held = False

    def other(self) -> OtherSession | None:
        """The live session holding the lock, if any (not this process)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            other = OtherSession(int(data["pid"]), str(data["host"]), float(data["started"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if other.pid == os.getpid() and other.host == socket.gethostname():
            return None
        if other.host == socket.gethostname() and not _alive(other.pid):
            return None  # stale: that process is gone
        return other

    def acquire(self) -> OtherSession | None:
        """Take the lock; returns the other live session when there is one (the
        lock is then left to it, and this session only warns)."""
        other = self.other()
        if other is not None:
            return other
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{LOCK_NAME}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                       "started": time.time()}), encoding="utf-8")
            os.replace(tmp, self.path)
            self.held = True
        except OSError:
            pass  # a read-only dataset: nothing to warn the next session with
        return None

    def release(self) -> None:
        """Remove the lock if this session holds it."""
        if not self.held:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if int(data.get("pid", -1)) == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass
        self.held = False
