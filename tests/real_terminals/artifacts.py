"""Where the real-terminal and browser tests keep the screenshots they checked.

Each is written to ``$FLUXGYM_COACH_ARTIFACTS`` (default ``build/test-artifacts``
under the repository root; ignored by git), so a CI run can keep them.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def artifacts_dir() -> Path:
    """The folder for screenshots (created)."""
    folder = Path(os.environ.get("FLUXGYM_COACH_ARTIFACTS", ROOT / "build" / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_artifact(name: str, data: bytes) -> Path:
    """Write ``data`` as ``name`` in :func:`artifacts_dir`; return the path."""
    path = artifacts_dir() / name
    path.write_bytes(data)
    return path
