"""Captioning throughput against an OpenAI-compatible server: wall time over the ideal.

Usage:
    python bench/caption.py [--images 48] [--size 1024] [--latency 0.25] [--parallel 2]
                            [--workdir DIR]

Starts the project's fake OpenAI-compatible server
(:class:`fluxgym_coach.testing.fake_openai.FakeOpenAIServer`) in its own
process with a fixed ``--latency`` per request (seconds) and a concurrency
limit of ``--parallel`` requests worked on at once (the others wait, as with
Ollama's ``OLLAMA_NUM_PARALLEL``), writes ``--images`` photo-like JPEGs of
``--size`` px into a dataset, and captions them with the ``openai`` backend
at the server's concurrency. The ideal is the server's own busy time (the
latency plus its decoding and answer, summed over requests, read from the
server) divided by its slots: the server always busy, the client costing
nothing (``ceil(images / parallel) * latency`` is printed too). In the same run:

1. **baseline**: each image is encoded inside its request slot (the job before
   issue 15: a slot is idle on the server while its next image is encoded);
2. **ours**: the job prepares (encodes, in a thread) the next images while the
   requests are in flight, so a slot's next request is ready when it frees;
3. **ours, one request queued**: ``--concurrency`` one above the server's, so
   the next request already waits at the server when a slot frees (the
   answer's trip back to the client and the next request's trip out no
   longer leave the slot idle).

Prints wall time, ideal and their ratio for both (target for ours: <= 1.05),
and the client's CPU time per image (what bounds the ratio on a busy machine).
Nothing is asserted: the numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxgym_coach.captions import job as captioning  # noqa: E402
from fluxgym_coach.captions.backends.openai import OpenAICaptioner  # noqa: E402
from fluxgym_coach.dataset import Dataset  # noqa: E402
from fluxgym_coach.cache import ImageCache  # noqa: E402

SERVER = """
import sys, time
from fluxgym_coach.testing.fake_openai import FakeOpenAIServer
s = FakeOpenAIServer()
s.latency, s.parallel = float(sys.argv[1]), int(sys.argv[2])
s.start()
print(s.url, flush=True)
for line in sys.stdin:  # each line asks for the busy seconds so far
    print(s.busy_seconds, flush=True)
"""


class InSlotCaptioner(OpenAICaptioner):
    """The baseline: nothing prepared ahead, the image is encoded inside the request slot."""

    async def prepare(self, request):
        return None  # nothing ahead of the slot...

    async def caption(self, request):
        request.prepared = await OpenAICaptioner.prepare(self, request)  # ...all inside it
        return await super().caption(request)


def make_dataset(root: Path, count: int, size: int) -> Dataset:
    """A dataset of ``count`` photo-like JPEGs (noise over gradients), scanned."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    w, h = size, size * 3 // 4
    y, x = np.mgrid[0:h, 0:w]
    for i in range(count):
        base = np.stack([(x * (i + 1)) % 256, (y * 2) % 256, (x + y + 40 * i) % 256], axis=-1)
        noise = rng.integers(0, 40, (h, w, 3))
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(root / f"img{i:03d}.jpg",
                                                                              quality=90)
    ds = Dataset(root)
    ds.scan()
    return ds


def run_once(ds: Dataset, captioner: OpenAICaptioner, cache: ImageCache) -> tuple[float, int]:
    async def go():
        try:
            return await captioning.run_caption(ds, captioner, mode="propose", cache=cache)
        finally:
            await captioner.aclose()
    t0, c0 = time.perf_counter(), time.process_time()
    report = asyncio.run(go())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if report.failed:
        raise SystemExit(f"{len(report.failed)} failed: {report.failed[0].reason}")
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--size", type=int, default=1024, help="long side of the inputs, px")
    ap.add_argument("--latency", type=float, default=0.25, help="server seconds per request")
    ap.add_argument("--parallel", type=int, default=2, help="requests the server works on at once")
    ap.add_argument("--image-size", type=int, default=1024, help="long side sent, px")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-caption-"))
    ds = make_dataset(work / "ds", args.images, args.size)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(args.latency), str(args.parallel)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.stdin is not None and proc.stdout is not None

    def busy() -> float:
        proc.stdin.write("\n")
        proc.stdin.flush()
        return float(proc.stdout.readline())

    try:
        url = proc.stdout.readline().strip()
        rows = []
        n = args.parallel
        for label, cls, conc in ((f"baseline (in the slot), {n} sent", InSlotCaptioner, n),
                                 (f"ours (prepared ahead), {n} sent", OpenAICaptioner, n),
                                 (f"ours, {n + 1} sent (1 queued)", OpenAICaptioner, n + 1)):
            cache = ImageCache(work / f"cache-{cls.__name__}-{conc}")
            captioner = cls(model="fake-vision", base_url=url, concurrency=conc,
                            image_size=args.image_size, retries=0)
            before = busy()
            wall, cpu = run_once(ds, captioner, cache)
            rows.append((label, wall, cpu, (busy() - before) / args.parallel))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        ds.close()
    latency_ideal = math.ceil(args.images / args.parallel) * args.latency
    print(f"{args.images} JPEGs of {args.size} px sent at {args.image_size} px, server latency "
          f"{args.latency:g} s, {args.parallel} at once; latency-only ideal {latency_ideal:.2f} s")
    print(f"{'run':<34}{'wall s':>9}{'ideal s':>9}{'wall/ideal':>12}{'client CPU s/image':>20}")
    for label, wall, cpu, ideal in rows:
        print(f"{label:<34}{wall:>9.2f}{ideal:>9.2f}{wall / ideal:>12.3f}{cpu / args.images:>20.3f}")
    print("ideal: the server's own busy time (latency + its decode and answer) / its slots")
    print(f"the server frees a slot every {args.latency / args.parallel:.3f} s: a client needing more "
          f"CPU per image than that (the machine's load included) bounds the ratio")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
