"""Trust of folder plugins: no code from a folder runs until its user says so.

A dataset can ship ``.fluxgym-coach/plugins.toml`` naming a plugin folder
(inside the dataset or anywhere). Importing that folder runs its code, so a
folder plugin is imported only when the user has trusted it *with its current
content*, as direnv does for ``.envrc`` and VS Code for a workspace:

* the record lives outside every dataset, in ``trusted-plugins.json`` of the
  user config folder (:func:`config_dir`: ``platformdirs.user_config_dir("fluxgym-coach")``,
  or ``$FLUXGYM_COACH_CONFIG_DIR`` when set);
* it is keyed by the folder's resolved path and holds a SHA-256 of the
  folder's files (:func:`folder_digest`); any change of a file (added,
  removed, edited, renamed) makes the folder untrusted again;
* ``fluxgym-coach plugins trust PATH`` (:func:`trust_folder`) records it, and
  ``fluxgym-coach plugins add DATASET FOLDER`` does too, since the user names the
  folder; ``plugins untrust PATH`` forgets it.

Built-in plugins and plugins installed with pip (entry points) are trusted:
installing a package already ran its code's author's setup.

Limit: ``__pycache__`` folders are left out of the hash (Python rewrites them
on import); Python uses a ``.pyc`` there only when it matches the source's
recorded size and time, or a hash-based one, which a hostile archive can fake.
Delete a shipped ``__pycache__`` before trusting a folder you did not write.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import stat
import time
from pathlib import Path
from typing import Any

import platformdirs

CONFIG_ENV = "FLUXGYM_COACH_CONFIG_DIR"
TRUST_FILENAME = "trusted-plugins.json"
_SKIP_DIRS = {"__pycache__"}


def config_dir() -> Path:
    """The user's config folder: ``$FLUXGYM_COACH_CONFIG_DIR``, else
    ``platformdirs.user_config_dir("fluxgym-coach")`` (``~/.config/fluxgym-coach`` on Linux)."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else Path(platformdirs.user_config_dir("fluxgym-coach"))


def trust_path() -> Path:
    """``<config_dir>/trusted-plugins.json``."""
    return config_dir() / TRUST_FILENAME


def _files(folder: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every file under ``folder``, symlinked folders
    followed once each, ``__pycache__`` left out; sorted by relative path."""
    found: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link back up the tree
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in filenames:
            path = Path(dirpath) / name
            found.append((path.relative_to(folder).as_posix(), path))
    return sorted(found)


def folder_digest(folder: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a plugin folder: each file's relative path, and its content
    (a file that cannot be read counts by its error, a FIFO or device as "special",
    so they still change the hash).
    ``__pycache__`` folders are skipped. Raises FileNotFoundError if ``folder`` is
    not a folder."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    h = hashlib.sha256()
    for rel, path in _files(root):
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device: never read
                h.update(b"special")
            else:
                with open(path, "rb") as fh:
                    h.update(hashlib.file_digest(fh, "sha256").digest())
        except OSError as exc:
            h.update(f"unreadable:{exc.errno}".encode())
        h.update(b"\0")
    return h.hexdigest()


def _read() -> dict[str, Any]:
    path = trust_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # unreadable record: nothing is trusted (the next trust rewrites it)
    return data.get("folders", {}) if isinstance(data, dict) else {}


def _write(folders: dict[str, Any]) -> None:
    from ..fsutil import atomic_write_text
    path = trust_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"version": 1, "folders": folders}, indent=2, sort_keys=True) + "\n")


def _key(folder: str | os.PathLike[str]) -> str:
    return str(Path(folder).expanduser().resolve())


def is_trusted(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` (resolved) was trusted and its files still hash the same."""
    record = _read().get(_key(folder))
    if not isinstance(record, dict):
        return False
    try:
        return record.get("sha256") == folder_digest(_key(folder))
    except FileNotFoundError:
        return False


def trust_folder(folder: str | os.PathLike[str]) -> str:
    """Record ``folder`` as trusted with its current content; returns the digest.
    Raises FileNotFoundError when it is not a folder."""
    key = _key(folder)
    digest = folder_digest(key)
    folders = _read()
    folders[key] = {"sha256": digest, "trusted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write(folders)
    return digest


def untrust_folder(folder: str | os.PathLike[str]) -> bool:
    """Forget the trust of ``folder``; returns whether it was recorded."""
    key = _key(folder)
    folders = _read()
    if key not in folders:
        return False
    del folders[key]
    _write(folders)
    return True


def trust_command(folder: str | os.PathLike[str]) -> str:
    """The shell command that trusts ``folder``: ``fluxgym-coach plugins trust '<resolved path>'``."""
    return f"fluxgym-coach plugins trust {shlex.quote(_key(folder))}"


__all__ = ["CONFIG_ENV", "TRUST_FILENAME", "config_dir", "folder_digest", "is_trusted", "trust_command",
           "trust_folder", "trust_path", "untrust_folder"]
