"""pipeline.py with the embedded backend: sizes, cache, journal resume, short batches."""

from __future__ import annotations

import asyncio

from fluxgym_coach.enhance.backends.base import BackendError, EnhanceParams
from fluxgym_coach.enhance.backends.local import LocalBackend
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.events import ItemDone
from fluxgym_coach.cache import ImageCache
from fluxgym_coach.enhance.job import COLORIZE_SKIPPED, run_enhance
from fluxgym_coach.export.prepare import source_of
from tests.helpers_images import photo_like, save


class CountingBackend(LocalBackend):
    """The real local backend, counting the requests it serves."""

    max_batch = 2

    def __init__(self):
        super().__init__()
        self.calls = 0

    async def upscale(self, items, params):
        self.calls += 1
        return await super().upscale(items, params)


class ShortBatchBackend(CountingBackend):
    """Drops the last result of every batch, as a server does on /interrupt."""

    async def upscale(self, items, params):
        return (await super().upscale(items, params))[:-1]


def _dataset(tmp_path, n=6, gray=()):
    root = tmp_path / "ds"
    for i in range(n):
        save(photo_like((200 + 10 * i, 150), seed=i, gray=i in gray), root / f"img{i}.png")
    ds = Dataset(root)
    ds.scan()
    return ds


def test_upscale_to_target_short_side_then_all_from_cache(tmp_path):
    ds = _dataset(tmp_path)
    sources = [source_of(ds, r) for r in ds.images()]
    backend, cache = CountingBackend(), ImageCache(tmp_path / "cache")
    params = EnhanceParams(target_short_side=512)
    report = asyncio.run(run_enhance(sources, backend, params, cache, store=ds.store))
    assert len(report.by_status("enhanced")) == 6 and backend.calls == 3
    for o in report.outcomes.values():
        assert min(o.size) >= 512 and o.entry.path.is_file()
    again = asyncio.run(run_enhance(sources, backend, params, cache, store=ds.store))
    assert len(again.by_status("cached")) == 6 and backend.calls == 3 and again.backend_requests == 0


def test_grayscale_with_local_backend_is_reported_not_silently_passed(tmp_path):
    ds = _dataset(tmp_path, n=2, gray=(1,))
    sources = [source_of(ds, r) for r in ds.images()]
    report = asyncio.run(run_enhance(sources, LocalBackend(), EnhanceParams(scale_factor=2),
                                     ImageCache(tmp_path / "c")))
    assert report.outcomes["img1.png"].warnings == [COLORIZE_SKIPPED]
    assert report.outcomes["img0.png"].warnings == []
    assert report.outcomes["img1.png"].status == "enhanced"


def test_interrupted_job_resumes_without_redoing_finished_images(tmp_path):
    ds = _dataset(tmp_path)
    sources = [source_of(ds, r) for r in ds.images()]
    cache = ImageCache(tmp_path / "cache")
    params = EnhanceParams(scale_factor=2)
    cancel = asyncio.Event()

    def stop_after_first(event):
        if isinstance(event, ItemDone):
            cancel.set()

    first_backend = CountingBackend()
    first = asyncio.run(run_enhance(sources, first_backend, params, cache, store=ds.store,
                                    on_event=stop_after_first, cancel=cancel))
    assert first.cancelled
    finished = {o.name for o in first.by_status("enhanced")}
    assert 1 <= len(finished) < 6
    # lookup=False: only the journal can say which images are done
    second_backend = CountingBackend()
    second = asyncio.run(run_enhance(sources, second_backend, params, cache, lookup=False, store=ds.store))
    assert not second.cancelled
    assert {o.name for o in second.by_status("cached")} == finished
    assert len(second.by_status("enhanced")) == 6 - len(finished)
    # a finished job is closed: the same command now recomputes everything (force semantics)
    third = asyncio.run(run_enhance(sources, CountingBackend(), params, cache, lookup=False, store=ds.store))
    assert len(third.by_status("enhanced")) == 6


def test_short_batch_fails_the_batch_instead_of_mixing_results(tmp_path):
    ds = _dataset(tmp_path, n=4)
    sources = [source_of(ds, r) for r in ds.images()]
    report = asyncio.run(run_enhance(sources, ShortBatchBackend(), EnhanceParams(scale_factor=2),
                                     ImageCache(tmp_path / "c")))
    assert len(report.failed) == 4
    assert all("returned 1 results for 2 images" in o.reason for o in report.failed)


def test_unreadable_source_is_an_outcome_not_an_exception(tmp_path):
    ds = _dataset(tmp_path, n=1)
    bad = ds.root / "bad.png"
    bad.write_text("not an image")
    ds.scan()
    sources = [source_of(ds, r) for r in ds.store.images()]
    report = asyncio.run(run_enhance(sources, LocalBackend(), EnhanceParams(scale_factor=2),
                                     ImageCache(tmp_path / "c")))
    assert report.outcomes["bad.png"].status == "failed"
    assert "not an image" in report.outcomes["bad.png"].reason
    assert report.outcomes["img0.png"].status == "enhanced"


def test_colorize_backend_error_type():
    err = BackendError("x", retryable=True)
    assert err.reason == "x" and err.retryable


def test_a_cached_rerun_reads_no_unchanged_file_and_remeasures_a_changed_one(tmp_path, monkeypatch):
    import os

    from fluxgym_coach.enhance import results as enhance_types, job as pipeline
    from fluxgym_coach.enhance.job import Source
    from fluxgym_coach.store import Store
    paths = [save(photo_like((120, 90), seed=i), tmp_path / "in" / f"p{i}.png") for i in range(4)]
    cache, store = ImageCache(tmp_path / "cache"), Store(tmp_path / "journal.sqlite")
    params = EnhanceParams(scale_factor=2, colorize=False)

    def go():
        backend = CountingBackend()
        sources = [Source(p.name, p) for p in paths]
        return asyncio.run(run_enhance(sources, backend, params, cache, store=store)), backend

    first, _ = go()
    assert len(first.by_status("enhanced")) == 4
    reads: list[str] = []
    real_describe, real_digest = enhance_types.describe_source, pipeline.imaging.digest_file
    monkeypatch.setattr(pipeline, "describe_source", lambda s: reads.append(s.name) or real_describe(s))
    monkeypatch.setattr(pipeline.imaging, "digest_file", lambda p: reads.append(str(p)) or real_digest(p))
    again, backend = go()
    assert len(again.by_status("cached")) == 4 and backend.calls == 0
    assert reads == []  # one stat per file, nothing read
    save(photo_like((130, 90), seed=9), paths[1])  # changed: other size and content
    os.utime(paths[1], ns=(1, 1))
    third, backend = go()
    assert third.outcomes["p1.png"].status == "enhanced" and backend.calls == 1
    assert reads == [str(paths[1]), "p1.png"]
