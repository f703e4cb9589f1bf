"""The scan's helpers that need no dataset: its worker pool, its reads and its header pass.

:func:`pool_for` picks worker processes or threads for the scan's reads
(:meth:`fluxgym_coach.dataset.Dataset.scan`); :func:`header_pass` reads the
headers of new images beside those reads, so a front end shows their sizes long
before each image is read in full.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from . import imaging
from .events import EventSink, ItemsFound

#: Below this many images to read, a scan uses threads (no process start-up cost).
PROCESS_MIN_IMAGES = 48


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def pool_for(n_images: int, workers: int | None, processes: bool | None) -> tuple[Executor, int]:
    """The executor a scan reads with: worker processes when the work is large enough
    to pay their start-up (the GIL serialises the Python parts of every measure),
    threads otherwise. ``processes`` forces one or the other."""
    cpus = usable_cpus()
    n = workers or min(8, cpus)
    use_procs = processes if processes is not None else (n > 1 and n_images >= PROCESS_MIN_IMAGES)
    if use_procs:
        import multiprocessing  # here: a front end that never scans starts without it
        from concurrent.futures.process import ProcessPoolExecutor

        ctx = multiprocessing.get_context("forkserver" if "forkserver" in
                                          multiprocessing.get_all_start_methods() else "spawn")
        if ctx.get_start_method() == "forkserver":
            ctx.set_forkserver_preload(["fluxgym_coach.audit.measures"])
        return ProcessPoolExecutor(max_workers=n, mp_context=ctx), n
    return ThreadPoolExecutor(max_workers=n, thread_name_prefix="scan"), n



#: Images per :class:`~fluxgym_coach.events.ItemsFound` event of the header pass.
HEADER_CHUNK = 256


def header_pass(entries: Sequence[Any], on_event: EventSink, job: str, stop: threading.Event) -> None:
    """Read the header of each entry (size, format, EXIF orientation: no decode,
    :func:`fluxgym_coach.imaging.probe`) and emit them in chunks of
    :data:`HEADER_CHUNK` as ``ItemsFound``; stops when ``stop`` is set or the sink
    raises (a cancelled scan). Unreadable files are left to the full read, which
    reports them. Runs on its own thread beside the scan's reads."""
    chunk: dict[str, dict[str, object]] = {}
    try:
        for entry in entries:
            if stop.is_set():
                return
            try:
                with imaging.open_image(entry.path) as im:
                    info = imaging.probe(im)
            except Exception:  # noqa: BLE001 - the full read names the problem
                continue
            chunk[entry.relpath] = {"width": info.width, "height": info.height,
                                    "format": info.format, "orientation": info.orientation}
            if len(chunk) >= HEADER_CHUNK:
                on_event(ItemsFound(job, chunk))
                chunk = {}
        if chunk and not stop.is_set():
            on_event(ItemsFound(job, chunk))
    except Exception:  # noqa: BLE001 - a sink raising (cancel): the reads stop the scan
        return


def measured(to_read: Sequence[Any], measure: Callable[[Any], Any], workers: int | None,
             processes: bool | None) -> Iterator[tuple[Any, Any]]:
    """``(entry, (record, measures))`` for every entry, in order, from the pool of
    :func:`pool_for` (``measure`` run on each). If the worker processes cannot start (a script calling the scan
    without the ``if __name__ == "__main__":`` idiom multiprocessing needs, a
    sandbox without process support), the rest is read with threads. Closing the
    generator drops the queued work."""
    from concurrent.futures.process import BrokenProcessPool, ProcessPoolExecutor

    pool, n_workers = pool_for(len(to_read), workers, processes)
    done = 0
    try:
        try:
            if isinstance(pool, ProcessPoolExecutor):
                chunk = max(1, min(16, len(to_read) // (4 * n_workers)))
                results = pool.map(measure, to_read, chunksize=chunk)
            else:
                results = pool.map(measure, to_read)
            for res in results:
                yield to_read[done], res
                done += 1
        except (BrokenProcessPool, OSError):
            if not isinstance(pool, ProcessPoolExecutor):
                raise
            pool.shutdown(wait=False, cancel_futures=True)
            pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="scan")
            for res in pool.map(measure, to_read[done:]):
                yield to_read[done], res
                done += 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
