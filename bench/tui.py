"""TUI benchmark: 10,000 generated images, first paint, cursor moves, peak memory.

Usage:
    python bench/tui.py [--count 10000] [--workdir DIR] [--moves 300]

Generates ``--count`` small JPEG photos-like images (one in three with a
caption sidecar) in ``--workdir`` (default ``bench/_work/tui``, kept between
runs) and scans them once (not timed as part of the TUI). Then, in the same run:

1. **first paint**: a child process starts the review app on the dataset
   (imports included, incremental scan started in the background, audit off)
   and reports when the first screen with the list has been painted
   (``call_after_refresh`` after mount). The same is done for an empty Textual
   app (one Static): the baseline. Each is run three times; the median is kept.
   The child also reports its peak memory (``ru_maxrss``) after the moves below.
   Before the moves it waits for the background work: the scan, and the
   plugins' start-up tasks (they run on their own threads).
2. **key to paint**: in the same child, headless at 100x30, ``down`` key events
   sent to the driver as a terminal would, each timed from the event to the
   end of the screen refresh that shows the moved cursor (``call_after_refresh``
   runs after the compositor's update): ``--moves`` presses 33 ms apart (a
   held key) and a tenth as many 0.3 s apart (cursor rested, panels updated).
   The empty app binds ``down`` to an action that changes one line.
3. **Pilot presses**: ``--moves`` ``Pilot.press("down")`` (and a tenth as many
   ``pagedown``); wall and CPU per press against the same presses on the empty
   app. ``Pilot.press`` waits for idleness sampled in 20 ms windows, so its
   wall time is a multiple of 20 ms: the CPU figure is the telling one.

4. **preview switch** (``--preview-switch N``, children ``preview`` and
   ``preview-fixed``): N images are shown once (thumbnails decoded into the
   in-memory LRU), then the cursor goes back to the first and ``down`` is sent
   N times 0.4 s apart, each timed from the key event to the end of the refresh
   after the preview widget received the new thumbnail. ``preview`` is the app
   as it is (a thumbnail in memory is drawn at once); ``preview-fixed`` is the
   same app with the former fixed 150 ms wait before every preview: the baseline.
   The empty app's rested key to paint is the floor.

5. **first names** (``--first-names``, children ``names-cold``, ``names-warm``
   and ``walk``): time from the start of a child process to the end of the first
   screen update in which the list drew a row with a name (and the child's CPU
   time until then; also the next refresh after it, which counts the start-up
   work queued behind the first paint). ``names-cold``: the dataset's store is
   deleted first (a first open: the first names of the folder walk are listed
   before anything is read); ``names-warm``: the store holds the scanned dataset
   (a reopen). The baseline, ``walk``, is a child process that only walks the
   same folder with ``os.scandir`` (the least any program needs to know the
   names). Each is run ``--runs`` times; the median is kept. The package is
   byte-compiled first. With ``--full-scan`` the cold child also waits until the
   scan has read every image (hash, sharpness, flags).

Targets (issue 4): first paint under 2 s, cursor move under 50 ms, memory
under 300 MB; issue 14: first names under 1 s, cold and warm. Nothing is
asserted: the numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def generate(folder: Path, count: int) -> None:
    """Write ``count`` small JPEGs (and captions for one in three) unless already there."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / ".generated"
    if marker.exists() and marker.read_text() == str(count):
        return
    rng = random.Random(4)
    for i in range(count):
        sub = folder / f"set{i // 1000:02d}"
        sub.mkdir(exist_ok=True)
        w, h = rng.choice([(96, 64), (64, 96), (80, 80), (120, 68)])
        im = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
        d = ImageDraw.Draw(im)
        d.ellipse([rng.randrange(w // 2), rng.randrange(h // 2), w - 4, h - 4],
                  fill=tuple(rng.randrange(256) for _ in range(3)))
        im.save(sub / f"img_{i:05d}.jpg", quality=80)
        if i % 3 == 0:
            (sub / f"img_{i:05d}.txt").write_text(f"ohwx, photo {i}, tag{i % 23}, outdoor",
                                                  encoding="utf-8")
    marker.write_text(str(count))


def child(kind: str, dataset: str, moves: int, started: float) -> None:
    """Run one app headless; print one JSON line with the figures."""
    import asyncio
    import resource

    from textual.app import App
    from textual.widgets import Static

    from textual import events

    result: dict[str, float] = {}
    waiting: list[asyncio.Future[float]] = []

    def painted() -> None:
        """Called after the refresh that follows a handled key: the key is on screen."""
        while waiting:
            fut = waiting.pop()
            if not fut.done():
                fut.set_result(time.perf_counter())

    if kind == "empty":
        class Bench(App):  # type: ignore[type-arg]
            BINDINGS = [("down", "move"), ("pagedown", "move")]

            def compose(self):
                yield Static("hello", id="counter")

            def on_mount(self) -> None:
                self.call_after_refresh(lambda: result.setdefault("paint", time.time() - started))

            def action_move(self) -> None:  # the least a key can do: change one line
                counter = self.query_one("#counter", Static)
                counter.update(str(int(time.perf_counter() * 1000)))
                self.call_after_refresh(painted)
        app = Bench()
    else:
        from fluxgym_coach.tui.app import ReviewApp

        class Bench(ReviewApp):  # type: ignore[no-redef]
            def on_mount(self) -> None:  # Textual calls ReviewApp.on_mount too (per class)
                self.call_after_refresh(lambda: result.setdefault("paint", time.time() - started))

            def on_image_list_highlighted(self, _message: object) -> None:  # also per class
                self.call_after_refresh(painted)
        app = Bench(dataset, preview="halfcell", audit=False)

    async def key_to_paint(key: str, presses: int, gap: float) -> list[float]:
        """Milliseconds from a key event entering the app to the refresh that shows it."""
        loop = asyncio.get_running_loop()
        latencies = []
        for _ in range(presses):
            fut: asyncio.Future[float] = loop.create_future()
            waiting.append(fut)
            event = events.Key(key, None)
            event.set_sender(app)
            t0 = time.perf_counter()
            app._driver.send_message(event)  # what a terminal's key does (no Pilot idle wait)
            latencies.append((await asyncio.wait_for(fut, 10) - t0) * 1000)
            await asyncio.sleep(gap)
        return latencies

    async def run() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            while "paint" not in result:
                await pilot.pause(0.01)
            await app.workers.wait_for_complete()  # the background scan
            session = getattr(app, "plugin_session", None)
            if session is not None:  # plugin tasks (vectors...) run on their own threads
                t0 = time.perf_counter()
                await session.project.task_queue.join()
                result["plugin_tasks_s"] = time.perf_counter() - t0
            await pilot.pause(0.5)
            # Key to paint, as a user sees it: held-down key (30 presses/s) and
            # single presses after the cursor has rested (debounced panels updated).
            held = key_to_paint("down", moves, 1 / 30)
            result["k2p_held_ms"] = statistics.median(await held)
            await pilot.pause(0.5)
            rested = await key_to_paint("down", max(10, moves // 10), 0.3)
            result["k2p_rested_ms"] = statistics.median(rested)
            result["k2p_rested_max_ms"] = max(rested)
            await pilot.pause(0.5)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(moves):
                await pilot.press("down")
            result["move_ms"] = (time.perf_counter() - t0) / moves * 1000
            result["move_cpu_ms"] = (time.process_time() - c0) / moves * 1000
            pages = max(1, moves // 10)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(pages):
                await pilot.press("pagedown")
            result["page_ms"] = (time.perf_counter() - t0) / pages * 1000
            result["page_cpu_ms"] = (time.process_time() - c0) / pages * 1000
            if kind != "empty":
                result["rows"] = len(app.index.rows)
                t0 = time.perf_counter()
                await pilot.press("f")  # refilter 10k rows
                result["filter_ms"] = (time.perf_counter() - t0) * 1000
            await app.workers.wait_for_complete()

    asyncio.run(run())
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def preview_child(kind: str, dataset: str, switches: int) -> None:
    """Key to preview paint with cached thumbnails; print one JSON line."""
    import asyncio

    from textual import events

    from fluxgym_coach.tui import app as app_module
    from fluxgym_coach.tui.widgets.preview import DECODE_DELAY, Preview

    if kind == "preview-fixed":  # the former behaviour: a fixed wait before every preview
        app_module.preview_delay = lambda _cached, _since: DECODE_DELAY
    waiting: list[tuple[str, asyncio.Future[float]]] = []

    class Bench(app_module.ReviewApp):
        def on_mount(self) -> None:
            preview = self.query_one(Preview)
            show_image = preview.show_image

            def traced(key: str, image: object, title: str) -> None:
                show_image(key, image, title)
                self.call_after_refresh(lambda: shown(key))
            preview.show_image = traced  # type: ignore[method-assign]

    def shown(key: str) -> None:
        for item in list(waiting):
            if item[0] == key and not item[1].done():
                item[1].set_result(time.perf_counter())
                waiting.remove(item)

    app = Bench(dataset, preview="halfcell", audit=False, plugins=False, scan=False)

    async def press(key: str, row_key: str) -> float:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        waiting.append((row_key, fut))
        event = events.Key(key, None)
        event.set_sender(app)
        t0 = time.perf_counter()
        app._driver.send_message(event)
        return (await asyncio.wait_for(fut, 10) - t0) * 1000

    async def run() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("home")  # the cursor may be restored elsewhere
            await pilot.pause(0.5)
            keys = []
            for _ in range(switches):  # first pass: decode the thumbnails
                row = app.index.view[app.image_list.cursor + 1]
                keys.append(app._preview_source(row)[2])
                await press("down", keys[-1])
            await pilot.press("home")
            await pilot.pause(0.5)
            latencies = []
            for key in keys:
                latencies.append(await press("down", key))
                await asyncio.sleep(0.4)
            print(json.dumps({"median_ms": statistics.median(latencies), "max_ms": max(latencies),
                              "decodes": app.thumbs.decodes}))

    asyncio.run(run())


def walk_child(dataset: str, started: float) -> None:
    """The baseline: walk the folder with os.scandir (names only); print one JSON line."""
    names, stack = 0, [dataset]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.name.lower().endswith((".jpg", ".png")):
                    names += 1
    print(json.dumps({"names_s": time.time() - started, "names_cpu_s": time.process_time(),
                      "names": names}))


def names_child(kind: str, dataset: str, started: float, full_scan: bool) -> None:
    """Start the review app; print when the list first shows names (one JSON line).

    ``names_s``: the end of the first screen update (compositor output handed to the
    driver) in which the image list drew a row with a name. ``settled_s``: the end of
    the first refresh after that which the event loop got to (what this bench measured
    before: it also counts the start-up work queued behind the first paint, e.g. the
    plugins, while which keys wait)."""
    import asyncio

    from fluxgym_coach.tui.app import ReviewApp
    from fluxgym_coach.tui.widgets.image_list import ImageList

    result: dict[str, float] = {}
    drew_row = [False]
    render_line = ImageList.render_line

    def traced_render_line(self: ImageList, y: int) -> object:
        if not drew_row[0] and y + int(self.scroll_offset.y) < len(self.index.view):
            drew_row[0] = True  # a row with a name is in this update
        return render_line(self, y)
    ImageList.render_line = traced_render_line  # type: ignore[method-assign]

    class Bench(ReviewApp):
        def _display(self, screen: object, renderable: object) -> None:
            super()._display(screen, renderable)  # type: ignore[arg-type]
            if drew_row[0] and renderable is not None and "names_s" not in result:
                result["names_s"] = time.time() - started
                result["names_cpu_s"] = time.process_time()  # this process's CPU so far
                result["rows_then"] = len(self.index.rows)

    app = Bench(dataset, preview="halfcell", audit=False, watch_interval=None)

    async def run() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            while "names_s" not in result:
                await pilot.pause(0.005)
            loop = asyncio.get_running_loop()
            painted = loop.create_future()
            app.call_after_refresh(lambda: painted.done() or painted.set_result(time.time()))
            result["settled_s"] = await asyncio.wait_for(painted, 30) - started
            if full_scan and kind == "names-cold":
                await app.workers.wait_for_complete([w for w in app.workers if w.group == "scan"])
                result["all_read_s"] = time.time() - started
            result["rows"] = len(app.index.rows)
            print(json.dumps(result), flush=True)
            os._exit(0)  # the background scan of a cold open need not finish

    asyncio.run(run())


def report_first_names(dataset: Path, runs: int, full_scan: bool) -> None:
    """Print first-names times, cold and warm, against the bare walk.

    The package is byte-compiled first, as an installed one is: a checkout run with
    ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module at each start."""
    import compileall
    import shutil

    compileall.compile_dir(str(ROOT / "fluxgym_coach"), quiet=1)

    from fluxgym_coach.store import STORE_DIRNAME

    def child(kind: str) -> dict[str, float]:
        env = dict(os.environ, FLUXGYM_COACH_CACHE_DIR=str(dataset.parent / "cache"))
        started = time.time()
        args = [sys.executable, __file__, "--child", kind, "--dataset", str(dataset),
                "--started", repr(started)] + (["--full-scan"] if full_scan else [])
        out = subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=900)
        if out.returncode:
            raise RuntimeError(f"bench child {kind} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    load_before = os.getloadavg()[0]
    walk = [child("walk") for _ in range(runs)]
    warm = [child("names-warm") for _ in range(runs)]
    cold = []
    for _ in range(runs):
        shutil.rmtree(dataset / STORE_DIRNAME, ignore_errors=True)
        cold.append(child("names-cold"))
    w, c, b = (statistics.median(r["names_s"] for r in x) for x in (warm, cold, walk))
    ws, cs = (statistics.median(r["settled_s"] for r in x) for x in (warm, cold))
    print(f"first names     : cold (no store) {c:.2f} s ({int(cold[0]['rows_then'])} rows listed)   "
          f"reopen {w:.2f} s   bare os.scandir walk in a fresh process {b:.2f} s   "
          f"ratio cold {c / b:.1f}x, reopen {w / b:.1f}x   (target < 1 s)")
    wc, cc, bc = (statistics.median(r["names_cpu_s"] for r in x) for x in (warm, cold, walk))
    print(f"  CPU of the process until then: cold {cc:.2f} s, reopen {wc:.2f} s, walk {bc:.2f} s   "
          f"next refresh after them (start-up work behind the first paint done): "
          f"cold {cs:.2f} s, reopen {ws:.2f} s")
    print(f"  load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
          f"({os.cpu_count()} CPUs)")
    if full_scan:
        print(f"  cold open, every image read: {statistics.median(r['all_read_s'] for r in cold):.1f} s")
    shutil.rmtree(dataset / STORE_DIRNAME, ignore_errors=True)  # the next run scans again


def run_child(kind: str, dataset: Path, moves: int) -> dict[str, float]:
    from fluxgym_coach.dataset import Dataset

    with Dataset(dataset) as ds:  # every child starts at the top, all images shown
        ds.store.set_setting("tui.state", {})
    env = dict(os.environ, FLUXGYM_COACH_CACHE_DIR=str(dataset.parent / "cache"))
    started = time.time()
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--dataset", str(dataset),
                          "--moves", str(moves), "--started", repr(started)],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise RuntimeError(f"bench child {kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def report_preview_switch(dataset: Path, switches: int, runs: int,
                          empty: list[dict[str, float]]) -> None:
    """Print the cached preview switch of the app against the fixed-wait baseline."""
    now = [run_child("preview", dataset, switches) for _ in range(runs)]
    fixed = [run_child("preview-fixed", dataset, switches) for _ in range(runs)]
    n, f = (statistics.median(r["median_ms"] for r in x) for x in (now, fixed))
    floor = statistics.median(r["k2p_rested_ms"] for r in empty)
    print(f"preview switch  : {n:.1f} ms (max {statistics.median(r['max_ms'] for r in now):.1f}) "
          f"key -> preview painted, thumbnail in memory   fixed 150 ms wait {f:.1f} ms   "
          f"ratio {n / f:.2f}x   empty app key to paint {floor:.1f} ms   (target <= 100 ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "_work" / "tui")
    ap.add_argument("--moves", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--preview-switch", type=int, default=30, metavar="N",
                    help="cached preview switches to time (0: skip)")
    ap.add_argument("--first-names", action="store_true",
                    help="only time the first names shown, cold and on reopen (item 5)")
    ap.add_argument("--full-scan", action="store_true",
                    help="with --first-names: also time the cold open's whole scan")
    ap.add_argument("--child", choices=("empty", "app", "preview", "preview-fixed", "walk",
                                        "names-cold", "names-warm"))
    ap.add_argument("--dataset")
    ap.add_argument("--started", type=float)
    args = ap.parse_args()
    if args.child == "walk":
        walk_child(args.dataset, args.started)
        return
    if args.child in ("names-cold", "names-warm"):
        names_child(args.child, args.dataset, args.started, args.full_scan)
        return
    if args.child in ("preview", "preview-fixed"):
        preview_child(args.child, args.dataset, args.moves)
        return
    if args.child:
        child(args.child, args.dataset, args.moves, args.started)
        return

    dataset = args.workdir / f"dataset-{args.count}"
    t0 = time.perf_counter()
    generate(dataset, args.count)
    from fluxgym_coach.dataset import Dataset

    with Dataset(dataset) as ds:
        report = ds.scan()
    print(f"dataset: {args.count} images in {dataset} (prepared in {time.perf_counter() - t0:.1f} s; "
          f"scan added {len(report.added)}, unchanged {report.unchanged})")
    if args.first_names:
        report_first_names(dataset, args.runs, args.full_scan)
        return

    empty = [run_child("empty", dataset, args.moves) for _ in range(args.runs)]
    if args.preview_switch:
        report_preview_switch(dataset, args.preview_switch, args.runs, empty)
    app = [run_child("app", dataset, args.moves) for _ in range(args.runs)]

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    e_paint, a_paint = med(empty, "paint"), med(app, "paint")
    e_move, a_move = med(empty, "move_ms"), med(app, "move_ms")
    e_movec, a_movec = med(empty, "move_cpu_ms"), med(app, "move_cpu_ms")
    e_page, a_page = med(empty, "page_ms"), med(app, "page_ms")
    e_pagec, a_pagec = med(empty, "page_cpu_ms"), med(app, "page_cpu_ms")
    e_mem, a_mem = med(empty, "maxrss_mb"), med(app, "maxrss_mb")
    print(f"rows in the list: {int(app[0]['rows'])}")
    print(f"first paint     : app {a_paint:.2f} s   empty Textual app {e_paint:.2f} s   "
          f"ratio {a_paint / e_paint:.2f}x   (target < 2 s)")
    print(f"cursor move     : app {a_move:.1f} ms  empty app key press {e_move:.1f} ms   "
          f"ratio {a_move / e_move:.2f}x   (wall, incl. the Pilot's idle wait; target < 50 ms)")
    print(f"key to paint    : app {med(app, 'k2p_held_ms'):.1f} ms held down (30/s), "
          f"{med(app, 'k2p_rested_ms'):.1f} ms rested (max {med(app, 'k2p_rested_max_ms'):.1f})   "
          f"empty app {med(empty, 'k2p_held_ms'):.1f} / {med(empty, 'k2p_rested_ms'):.1f} ms   "
          f"(key event in -> refresh done; target < 50 ms)")
    print(f"  CPU per move  : app {a_movec:.1f} ms  empty app {e_movec:.1f} ms   "
          f"ratio {a_movec / e_movec:.2f}x")
    print(f"page down       : app {a_page:.1f} ms  empty app key press {e_page:.1f} ms   "
          f"ratio {a_page / e_page:.2f}x")
    print(f"  CPU per page  : app {a_pagec:.1f} ms  empty app {e_pagec:.1f} ms   "
          f"ratio {a_pagec / e_pagec:.2f}x")
    print(f"filter 10k rows : {med(app, 'filter_ms'):.1f} ms (one key press, list redrawn)")
    if "plugin_tasks_s" in app[0]:
        print(f"plugin tasks    : {med(app, 'plugin_tasks_s'):.1f} s after start (waited for before "
              f"the moves)")
    print(f"peak memory     : app {a_mem:.0f} MB   empty app {e_mem:.0f} MB   "
          f"ratio {a_mem / e_mem:.2f}x   (target < 300 MB)")


if __name__ == "__main__":
    main()
