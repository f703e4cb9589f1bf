"""Scan benchmark: where the time goes, the cold scan against its decode limit and peers, scaling.

Usage:
    python bench/scan.py [--counts 1000,10000] [--profile-sample 200] [--workdir DIR]

Generates photo-like 1024x768 JPEGs (quality 88, distinct content) and prints,
in one run:

1. **profile** (one core, ``--profile-sample`` files): milliseconds per image
   and share for each stage of the scan's unit of work (read, xxh3 digest,
   header, decode, working copy, pHash, grayscale, sharpness, audit extras),
   plus the store write per image, and the same decode with the old square
   draft box;
2. **decode limit**: read + draft decode alone, on every usable core
   (processes), the most any scan that decodes every image can reach;
3. **peers** on the same files: ``imagehash.phash`` alone (one core) and the
   previous path (threads, square draft, numpy measures, the audit reading
   and decoding every file again), store writes left out of the latter;
4. **cold scan** (fresh store) with worker processes and with threads, at
   each count, with the growth factor (time per image at the largest count
   over the smallest; 1.0 = linear);
5. **other formats**: decode cost of the same picture as PNG, WebP and TIFF.

Nothing is asserted: the numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxgym_coach import imaging
from fluxgym_coach.audit import measures  # noqa: E402
from fluxgym_coach.dataset import Dataset, _usable_cpus  # noqa: E402
from fluxgym_coach.store import ImageRecord, Store  # noqa: E402


def photo(seed: int, size: tuple[int, int] = (1024, 768)) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 256, (h // 24, w // 24, 3), dtype=np.uint8)
    return Image.fromarray(base, "RGB").resize((w, h), Image.Resampling.BILINEAR)


def make_jpegs(folder: Path, count: int) -> list[Path]:
    """``count`` distinct 1024x768 JPEGs in ``folder`` (kept between runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"img_{i:05d}.jpg" for i in range(count)]
    for i, p in enumerate(paths):
        if not p.exists() or p.stat().st_size == 0:  # an interrupted run leaves empty files
            photo(i).save(p, quality=88)
    return paths


def _ms(seconds: float, n: int) -> float:
    return seconds * 1000 / n


def profile(paths: list[Path]) -> None:
    """Stage by stage, one core."""
    t = dict.fromkeys(["read", "digest", "header", "decode", "work copy", "pHash", "grayscale",
                       "sharpness", "extras", "store write"], 0.0)
    old_decode = 0.0
    recs = []
    for p in paths:
        t0 = time.perf_counter()
        data = imaging.read_regular_file(p)
        t1 = time.perf_counter()
        digest = imaging.digest_bytes(data)
        t2 = time.perf_counter()
        im = imaging.open_image(data, p)
        imaging.probe(im)
        depth = measures.bit_depth(im, data)
        t3 = time.perf_counter()
        imaging.load_small(im)
        t4 = time.perf_counter()
        work = imaging.work_copy_of_loaded(im)
        gray = work.convert("L")
        t5 = time.perf_counter()
        imaging.phash_gray(gray)
        t6 = time.perf_counter()
        imaging.is_grayscale_rgb(imaging._shrink(work, 96))
        t7 = time.perf_counter()
        lap = imaging.laplacian(gray)
        imaging.laplacian_variance(gray, lap)
        t8 = time.perf_counter()
        measures.extra_from_decoded(im, imaging.WorkCopy(work, gray, lap), depth)
        t9 = time.perf_counter()
        old = imaging.open_image(data, p)
        old.draft("RGB", (imaging.WORK_SIZE, imaging.WORK_SIZE))
        old.load()
        t10 = time.perf_counter()
        old_decode += t10 - t9
        for k, a, b in (("read", t0, t1), ("digest", t1, t2), ("header", t2, t3), ("decode", t3, t4),
                        ("work copy", t4, t5), ("pHash", t5, t6), ("grayscale", t6, t7),
                        ("sharpness", t7, t8), ("extras", t8, t9)):
            t[k] += b - a
        recs.append(ImageRecord(relpath=p.name, size=len(data), mtime_ns=0, digest=digest))
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.sqlite") as st:
        st.ensure_schema("audit")
        extra = measures.ExtraMeasures(bright_p5=0.1)
        t0 = time.perf_counter()
        for i in range(0, len(recs), 256):
            batch = recs[i:i + 256]
            st.write_batch(batch, [(measures.measures_sql(),
                                    measures.measure_rows((r.digest, extra) for r in batch))])
        t["store write"] = time.perf_counter() - t0
    n = len(paths)
    total = sum(t.values())
    print(f"profile, one core, {n} JPEG 1024x768 (ms per image, share):")
    for k, v in t.items():
        print(f"  {k:12} {_ms(v, n):6.2f} ms  {v / total:5.1%}")
    print(f"  {'total':12} {_ms(total, n):6.2f} ms  = {n / total:.0f} img/s per core")
    print(f"  decode with the old square draft box (256, 256): {_ms(old_decode, n):.2f} ms "
          f"(proportional box: {_ms(t['decode'], n):.2f} ms)")


