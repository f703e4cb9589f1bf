"""The behaviour lock: what scan and audit say about a fixed set of images.

:func:`build_lock_dataset` copies ``examples/dataset``, ``tests/data/real-images``
and the generated ``tests/data/lock-images`` (every format, mode and defect the
audit knows) into one folder; :func:`capture` scans and audits it and returns
a JSON-ready dict: per image the scan's record (digest, size, format, mode,
orientation, frames, pHash, grayscale flag, sharpness, error), the audit's
extra measures, and the findings (code, severity, value, threshold); then the
duplicate groups (kind, members best first, keeper, distance).

``tests/data/behaviour_lock.json`` holds the capture made on the code before
the speed-ups of issue 15; ``tests/test_behaviour_lock.py`` compares a fresh
capture with it. Caption rules are left out (they belong to the caption
module, which changes independently), and so are the trainer-profile findings
(``trainer_*``, issue 12: :mod:`fluxgym_coach.audit.trainer_rules`, tested there). Re-capture (only when a change of
behaviour is intended and reviewed)::

    PYTHONPATH=. python tests/behaviour_lock.py > tests/data/behaviour_lock.json
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SOURCES = (REPO / "examples" / "dataset", REPO / "tests" / "data" / "real-images",
           REPO / "tests" / "data" / "lock-images")
RECORD_FIELDS = ("digest", "width", "height", "format", "mode", "orientation", "n_frames",
                 "phash", "is_grayscale", "sharpness", "error")


def build_lock_dataset(dst: Path) -> Path:
    """Copy the lock's images and captions flat into ``dst`` (created); returns ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for src in SOURCES:
        for p in sorted(src.iterdir()):
            if p.is_file() and p.suffix.lower() != ".md":
                shutil.copy(p, dst / p.name)
                (dst / p.name).chmod(0o644)
    return dst


def _round(v: Any) -> Any:
    return round(v, 6) if isinstance(v, float) else v


def capture(root: Path) -> dict[str, Any]:
    """Scan and audit ``root`` (fresh store) and return the lock's dict (see module doc)."""
    from fluxgym_coach.audit.rules import audit_dataset, stored_measures
    from fluxgym_coach.dataset import Dataset

    shutil.rmtree(root / ".fluxgym-coach", ignore_errors=True)
    with Dataset(root) as ds:
        report = audit_dataset(ds, caption_rules=False, trigger="")
        records = {r.relpath: r for r in ds.images()}
        extras = stored_measures(ds.store)
    images = {}
    for rel, a in report.images.items():
        rec = records[rel]
        extra = extras.get(rec.digest) if rec.digest else None
        images[rel] = {
            "record": {f: _round(getattr(rec, f)) for f in RECORD_FIELDS},
            "extra": None if extra is None else {
                k: _round(getattr(extra, k)) for k in extra.__slots__},
            "findings": sorted([f.code, f.severity, _round(f.value) if not isinstance(f.value, list)
                                else f.value, f.threshold if not isinstance(f.threshold, float)
                                else _round(f.threshold)] for f in a.findings
                               if not f.code.startswith("trainer_")),
        }
    groups = [{"kind": g.kind, "members": g.members, "keeper": g.keeper,
               "max_distance": g.max_distance} for g in report.groups]
    return {"images": images, "groups": groups}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="fgc-lock-") as tmp:
        data = capture(build_lock_dataset(Path(tmp) / "lock"))
    json.dump(data, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
