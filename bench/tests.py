"""Test-suite wall time: the whole suite with N workers against 2 workers, in one run.

Usage:
    python bench/tests.py [--workers 3] [--baseline 2]

Runs ``python -m pytest -q -p no:cacheprovider -n BASELINE`` and then ``-n WORKERS``
(the machine should be otherwise idle; each run takes minutes), and prints both
wall times, the tests each ran and the ratio. ``-n auto`` (the README's command)
gives one worker more than the usable CPUs: see tests/conftest.py.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(workers: int) -> tuple[float, str]:
    """Wall seconds of one suite run with ``workers`` xdist workers, and its summary line."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers)],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    lines = [line for line in proc.stdout.splitlines() if re.search(r"\d+ passed", line)]
    return wall, (lines[-1] if lines else f"exit {proc.returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=2)
    args = parser.parse_args()
    base, base_summary = run(args.baseline)
    print(f"-n {args.baseline}: {base:.1f} s  ({base_summary.strip('= ')})")
    wall, summary = run(args.workers)
    print(f"-n {args.workers}: {wall:.1f} s  ({summary.strip('= ')})")
    print(f"ratio: {wall / base:.2f} of the {args.baseline}-worker time")


if __name__ == "__main__":
    main()
