"""Bucket simulator throughput, zero-crop planning, and face detection time.

Usage:
    python bench/buckets.py [--sizes 10000] [--faces 20]

Prints, in one run:
- kohya simulator: sizes/s placing ``--sizes`` random sizes (1x1..8000x8000,
  aspect up to 16:1) for each of the 24 golden-table setting combinations,
  against a loop over kohya's own algorithm with numpy's argmin per image (the
  way ``BucketManager.select_bucket`` runs);
- zero-crop planning (``framing.zero_crop_bucket``) for the same sizes;
- face detection ms per image on a 1 MP photo (the repository's astronaut on
  a 1216x832 canvas), on one OpenCV thread, wall and CPU time (CPU time is
  what the shared 2-core machines measure reliably);
- the zero-crop distribution at 1024 for sources of at least 1 MP up to 3:1:
  min / mean area share and max / mean cut.

Nothing is asserted: the numbers go to docs/performance.md and docs/buckets.md.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxgym_coach.audit.buckets import BucketSettings, kohya_bucket_list, placer  # noqa: E402
from fluxgym_coach.export.framing import zero_crop_bucket  # noqa: E402


def random_sizes(n: int, seed: int = 5) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        long = int(math.exp(rng.uniform(0, math.log(8000))))
        short = max(1, int(long / math.exp(rng.uniform(0, math.log(16)))))
        out.append((long, short) if rng.random() < 0.5 else (short, long))
    return out


def numpy_argmin_loop(sizes, resolution: int) -> None:
    """The per-image numpy argmin kohya does (baseline in the same run)."""
    resos = list(kohya_bucket_list(resolution, 256, 1024, 64))
    ars = np.array([w / h for w, h in resos])
    for w, h in sizes:
        reso = resos[int(np.abs(ars - w / h).argmin())]
        s = reso[1] / h if w / h > reso[0] / reso[1] else reso[0] / w
        (int(w * s + 0.5), int(h * s + 0.5))


def bench_sim(sizes) -> None:
    combos = [BucketSettings("kohya", r, b, nu, 256, mx, 64) for r in (512, 768, 1024) for b in (True, False)
              for nu in (False, True) for mx in (1024, 2048)]
    t = time.perf_counter()
    for s in combos:
        fn = placer(s)
        for w, h in sizes:
            try:
                fn(w, h)
            except ValueError:
                pass
    ours = len(sizes) * len(combos) / (time.perf_counter() - t)
    t = time.perf_counter()
    numpy_argmin_loop(sizes, 1024)
    base = len(sizes) / (time.perf_counter() - t)
    print(f"kohya simulator: {ours:,.0f} sizes/s over {len(combos)} setting combinations "
          f"({len(sizes) / ours * 1000:.0f} ms per 10,000-image plan); numpy argmin loop "
          f"{base:,.0f} sizes/s; ratio {ours / base:.2f}x")
    t = time.perf_counter()
    for w, h in sizes:
        zero_crop_bucket(w, h, 1024)
    dt = time.perf_counter() - t
    print(f"zero-crop planning at 1024: {len(sizes) / dt:,.0f} sizes/s ({dt * 1000:.0f} ms for {len(sizes):,})")


def bench_faces(n: int) -> None:
    from PIL import Image

    from fluxgym_coach.audit import faces
    if not faces.detector_available():
        print("face detection: not measured (needs opencv-python-headless<5)")
        return
    import cv2
    cv2.setNumThreads(1)
    canvas = Image.new("RGB", (1216, 832), (120, 120, 120))
    with Image.open(Path(__file__).resolve().parents[1] / "examples/dataset/astronaut.png") as im:
        canvas.paste(im.convert("RGB"), (352, 160))
    faces.detect_faces(canvas)  # load the cascades
    times, cpu = [], []
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        found = faces.detect_faces(canvas)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    with Image.open(Path(__file__).resolve().parents[1] / "examples/dataset/coffee.png") as im:
        no_face = im.convert("RGB").resize((1216, 832))
    c = time.process_time()
    for _ in range(n):
        faces.detect_faces(no_face)
    none_cpu = (time.process_time() - c) / n
    print(f"face detection, 1216x832 photo without a face (coffee.png): CPU {none_cpu * 1000:.1f} ms")
    print(f"face detection, 1216x832 (1.0 MP), one thread: wall median {statistics.median(times) * 1000:.1f} ms "
          f"(min {min(times) * 1000:.1f}), CPU median {statistics.median(cpu) * 1000:.1f} ms "
          f"(min {min(cpu) * 1000:.1f}) over {n} runs; {len(found)} face(s) found")


def distribution() -> None:
    rng = random.Random(3)
    shares, cuts = [], []
    while len(shares) < 5000:
        ar = rng.uniform(1.0, 3.0)
        area = rng.uniform(1024 * 1024, 6000 * 4000)
        w, h = round((area * ar) ** 0.5), round((area / ar) ** 0.5)
        b = zero_crop_bucket(w, h, 1024)
        a = b[0] / b[1]
        shares.append(b[0] * b[1] / 1024 ** 2)
        cuts.append(1 - min(a / ar, ar / a))
    print(f"zero-crop at 1024, 5,000 sources >= 1 MP, aspect 1:1..3:1: area share min {min(shares):.1%}, "
          f"mean {statistics.mean(shares):.1%}; cut max {max(cuts):.2%}, mean {statistics.mean(cuts):.2%}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, default=10000)
    ap.add_argument("--faces", type=int, default=20)
    args = ap.parse_args()
    bench_sim(random_sizes(args.sizes))
    bench_faces(args.faces)
    distribution()


if __name__ == "__main__":
    main()