def previous_one(path: str) -> str:
    """The scan + audit work of one image as it was before issue 15: read, digest,
    header, square draft box, numpy measures, then the audit reading and decoding the
    file a second time for its extra measures."""
    data = open(path, "rb").read()
    imaging.digest_bytes(data)
    im = imaging.open_image(data, path)
    imaging.probe(im)
    im.draft("RGB", (imaging.WORK_SIZE, imaging.WORK_SIZE))
    im.load()
    work = imaging.work_copy_of_loaded(im)
    gray = work.convert("L")
    arr = np.asarray(imaging._shrink(work, 96), dtype=np.int16)
    (arr.max(axis=2) - arr.min(axis=2) > 12).mean()
    a = np.asarray(gray, dtype=np.float64)
    (a[1:-1, :-2] + a[1:-1, 2:] + a[:-2, 1:-1] + a[2:, 1:-1] - 4.0 * a[1:-1, 1:-1]).var()
    phash = imaging.phash_gray(gray)
    data2 = open(path, "rb").read()  # measure_extra: the second read and decode
    im2 = imaging.open_image(data2, path)
    im2.draft("RGB", (imaging.WORK_SIZE, imaging.WORK_SIZE))
    im2.load()
    w2 = imaging.work_copy_of_loaded(im2)
    rgb = np.asarray(w2, dtype=np.float64) / 255.0
    b = np.sqrt(0.241 * rgb[..., 0] ** 2 + 0.691 * rgb[..., 1] ** 2 + 0.068 * rgb[..., 2] ** 2)
    np.percentile(b, 5), np.percentile(b, 99), w2.entropy()
    g = np.asarray(w2.convert("L"), dtype=np.float64)
    (np.abs(g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]) <= 2).mean()
    return phash


