"""Scan benchmark: cold scan, warm re-scan, and our pHash against imagehash.phash.

Usage:
    python bench/scan.py [--count 2000] [--warm-count 10000] [--hash-sample 300] [--workdir DIR]

Generates photo-like images (JPEG and PNG, 800..1600 px long side) in a work
folder, scans them cold, scans again (nothing changed: stats only), then
times the perceptual hash of the same files with ours (``imaging.phash_file``:
JPEG luma-only draft decode, integer reduce, matrix DCT) and with ``imagehash.phash`` (full decode,
Lanczos to 32x32, scipy DCT), in the same run, and prints the ratio. A second
folder of ``--warm-count`` small files measures the warm re-scan at 10,000
images (a warm re-scan never reads pixels, so file size does not matter there).

Nothing is asserted: the numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxgym_coach import imaging  # noqa: E402
from fluxgym_coach.dataset import Dataset  # noqa: E402


def make_images(folder: Path, count: int, small: bool = False) -> list[Path]:
    """Write ``count`` photo-like images (3 in 4 JPEG, 1 in 4 PNG); return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    paths = []
    for i in range(count):
        if small:
            w, h = 64, 48
        else:
            long_side = int(rng.integers(800, 1601))
            w, h = (long_side, long_side * 3 // 4) if i % 2 else (long_side * 3 // 4, long_side)
        base = rng.integers(0, 256, (max(2, h // 24), max(2, w // 24), 3), dtype=np.uint8)
        im = Image.fromarray(base, "RGB").resize((w, h), Image.Resampling.BILINEAR)
        if i % 4 == 3:
            p = folder / f"img_{i:05d}.png"
            im.save(p, compress_level=1)
        else:
            p = folder / f"img_{i:05d}.jpg"
            im.save(p, quality=88)
        if i % 3 == 0:
            (folder / f"{p.stem}.txt").write_text(f"ohwx, generated image {i}")
        paths.append(p)
    return paths


def time_scan(root: Path) -> tuple[float, float, int]:
    """(cold seconds, warm seconds, images) for a fresh store on ``root``."""
    shutil.rmtree(root / ".fluxgym-coach", ignore_errors=True)
    with Dataset(root) as ds:
        t0 = time.perf_counter()
        cold = ds.scan()
        t1 = time.perf_counter()
        warm = ds.scan()
        t2 = time.perf_counter()
    assert warm.unchanged == cold.total and not warm.added and not warm.updated
    return t1 - t0, t2 - t1, cold.total


def ours(path: Path) -> str:
    return imaging.phash_file(path)


def theirs(path: Path) -> str:
    import imagehash

    with Image.open(path) as im:
        return str(imagehash.phash(im))


def time_hash(fn, paths: list[Path]) -> float:
    t0 = time.perf_counter()
    for p in paths:
        fn(p)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--warm-count", type=int, default=10000)
    ap.add_argument("--hash-sample", type=int, default=300)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="fgc-bench-scan-"))
    print(f"work folder: {work}")

    photos = work / "photos"
    t0 = time.perf_counter()
    paths = make_images(photos, args.count) if not photos.is_dir() else sorted(
        p for p in photos.iterdir() if p.suffix in (".jpg", ".png"))
    print(f"generated {len(paths)} images in {time.perf_counter() - t0:.1f} s")
    cold, warm, n = time_scan(photos)
    print(f"cold scan : {n} images in {cold:.2f} s = {n / cold:.0f} images/s")
    print(f"warm scan : {warm * 1000:.1f} ms for {n} unchanged images")

    small = work / "small"
    if not small.is_dir():
        make_images(small, args.warm_count, small=True)
    cold_s, warm_s, n_s = time_scan(small)
    print(f"warm scan : {warm_s * 1000:.1f} ms for {n_s} unchanged images (target < 1000 ms)")

    sample = paths[: args.hash_sample]
    try:
        import imagehash  # noqa: F401
    except ImportError:
        print("imagehash not installed (pip install imagehash): hash ratio skipped")
        return
    for label, subset in (("jpeg", [p for p in sample if p.suffix == ".jpg"]),
                          ("png", [p for p in sample if p.suffix == ".png"]),
                          ("all", sample)):
        if not subset:
            continue
        time_hash(ours, subset[:5]), time_hash(theirs, subset[:5])  # warm up imports and caches
        t_theirs = time_hash(theirs, subset)
        t_ours = time_hash(ours, subset)
        dist = [imaging.hamming(ours(p), theirs(p)) for p in subset[:50]]
        print(f"phash {label:4}: ours {len(subset) / t_ours:6.0f}/s, imagehash {len(subset) / t_theirs:6.0f}/s, "
              f"speed-up x{t_theirs / t_ours:.2f} (target >= 3); mean Hamming distance to imagehash "
              f"{sum(dist) / len(dist):.2f} bits")


if __name__ == "__main__":
    main()
