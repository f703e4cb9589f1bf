"""Audit benchmark: cold and warm audit of a generated dataset, against cleanvision in the same run.

Usage:
    python bench/audit.py [--count 2000] [--workdir DIR] [--no-cleanvision] [--workers N]

Generates ``--count`` photo-like images (800..1280 px long side, 3 JPEG for 1
PNG) with planted issues: 5 % motion-blurred, 5 % dark, 5 % black-and-white,
3 % exact copies and 3 % near duplicates (re-encoded, slightly brightened and
resized). Then, on the same folder and in the same run:

1. **cold audit**: a fresh store; :func:`fluxgym_coach.audit.rules.audit_dataset`
   scans (digest, header, pHash, grayscale, sharpness) and takes the extra
   measures (brightness, entropy, flatness, alpha, bit depth), then builds
   the findings and duplicate groups. The scan and the extra measures are
   also timed apart.
2. **warm audit**: the same call again; nothing changed, so nothing is
   decoded (the number of decodes is printed).
3. **cleanvision**: ``Imagelab(data_path=...).find_issues()`` with its default
   checks (dark, light, odd aspect ratio, low information, exact and near
   duplicates, blurry, grayscale, odd size). cleanvision is *not* a
   dependency of fluxgym-coach: install it in the bench environment with
   ``pip install cleanvision``. Without it the script says so and prints our
   figures only.

It prints the seconds, images per second, the ratio cleanvision / ours for
the cold audit, and how many planted issues each tool found.

4. **scaling and the whole command** (``--command-counts 1000,10000``): small
   images (320x240, 3 JPEG for 1 PNG, 2 % exact copies) so 10,000 fit in a
   bench run: the cold audit at each count with the growth factor (time per
   image at the largest count over the smallest; 1.0 = linear), then the whole
   ``python -m fluxgym_coach audit DIR`` command on the warm store, timed from
   process start to exit with its peak memory: default output, ``--json`` and
   ``--all`` (both into a file).

Nothing is asserted: the numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import PIL.Image  # noqa: E402

from fluxgym_coach.audit import rules as audit  # noqa: E402
from fluxgym_coach.dataset import Dataset  # noqa: E402

PLANTED = ("blurry", "dark", "gray", "exact", "near")


def make_images(folder: Path, count: int, seed: int = 7) -> dict[str, set[str]]:
    """Write ``count`` images into ``folder``; return ``{issue: {file names}}`` of planted issues."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    planted: dict[str, set[str]] = {k: set() for k in PLANTED}
    originals: list[tuple[str, Image.Image]] = []
    copies: dict[str, set[str]] = {}  # source -> its exact copies
    for i in range(count):
        name_ext = ".png" if i % 4 == 3 else ".jpg"
        name = f"img_{i:05d}{name_ext}"
        kind = i % 100
        if kind in range(0, 3) and originals:  # exact copy of an earlier file
            src_name, _ = originals[int(rng.integers(0, len(originals)))]
            name = f"img_{i:05d}{Path(src_name).suffix}"
            shutil.copy(folder / src_name, folder / name)
            planted["exact"].update({name, src_name})
            copies.setdefault(src_name, set()).add(name)
            continue
        if kind in range(3, 6) and originals:  # near duplicate of an earlier image
            src_name, src = originals[int(rng.integers(0, len(originals)))]
            shift = 6 + i % 11  # each near copy differs, so two copies of one source are not identical
            arr = np.clip(np.asarray(src, dtype=np.int16) + shift, 0, 255).astype(np.uint8)
            im = Image.fromarray(arr, "RGB").resize((src.width * 9 // 10, src.height * 9 // 10))
            im.save(folder / f"img_{i:05d}.jpg", quality=85)
            planted["near"].update({f"img_{i:05d}.jpg", src_name})
            continue
        long_side = int(rng.integers(800, 1281))
        w, h = (long_side, long_side * 3 // 4) if i % 2 else (long_side * 3 // 4, long_side)
        base = rng.integers(0, 256, (h // 24 + 1, w // 24 + 1, 3), dtype=np.uint8)
        im = Image.fromarray(base, "RGB").resize((w, h), Image.Resampling.NEAREST)  # hard edges
        im = im.filter(ImageFilter.GaussianBlur(1.5))  # soft enough to be photo-like, still sharp
        if kind in range(10, 15):
            im = im.filter(ImageFilter.BoxBlur(12))
            planted["blurry"].add(name)
        elif kind in range(15, 20):
            im = Image.fromarray((np.asarray(im, dtype=np.float64) * 0.12).astype(np.uint8))
            planted["dark"].add(name)
        elif kind in range(20, 25):
            im = im.convert("L").convert("RGB")
            planted["gray"].add(name)
        if name_ext == ".png":
            im.save(folder / name, compress_level=1)
        else:
            im.save(folder / name, quality=88)
        if len(originals) < 200 and kind >= 25:
            originals.append((name, im))
    # an exact copy of a near-duplicate source is a near duplicate too
    for src, names in copies.items():
        if src in planted["near"]:
            planted["near"].update(names)
    return planted


def count_decodes() -> list[int]:
    """Wrap ``PIL.Image.open`` so each call is counted; returns the counter list."""
    counter = [0]
    real = PIL.Image.open

    def counting(fp, *args, **kwargs):
        counter[0] += 1
        return real(fp, *args, **kwargs)

    PIL.Image.open = counting  # type: ignore[assignment]
    return counter


def run_ours(folder: Path, workers: int | None) -> dict[str, object]:
    shutil.rmtree(folder / ".fluxgym-coach", ignore_errors=True)
    counter = count_decodes()
    with Dataset(folder) as ds:
        t0 = time.perf_counter()
        ds.scan(workers=workers)
        t1 = time.perf_counter()
        cold = audit.audit_dataset(ds, caption_rules=False, workers=workers)
        t2 = time.perf_counter()
        decodes_cold = counter[0]
        counter[0] = 0
        warm = audit.audit_dataset(ds, caption_rules=False, workers=workers)
        t3 = time.perf_counter()
    return {"scan": t1 - t0, "measure": t2 - t1, "cold": t2 - t0, "warm": t3 - t2,
            "decodes_cold": decodes_cold, "decodes_warm": counter[0], "report": cold,
            "warm_report": warm}


def found_ours(report: audit.AuditReport) -> dict[str, set[str]]:
    by = report.by_code()
    blurry = {rel for rel in by.get("blurry", [])
              if any(f.code == "blurry" and f.severity != audit.INFO for f in report.images[rel].findings)}
    return {"blurry": blurry, "dark": set(by.get("too_dark", [])),
            "gray": set(by.get("grayscale", [])), "exact": set(by.get("exact_duplicate", [])),
            "near": set(by.get("near_duplicate", []))}


def run_cleanvision(folder: Path) -> tuple[float, dict[str, set[str]]] | None:
    try:
        from cleanvision import Imagelab
    except ImportError:
        return None
    t0 = time.perf_counter()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        lab = Imagelab(data_path=str(folder))  # progress bars silenced: they are not part of the result
        lab.find_issues()
    seconds = time.perf_counter() - t0
    issues = lab.issues

    def flagged(col: str) -> set[str]:
        if col not in issues.columns:
            return set()
        return {Path(p).name for p in issues.index[issues[col]]}

    return seconds, {"blurry": flagged("is_blurry_issue"), "dark": flagged("is_dark_issue"),
                     "gray": flagged("is_grayscale_issue"), "exact": flagged("is_exact_duplicates_issue"),
                     "near": flagged("is_near_duplicates_issue")}


def make_small(folder: Path, count: int) -> None:
    """``count`` 320x240 images (kept between runs), 2 % exact copies."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for i in range(count):
        name = folder / f"s_{i:05d}{'.png' if i % 4 == 3 else '.jpg'}"
        if name.exists():
            continue
        if i % 50 == 49:
            shutil.copy(folder / f"s_{i - 1:05d}{'.png' if (i - 1) % 4 == 3 else '.jpg'}",
                        name.with_suffix(".png" if (i - 1) % 4 == 3 else ".jpg"))
            continue
        base = rng.integers(0, 256, (11, 14, 3), dtype=np.uint8)
        Image.fromarray(base, "RGB").resize((320, 240), Image.Resampling.BILINEAR).save(name)


def run_command(folder: Path, *extra: str) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit code) of ``python -m fluxgym_coach audit folder``."""
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), COLUMNS="160")
    code = ("import resource, subprocess, sys, time; t0 = time.perf_counter(); "
            "p = subprocess.run(sys.argv[1:], stdout=open(sys.argv.pop(), 'w') if False else None); "
            "print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
            "p.returncode, file=sys.stderr)")
    out_path = folder.parent / f"audit_out_{'_'.join(e.strip('-') for e in extra) or 'default'}.txt"
    with open(out_path, "w") as sink:
        res = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "fluxgym_coach", "audit",
                              str(folder), "--no-captions", *extra], env=env, stdout=sink,
                             stderr=subprocess.PIPE, text=True, check=False)
    seconds, rss_kb, rc = res.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(rss_kb) / 1024, int(rc)


def scaling(work: Path, counts: list[int]) -> None:
    per = {}
    for n in counts:
        folder = work / f"small_{n}"
        make_small(folder, n)
        shutil.rmtree(folder / ".fluxgym-coach", ignore_errors=True)
        counter = count_decodes()
        with Dataset(folder) as ds:
            t0 = time.perf_counter()
            report = audit.audit_dataset(ds, caption_rules=False)
            dt = time.perf_counter() - t0
        per[n] = dt / n
        print(f"cold audit {n:6} small images: {dt:6.2f} s ({n / dt:.0f} images/s), "
              f"{counter[0]} decodes, {len(report.groups)} duplicate groups")
        for extra in ((), ("--json",), ("--all",)):
            seconds, rss, rc = run_command(folder, *extra)
            print(f"  whole command `audit DIR {' '.join(extra)}` (warm, {n} images): {seconds:.2f} s, "
                  f"peak {rss:.0f} MB, exit {rc}")
    if len(counts) > 1:
        lo, hi = min(counts), max(counts)
        print(f"growth of the cold audit: time per image at {hi} / at {lo} = {per[hi] / per[lo]:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--no-cleanvision", action="store_true")
    ap.add_argument("--command-counts", default="1000,10000")
    ap.add_argument("--skip-main", action="store_true", help="only the scaling / command part")
    args = ap.parse_args()
    if args.skip_main:
        scaling(args.workdir or Path(tempfile.mkdtemp(prefix="bench-audit-")),
                [int(c) for c in args.command_counts.split(",")])
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-audit-"))
    folder = work / "images"
    if folder.exists():
        shutil.rmtree(folder)
    t0 = time.perf_counter()
    planted = make_images(folder, args.count)
    n = len([p for p in folder.iterdir() if p.is_file()])
    print(f"generated {n} images in {time.perf_counter() - t0:.1f} s under {folder} "
          f"(cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f})")
    ours = run_ours(folder, args.workers)
    rep: audit.AuditReport = ours["report"]  # type: ignore[assignment]
    print(f"ours, cold audit:  {ours['cold']:.2f} s ({n / ours['cold']:.0f} images/s): scan "
          f"{ours['scan']:.2f} s + extra measures and findings {ours['measure']:.2f} s; "
          f"{ours['decodes_cold']} decodes")
    print(f"ours, warm audit:  {ours['warm']:.3f} s; {ours['decodes_warm']} decodes; "
          f"measured now: {ours['warm_report'].measured}")  # type: ignore[union-attr]
    mine = found_ours(rep)
    print("planted issue     planted  ours-found" + ("  cleanvision-found" if not args.no_cleanvision else ""))
    cv = None if args.no_cleanvision else run_cleanvision(folder)
    for k in PLANTED:
        line = f"{k:<17} {len(planted[k]):>7}  {len(planted[k] & mine[k]):>10}"
        if cv is not None:
            line += f"  {len(planted[k] & cv[1][k]):>17}"
        print(line + f"   (ours also flagged {len(mine[k] - planted[k])} unplanted)")
    print("(ours-found counts blurry warnings; on low-contrast images the blur finding is only info)")
    if args.no_cleanvision:
        print("cleanvision: skipped (--no-cleanvision)")
    elif cv is None:
        print("cleanvision: NOT INSTALLED, no comparison. Install it in the bench environment only: "
              "pip install cleanvision")
    else:
        print(f"cleanvision find_issues: {cv[0]:.2f} s ({n / cv[0]:.0f} images/s)")
        print(f"ratio cleanvision / ours (cold): x{cv[0] / ours['cold']:.1f}; "
              f"cleanvision / ours (warm): x{cv[0] / ours['warm']:.0f}")
    scaling(work, [int(c) for c in args.command_counts.split(",")])
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
