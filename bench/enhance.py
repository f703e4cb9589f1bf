"""Enhancement benchmark: our pipeline against the seed's one-request-per-image loop.

Usage:
    python bench/enhance.py [--images 64] [--size 256] [--job-latency 0.05]
                            [--image-latency 0.05] [--max-batch 8] [--workdir DIR]

Starts the fake Forge server (``fluxgym-coach fake-forge``) in its own
process, with a fixed latency per job (``--job-latency``, seconds, spent
holding the server's job lock) plus a latency per image processed
(``--image-latency``), and writes ``--images`` photo-like PNGs of
``--size`` px. Then, against the same server, in the same run:

1. **baseline**: the seed's first version, a plain loop that reads an image,
   base64-encodes it, POSTs it to ``/sdapi/v1/extra-single-image``, decodes
   the answer and saves it, one image after the other (given one kept-alive
   connection, which is kinder to it than the seed's ``requests.post``);
2. **ours**: :func:`fluxgym_coach.enhance.job.run_enhance` with the Forge
   backend (batches of ``--max-batch`` to ``/extra-batch-images``, two
   requests in flight, results into a fresh cache);
3. **cached re-run**: the same job again, every result from the cache.

Then, without the server, the **cached re-run at scale** (issue 15):
``--rerun-images`` (default 1,000) PNGs of ``--rerun-size`` px are enhanced
once with the embedded backend into a cache with a job store (as
``fluxgym-coach enhance`` does), then re-run twice against that cache:

* **baseline**: with a fresh store, so every input is read and measured
  again (digest, probe, pHash/sharpness measure: the cost before issue 15);
* **ours**: with the same store, where each input's facts are remembered by
  path, size and mtime: one ``stat`` per file and a few queries.

It prints both wall times, their ratio, and where the time of ours goes
(cProfile, top entries by cumulative time).

For 1 and 2 it prints the wall time, the server's total job time (the time
its job lock was held, read from ``GET /fake/stats``) and their ratio: 1.00
means the server never waited for the client. Nothing is asserted: the
numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxgym_coach.enhance.backends.base import EnhanceParams  # noqa: E402
from fluxgym_coach.enhance.backends.forge import ForgeBackend  # noqa: E402
from fluxgym_coach.enhance.backends.local import LocalBackend  # noqa: E402
from fluxgym_coach.cache import ImageCache  # noqa: E402
from fluxgym_coach.enhance.job import Source, run_enhance  # noqa: E402
from fluxgym_coach.store import Store  # noqa: E402


def make_images(folder: Path, count: int, size: int) -> list[Path]:
    """Write ``count`` photo-like colour PNGs of about ``size`` px; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    paths = []
    for i in range(count):
        w, h = (size, size * 3 // 4) if i % 2 else (size * 3 // 4, size)
        base = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
        im = Image.fromarray(base, "RGB").resize((w, h), Image.Resampling.BICUBIC)
        p = folder / f"img_{i:03d}.png"
        im.save(p, compress_level=1)
        paths.append(p)
    return paths


def start_server(job_latency: float, image_latency: float) -> tuple[subprocess.Popen, str]:
    """``fluxgym-coach fake-forge`` on a free port in another process; returns it and its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fluxgym_coach", "fake-forge", "--port", "0",
         "--latency", str(job_latency), "--image-latency", str(image_latency)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not match:
        proc.kill()
        raise SystemExit(f"the fake server did not start: {line!r}")
    return proc, match.group(0)


def server_stats(url: str, reset: bool = False) -> dict:
    """The fake server's counters (``reset`` zeroes them first)."""
    if reset:
        return httpx.post(f"{url}/fake/reset").json()
    return httpx.get(f"{url}/fake/stats").json()


def seed_loop(url: str, paths: list[Path], out: Path, scale: float, upscaler: str) -> None:
    """The seed's first version: one blocking request per image, one after the other."""
    out.mkdir(parents=True, exist_ok=True)
    with httpx.Client(base_url=url, timeout=600) as http:
        for p in paths:
            payload = {"resize_mode": 0, "upscaling_resize": scale, "upscaler_1": upscaler,
                       "image": base64.b64encode(p.read_bytes()).decode()}
            r = http.post("/sdapi/v1/extra-single-image", json=payload)
            r.raise_for_status()
            im = Image.open(io.BytesIO(base64.b64decode(r.json()["image"])))
            im.save(out / f"{p.stem}_enhanced.png")


async def ours(url: str, paths: list[Path], cache: ImageCache, params: EnhanceParams,
               max_batch: int) -> tuple[int, int]:
    """Our pipeline; returns (enhanced, cached) counts."""
    backend = ForgeBackend(url, max_batch=max_batch)
    try:
        report = await run_enhance([Source(p.name, p) for p in paths], backend, params, cache)
    finally:
        await backend.aclose()
    if report.failed:
        raise SystemExit(f"{len(report.failed)} images failed: {report.failed[0].reason}")
    return len(report.by_status("enhanced")), len(report.by_status("cached"))


def rerun_at_scale(work: Path, count: int, size: int) -> None:
    """The cached re-run phase (see the module docstring)."""
    import cProfile
    import pstats

    paths = make_images(work / "rerun-in", count, size)
    cache = ImageCache(work / "rerun-cache")
    params = EnhanceParams(scale_factor=2, colorize=False)
    sources = [Source(p.name, p) for p in paths]

    def job(store: Store) -> tuple[float, int]:
        backend = LocalBackend()

        async def go():
            try:
                return await run_enhance(sources, backend, params, cache, store=store)
            finally:
                await backend.aclose()
        t0 = time.perf_counter()
        report = asyncio.run(go())
        return time.perf_counter() - t0, len(report.by_status("cached"))

    store = Store(work / "rerun-journal.sqlite")
    first, _ = job(store)
    base, base_cached = job(Store(work / "rerun-fresh.sqlite"))
    ours_s, cached = job(store)
    print(f"\ncached re-run of {count} images of {size} px (first run {first:.1f} s)")
    print(f"{'run':<36}{'wall s':>9}{'cached':>8}")
    print(f"{'baseline (every input re-measured)':<36}{base:>9.3f}{base_cached:>8}")
    print(f"{'ours (remembered facts)':<36}{ours_s:>9.3f}{cached:>8}")
    print(f"speed-up: {base / ours_s:.1f}x; target <= 1 s: {'met' if ours_s <= 1 else 'NOT met'}")
    prof = cProfile.Profile()
    prof.enable()
    job(store)
    prof.disable()
    print("where ours spends its time (cumulative s):")
    stats = pstats.Stats(prof)
    rows = sorted(((v[3], f"{k[2]} ({Path(k[0]).name}:{k[1]})") for k, v in stats.stats.items()  # type: ignore[attr-defined]
                   if "fluxgym_coach" in k[0] or "sqlite3" in k[2] or "stat" in k[2]), reverse=True)
    for cum, name in rows[:12]:
        print(f"  {cum:7.3f}  {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--size", type=int, default=256, help="long side of the inputs, px")
    ap.add_argument("--job-latency", type=float, default=0.05, help="server seconds per job")
    ap.add_argument("--image-latency", type=float, default=0.05, help="server seconds per image")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--rerun-images", type=int, default=1000, help="cached re-run phase; 0 skips it")
    ap.add_argument("--rerun-size", type=int, default=256)
    ap.add_argument("--rerun-only", action="store_true", help="only the cached re-run phase")
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-enhance-"))
    if work.exists():
        shutil.rmtree(work)
    if args.rerun_only:
        rerun_at_scale(work, args.rerun_images, args.rerun_size)
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        return
    paths = make_images(work / "in", args.images, args.size)
    params = EnhanceParams(scale_factor=args.scale, upscaler="R-ESRGAN 4x+", colorize=False)
    proc, url = start_server(args.job_latency, args.image_latency)
    try:
        server_stats(url, reset=True)
        t0 = time.perf_counter()
        seed_loop(url, paths, work / "seed-out", args.scale, "R-ESRGAN 4x+")
        base_wall = time.perf_counter() - t0
        base_server = server_stats(url)["busy_seconds"]

        cache = ImageCache(work / "cache")
        server_stats(url, reset=True)
        t0 = time.perf_counter()
        enhanced, _ = asyncio.run(ours(url, paths, cache, params, args.max_batch))
        our_wall = time.perf_counter() - t0
        stats = server_stats(url)
        our_server = stats["busy_seconds"]

        server_stats(url, reset=True)
        t0 = time.perf_counter()
        _, cached = asyncio.run(ours(url, paths, cache, params, args.max_batch))
        cached_wall = time.perf_counter() - t0
        cached_jobs = server_stats(url)["job_requests"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    print(f"{args.images} images of {args.size} px, scale {args.scale:g}, job latency "
          f"{args.job_latency:g} s + {args.image_latency:g} s per image, batches of {args.max_batch}")
    print(f"{'run':<28}{'wall s':>9}{'server job s':>14}{'wall/server':>13}")
    print(f"{'seed loop (baseline)':<28}{base_wall:>9.2f}{base_server:>14.2f}"
          f"{base_wall / base_server:>13.3f}")
    print(f"{'ours (run_enhance)':<28}{our_wall:>9.2f}{our_server:>14.2f}"
          f"{our_wall / our_server:>13.3f}")
    print(f"ours: {enhanced} enhanced in {stats['job_requests']} requests; "
          f"wall time vs baseline: {our_wall / base_wall:.3f}")
    print(f"{'cached re-run':<28}{cached_wall:>9.2f}  ({cached} cached, {cached_jobs} job requests)")
    if args.rerun_images:
        rerun_at_scale(work, args.rerun_images, args.rerun_size)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
