"""Export benchmark: our zero-crop export against Fluxgym's resize loop, same run.

Usage:
    python bench/export.py [--count 1000] [--resolution 1024] [--workdir DIR]

Generates photo-like images (5 in 8 JPEG 1200..2400 px long side, 1 in 8
PNG, and 1 in 4 JPEG already at a zero-crop bucket size, as an earlier export
or an enhancer result would be), scans them (not timed), then times:

- Fluxgym's loop (``app.py::resize_image``, re-implemented from its behaviour:
  one thread, each image opened, resized with LANCZOS so its short side equals
  the resolution, saved with Pillow's defaults);
- ``export_dataset`` with the zero-crop framing on all cores, first run
  (faces detected and stored) and a re-run (``force``; faces from the store);
- the same with ``subject=False`` (no face detection or saliency), the work
  closest to Fluxgym's.

Prints seconds, images/s and each ratio against Fluxgym's loop. Nothing is
asserted: the numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxgym_coach.dataset import Dataset  # noqa: E402
from fluxgym_coach.export.fluxgym import export_dataset  # noqa: E402


def make_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        if i % 4 == 1:
            w, h = (1248, 832) if i % 8 == 1 else (832, 1248)
        else:
            long_side = int(rng.integers(1200, 2401))
            w, h = (long_side, long_side * 2 // 3) if i % 2 else (long_side * 3 // 4, long_side)
        base = rng.integers(0, 256, (max(2, h // 32), max(2, w // 32), 3), dtype=np.uint8)
        im = Image.fromarray(base, "RGB").resize((w, h), Image.Resampling.BILINEAR)
        if i % 8 == 7:
            im.save(folder / f"img_{i:05d}.png", compress_level=1)
        else:
            im.save(folder / f"img_{i:05d}.jpg", quality=90)


def fluxgym_loop(src: Path, dst: Path, size: int) -> None:
    """Fluxgym's resize: short side = size (LANCZOS, upscales too), saved by extension."""
    dst.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.iterdir()):
        if p.suffix not in (".jpg", ".png"):
            continue
        with Image.open(p) as img:
            w, h = img.size
            if w < h:
                nw, nh = size, int(size / w * h)
            else:
                nh, nw = size, int(size / h * w)
            img.resize((nw, nh), Image.Resampling.LANCZOS).save(dst / p.name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-export-"))
    src = work / "src"
    if not src.is_dir():
        make_images(src, args.count)
    with Dataset(src) as ds:
        ds.scan()
    print(f"{args.count} images, resolution {args.resolution}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    t = time.perf_counter()
    fluxgym_loop(src, work / "fluxgym", args.resolution)
    base = time.perf_counter() - t
    print(f"Fluxgym's resize loop: {base:.2f} s ({args.count / base:.1f} img/s)")
    runs = [("export, faces detected (first run)", True, False),
            ("export re-run, faces from the store", True, True),
            ("export, subject=False", False, True)]
    for label, subject, force in runs:
        with Dataset(src) as ds:
            t = time.perf_counter()
            report = export_dataset(ds, work / "out", "bench", "ohwx", resolution=args.resolution,
                                    force=force, subject=subject)
            dt = time.perf_counter() - t
        copied = sum(1 for f in report.files if f.framing == "exact" and f.width == f.source_size[0])
        print(f"{label}: {dt:.2f} s ({args.count / dt:.1f} img/s), {copied} copied as they were; "
              f"{base / dt:.2f}x Fluxgym's loop")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