def previous_rate(paths: list[Path], workers: int) -> float:
    """img/s of :func:`previous_one` in a thread pool (the old scan's pool), store writes left out."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        t0 = time.perf_counter()
        list(pool.map(previous_one, [str(p) for p in paths]))
        return len(paths) / (time.perf_counter() - t0)


def _decode_only(path: str) -> int:
    data = imaging.read_regular_file(path)
    im = imaging.open_image(data, path)
    imaging.load_small(im)
    return im.width


def decode_limit(paths: list[Path], workers: int) -> float:
    """img/s of read + draft decode alone, ``workers`` processes."""
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_decode_only, [str(p) for p in paths[:8]]))  # start the workers
        t0 = time.perf_counter()
        list(pool.map(_decode_only, [str(p) for p in paths], chunksize=16))
        return len(paths) / (time.perf_counter() - t0)


def imagehash_rate(paths: list[Path]) -> float | None:
    try:
        import imagehash
    except ImportError:
        return None
    t0 = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            imagehash.phash(im)
    return len(paths) / (time.perf_counter() - t0)


def cold_scan(root: Path, processes: bool) -> float:
    shutil.rmtree(root / ".fluxgym-coach", ignore_errors=True)
    with Dataset(root) as ds:
        t0 = time.perf_counter()
        report = ds.scan(processes=processes)
        dt = time.perf_counter() - t0
    assert not report.errors and report.measured == report.total
    return dt


def ab(work: Path, n: int, rounds: int) -> None:
    """Processes against threads, alternating, so both see the same load."""
    root = work / f"set_{n}"
    root.mkdir(parents=True, exist_ok=True)
    for p in make_jpegs(work / "jpeg", n):
        if not (root / p.name).exists():
            os.link(p, root / p.name)
    rates: dict[str, list[float]] = {"processes": [], "threads": []}
    for _ in range(rounds):
        for label, procs in (("processes", True), ("threads", False)):
            rates[label].append(n / cold_scan(root, processes=procs))
            print(f"  {label:9} {rates[label][-1]:5.0f} img/s (load {os.getloadavg()[0]:.1f})")
    for label, r in rates.items():
        print(f"cold scan {n}, {label}: {' / '.join(f'{x:.0f}' for x in r)} img/s")


def formats(work: Path) -> None:
    im = photo(99)
    folder = work / "formats"
    folder.mkdir(parents=True, exist_ok=True)
    files = {"JPEG q88": folder / "a.jpg", "PNG (level 6)": folder / "a.png",
             "WebP q80": folder / "a.webp", "TIFF (raw)": folder / "a.tif"}
    im.save(files["JPEG q88"], quality=88)
    im.save(files["PNG (level 6)"])
    im.save(files["WebP q80"], quality=80)
    im.save(files["TIFF (raw)"])
    print("decode cost of the same 1024x768 picture, one core (read + decode for the scan):")
    for label, p in files.items():
        n = 30
        t0 = time.perf_counter()
        for _ in range(n):
            _decode_only(str(p))
        dt = (time.perf_counter() - t0) / n
        print(f"  {label:14} {p.stat().st_size / 1024:7.0f} KiB  {dt * 1000:6.2f} ms  "
              f"({1 / dt:5.0f} img/s per core)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="1000,10000")
    ap.add_argument("--profile-sample", type=int, default=200)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--ab", type=int, default=0,
                    help="only: N cold scans with processes and N with threads, alternating, "
                         "on the first --counts set")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="fgc-bench-scan-"))
    cpus = _usable_cpus()
    print(f"work folder: {work}; usable cores: {cpus}; load {os.getloadavg()[0]:.1f}")
    if args.ab:
        ab(work, counts[0], args.ab)
        return
    t0 = time.perf_counter()
    all_paths = make_jpegs(work / "jpeg", max(counts))
    print(f"images ready in {time.perf_counter() - t0:.1f} s")
    sample = all_paths[: args.profile_sample]
    profile(sample)
    limit = decode_limit(all_paths[: min(2000, len(all_paths))], cpus)
    ih = imagehash_rate(sample[:100])
    prev = previous_rate(all_paths[: min(1000, len(all_paths))], cpus)
    print(f"decode limit (read + draft decode only, {cpus} processes): {limit:.0f} img/s")
    print(f"previous scan + audit path ({cpus} threads, square draft, second decode): {prev:.0f} img/s")
    if ih:
        print(f"imagehash.phash alone, one core: {ih:.0f} img/s")
    per_image = {}
    for n in counts:
        root = work / f"set_{n}"
        root.mkdir(exist_ok=True)
        for p in all_paths[:n]:
            dst = root / p.name
            if not dst.exists():
                os.link(p, dst)
        procs = cold_scan(root, processes=True)
        threads = cold_scan(root, processes=False)
        per_image[n] = procs / n
        line = (f"cold scan {n:6}: processes {n / procs:5.0f} img/s, threads {n / threads:5.0f} img/s; "
                f"decode limit {limit:.0f} img/s -> {n / procs / limit:.0%} of it")
        line += f"; x{n / procs / prev:.1f} the previous path"
        if ih:
            line += f"; x{n / procs / ih:.1f} imagehash.phash alone"
        print(line)
    if len(counts) > 1:
        lo, hi = min(counts), max(counts)
        print(f"growth: time per image at {hi} / at {lo} = {per_image[hi] / per_image[lo]:.2f} "
              "(1.0 = linear)")
    formats(work)


if __name__ == "__main__":
    main()
