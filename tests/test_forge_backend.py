"""ForgeBackend driven by pipeline.run_enhance against fake Forge servers (real HTTP):
pre-flight checks, sizes, colorization, cache, short batches, pools, resume, interrupt."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PIL import Image

from fluxgym_coach import imaging
from fluxgym_coach.enhance.backends.base import BackendError, EnhanceParams, get_enhance_backend
from fluxgym_coach.enhance.backends.forge import ForgeBackend, ForgeUnreachable, output_size
from fluxgym_coach.events import ItemDone
from fluxgym_coach.cache import ImageCache
from fluxgym_coach.enhance.job import Source, run_enhance
from fluxgym_coach.store import Store

FAST = {"backoff": 0.001, "max_backoff": 0.01}


def backend_for(*servers, **kw) -> ForgeBackend:
    return ForgeBackend([s if isinstance(s, str) else s.url for s in servers], **{**FAST, **kw})


def sources_of(paths: list[Path]) -> list[Source]:
    return [Source(p.name, p) for p in paths]


def run(sources, backend, params, cache, **kw):
    async def go():
        try:
            return await run_enhance(sources, backend, params, cache, **kw)
        finally:
            await backend.aclose()
    return asyncio.run(go())


def is_gray(path: Path) -> bool:
    return imaging.is_grayscale_rgb(imaging.load_upright_rgb(path))


async def test_check_resolves_the_seed_spelling_and_rejects_unknown_names(fake_forge):
    backend = backend_for(fake_forge)
    await backend.check(EnhanceParams(upscaler="R-ESRGAN_4x+", sampler_name="DPM++ 2M Karras"))
    assert backend.upscaler == "R-ESRGAN 4x+" and backend.sampler == "DPM++ 2M Karras"
    assert any("R-ESRGAN_4x+" in w for w in backend.warnings)
    with pytest.raises(BackendError, match=r"unknown upscaler 'ESRGAN 8x'.*closest: ESRGAN_4x"):
        await backend.check(EnhanceParams(upscaler="ESRGAN 8x"))
    with pytest.raises(BackendError, match=r"unknown sampler 'Eulr a'.*Euler a"):
        await backend.check(EnhanceParams(upscaler="Lanczos", sampler_name="Eulr a"))
    # the sampler is only checked when colorizing
    await backend.check(EnhanceParams(upscaler="Lanczos", sampler_name="Eulr a", colorize=False))
    await backend.aclose()
    assert fake_forge.job_requests == 0


async def test_check_fails_fast_when_no_server_answers(unused_tcp_port):
    backend = ForgeBackend(f"http://127.0.0.1:{unused_tcp_port}", retries=1)
    with pytest.raises(ForgeUnreachable, match="no Forge/A1111 server answered"):
        await backend.check(EnhanceParams())
    await backend.aclose()


async def test_check_reports_refused_credentials(make_fake_forge):
    server = make_fake_forge(auth="bob:hunter22")
    backend = backend_for(server, api_auth="bob:nope")
    with pytest.raises(BackendError, match="refused the credentials") as info:
        await backend.check(EnhanceParams())
    assert "hunter22" not in str(info.value) and "nope" not in str(info.value)
    await backend.aclose()


def test_get_enhance_backend_builds_a_pool():
    backend = get_enhance_backend("forge", api_url=["http://127.0.0.1:1", "http://u:p@127.0.0.1:2/"],
                                  api_auth=None)
    assert isinstance(backend, ForgeBackend)
    assert backend.urls == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert backend.concurrency == 4
    asyncio.run(backend.aclose())


def test_enhance_sizes_colorize_and_cache(fake_forge, small_images, tmp_path):
    cache = ImageCache(tmp_path / "cache")
    params = EnhanceParams(scale_factor=2, upscaler="R-ESRGAN 4x+")
    report = run(sources_of(small_images), backend_for(fake_forge, max_batch=2, per_server=1),
                 params, cache)
    assert not report.failed
    for path in small_images:
        o = report.outcomes[path.name]
        w, h = Image.open(path).size
        assert o.status == "enhanced"
        assert o.size == output_size(w, h, 2)
        assert Image.open(o.entry.path).size == o.size
    bw = report.outcomes["bw.png"]
    assert bw.kind == "colorize+upscale" and not is_gray(bw.entry.path)
    assert fake_forge.jobs_by_path["/sdapi/v1/img2img"] == 1
    # 5 images in chunks of at most 2 -> 3 extras requests
    assert report.backend_requests == 1 + 3
    fake_forge.reset_counters()
    again = run(sources_of(small_images), backend_for(fake_forge), params, cache)
    assert {o.status for o in again.outcomes.values()} == {"cached"}
    assert fake_forge.job_requests == 0


def test_colorization_seed_is_derived_from_the_image_so_a_recompute_matches(
        fake_forge, small_images, tmp_path):
    from tests.fixtures_forge import draw_image
    bw2 = draw_image(tmp_path / "in" / "bw2.png", (30, 30), gray=True, seed=7)
    sources = [Source(p.name, p) for p in (small_images[-1], bw2)]
    params = EnhanceParams(scale_factor=1, colorize=True)
    first = run(sources, backend_for(fake_forge), params, ImageCache(tmp_path / "c1"))
    again = run(sources, backend_for(fake_forge), params, ImageCache(tmp_path / "c2"))
    assert not first.failed and not again.failed
    seeds = fake_forge.img2img_seeds
    assert len(seeds) == 4 and -1 not in seeds
    assert sorted(seeds[:2]) == sorted(seeds[2:])  # same images, same seeds after a cache clear
    assert seeds[0] != seeds[1]  # but not one seed for every image
    digests = {first.outcomes[s.name].digest for s in sources}
    assert set(seeds[:2]) == {int(d[:8], 16) & 0x7FFFFFFF for d in digests}
    fake_forge.reset_counters()
    run(sources, backend_for(fake_forge, seed=42), params, ImageCache(tmp_path / "c3"))
    assert fake_forge.img2img_seeds == [42, 42]


def test_no_colorize_and_jpeg_output(fake_forge, small_images, tmp_path):
    params = EnhanceParams(scale_factor=1.5, upscaler="Lanczos", colorize=False, output_format="JPEG")
    report = run(sources_of(small_images), backend_for(fake_forge), params,
                 ImageCache(tmp_path / "cache"))
    bw = report.outcomes["bw.png"]
    assert bw.kind == "upscale" and is_gray(bw.entry.path)
    assert all(Image.open(o.entry.path).format == "JPEG" for o in report.outcomes.values())
    assert "/sdapi/v1/img2img" not in fake_forge.jobs_by_path


def test_short_batch_fails_only_the_missing_images_and_a_rerun_finishes_them(fake_forge, small_images,
                                                                             tmp_path):
    cache = ImageCache(tmp_path / "cache")
    params = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)
    fake_forge.faults.truncate_batch = 1
    paths = small_images[:4]
    report = run(sources_of(paths), backend_for(fake_forge, max_batch=4, per_server=1), params,
                 cache)
    failed = [o.name for o in report.failed]
    assert failed == ["c3.png"]
    assert "returned 3 of 4 images" in report.outcomes["c3.png"].reason
    for name in ("c0.png", "c1.png", "c2.png"):    # mapped by order, sizes verified
        w, h = Image.open(paths[int(name[1])]).size
        assert report.outcomes[name].size == output_size(w, h, 2)
    fake_forge.faults.truncate_batch = 0
    fake_forge.reset_counters()
    again = run(sources_of(paths), backend_for(fake_forge, max_batch=4), params, cache)
    assert not again.failed and again.outcomes["c3.png"].status == "enhanced"
    assert fake_forge.images_processed == 1


def test_batch_rejected_with_500_is_retried_then_failed_once_not_image_by_image(fake_forge, small_images,
                                                                               tmp_path):
    fake_forge.faults.fail_on = {1, 2}
    params = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)
    report = run(sources_of(small_images[:3]), backend_for(fake_forge, max_batch=3, retries=2, per_server=1),
                 params, ImageCache(tmp_path / "cache"))
    assert len(report.failed) == 3
    assert all("simulated failure of job 2" in o.reason for o in report.failed)
    assert fake_forge.jobs_by_path == {"/sdapi/v1/extra-batch-images": 2}


def test_pool_spreads_work_and_skips_a_dead_url(make_fake_forge, small_images, tmp_path,
                                                unused_tcp_port):
    a, b = make_fake_forge(), make_fake_forge()
    a.faults.job_latency = b.faults.job_latency = 0.05
    dead = f"http://127.0.0.1:{unused_tcp_port}"
    backend = backend_for(a, dead, b, max_batch=1, retries=1)
    params = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)
    report = run(sources_of(small_images), backend, params, ImageCache(tmp_path / "cache"))
    assert not report.failed and len(report.by_status("enhanced")) == 5
    assert a.job_requests >= 1 and b.job_requests >= 1
    assert a.job_requests + b.job_requests == 5
    assert any("unreachable" in w for w in backend.warnings)


def test_pool_moves_a_crashed_servers_work_to_the_others(make_fake_forge, tmp_path):
    from tests.fixtures_forge import draw_image
    paths = [draw_image(tmp_path / "in" / f"i{i}.png", (24, 16), seed=i) for i in range(8)]
    a, b = make_fake_forge(), make_fake_forge()
    a.faults.image_latency = b.faults.image_latency = 0.05
    backend = backend_for(a, b, max_batch=1, retries=2)
    params = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)

    def kill_a_after_first(event):
        if isinstance(event, ItemDone) and not a.dead:
            a.kill()

    report = run(sources_of(paths), backend, params, ImageCache(tmp_path / "cache"),
                 on_event=kill_a_after_first)
    assert a.dead
    assert not report.failed, [o.reason for o in report.failed]
    assert len(report.by_status("enhanced")) == 8
    assert any("stopped answering" in w for w in backend.warnings)
    assert b.images_processed >= 6


def test_interrupted_job_resumes_without_redoing_finished_images(fake_forge, tmp_path):
    from tests.fixtures_forge import draw_image
    paths = [draw_image(tmp_path / "in" / f"i{i}.png", (24, 16), seed=i) for i in range(6)]
    fake_forge.faults.image_latency = 0.05
    store = Store(tmp_path / "jobs.sqlite")
    cache = ImageCache(tmp_path / "cache")
    params = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)
    cancel = asyncio.Event()

    def stop_after_two(event, seen=[]):
        if isinstance(event, ItemDone):
            seen.append(event.item)
            if len(seen) == 2:
                cancel.set()

    first = run(sources_of(paths), backend_for(fake_forge, max_batch=2), params, cache, store=store,
                on_event=stop_after_two, cancel=cancel)
    assert first.cancelled and not first.failed
    done_first = {o.name for o in first.outcomes.values() if o.status == "enhanced"}
    assert 2 <= len(done_first) < 6
    assert fake_forge.interrupts >= 1
    fake_forge.reset_counters()
    # lookup=False (--force-reprocess): only the journal can know what was finished
    second = run(sources_of(paths), backend_for(fake_forge, max_batch=2), params, cache, store=store,
                 lookup=False)
    assert not second.cancelled and not second.failed
    assert {o.name for o in second.outcomes.values() if o.status == "cached"} == done_first
    assert fake_forge.images_processed == 6 - len(done_first)
    store.close()


def test_task_cancellation_like_ctrl_c_interrupts_the_server(fake_forge, tmp_path):
    from tests.fixtures_forge import draw_image
    paths = [draw_image(tmp_path / "in" / f"i{i}.png", (24, 16), seed=i) for i in range(4)]
    fake_forge.faults.image_latency = 0.2
    store = Store(tmp_path / "jobs.sqlite")
    params = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)

    async def go():
        backend = backend_for(fake_forge, max_batch=4)
        task = asyncio.create_task(run_enhance(sources_of(paths), backend, params,
                                               ImageCache(tmp_path / "cache"), store=store))
        while fake_forge.progress()["state"]["job"] == "":
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await backend.aclose()

    asyncio.run(go())
    assert fake_forge.interrupts >= 1  # one more if our second request was queued there
    assert store.execute("SELECT status FROM jobs")[0]["status"] == "cancelled"
    store.close()


def _one_running_one_queued(fake_forge, tmp_path: Path) -> list[Path]:
    """Nine inputs; with max_batch=4 and two requests per server the first chunk
    (1 image) runs while the second (4 images) waits in the server's queue."""
    from tests.fixtures_forge import draw_image
    fake_forge.faults.image_latency = 0.5
    return [draw_image(tmp_path / "in" / f"q{i}.png", (24, 16), seed=i) for i in range(9)]


async def _until_one_runs_and_one_waits(fake_forge) -> None:
    while fake_forge.job_requests < 2 or fake_forge.progress()["state"]["job"] == "":
        await asyncio.sleep(0.01)


def _until_idle(fake_forge, quiet: float = 0.3, limit: float = 20.0) -> None:
    import time
    end, idle_since = time.monotonic() + limit, None
    while time.monotonic() < end:
        if fake_forge.progress()["state"]["job"] == "":
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= quiet:
                return
        else:
            idle_since = None
        time.sleep(0.02)
    raise AssertionError("the fake server never went idle")


def _cancel_when(make_backend, paths: list[Path], tmp_path: Path, started):
    """Upscale ``paths`` x2 on ``make_backend()``; set the job's cancel event as soon
    as the coroutine ``started()`` returns; return the report."""
    cancel = asyncio.Event()
    params = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)

    async def go():
        backend = make_backend()
        job = asyncio.create_task(run_enhance(sources_of(paths), backend, params,
                                              ImageCache(tmp_path / "cache"), cancel=cancel))
        await started()
        cancel.set()
        report = await job
        await backend.aclose()
        return report

    return asyncio.run(go())


def test_cancel_also_stops_our_request_queued_on_the_server(fake_forge, tmp_path):
    paths = _one_running_one_queued(fake_forge, tmp_path)
    report = _cancel_when(lambda: backend_for(fake_forge, max_batch=4, per_server=2), paths, tmp_path,
                          lambda: _until_one_runs_and_one_waits(fake_forge))
    assert report.cancelled and not report.failed
    assert fake_forge.job_requests == 2
    # one interrupt for the running job, one for the queued job once it started;
    # a single interrupt would let the queued 4-image job run whole
    assert fake_forge.interrupts >= 2
    assert fake_forge.images_processed <= 1


def test_ctrl_c_also_stops_our_request_queued_on_the_server(fake_forge, tmp_path):
    paths = _one_running_one_queued(fake_forge, tmp_path)
    params = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)

    async def go():
        backend = backend_for(fake_forge, max_batch=4, per_server=2)
        task = asyncio.create_task(run_enhance(sources_of(paths), backend, params,
                                               ImageCache(tmp_path / "cache")))
        await _until_one_runs_and_one_waits(fake_forge)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await backend.aclose()

    asyncio.run(go())
    _until_idle(fake_forge)  # the server finishes whatever was left to it
    assert fake_forge.job_requests == 2
    assert fake_forge.interrupts >= 2
    assert fake_forge.images_processed <= 1


def test_progress_moves_inside_a_long_batch(fake_forge, tmp_path):
    from fluxgym_coach.events import InFlightProgress
    from tests.fixtures_forge import draw_image
    paths = [draw_image(tmp_path / "in" / f"p{i}.png", (24, 16), seed=i) for i in range(6)]
    fake_forge.faults.image_latency = 0.3
    seen: list[tuple[float, int]] = []
    first_done: list[int] = []

    def sink(event):
        if isinstance(event, InFlightProgress):
            seen.append((event.items, fake_forge.images_processed))
        elif isinstance(event, ItemDone) and not first_done:
            first_done.append(len(seen))

    params = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)
    report = run(sources_of(paths), backend_for(fake_forge, max_batch=8, per_server=1), params,
                 ImageCache(tmp_path / "cache"), on_event=sink, progress_interval=0.05)
    assert len(report.by_status("enhanced")) == 6 and fake_forge.job_requests == 1
    during = [items for items, _ in seen[:first_done[0]]]  # one request of 6, still running
    while during and during[-1] == 0:  # the job ended on the server, results not stored yet
        during.pop()
    assert len(set(during)) >= 3 and all(0 < x < 6 for x in during)
    assert during == sorted(during)
    assert all(items <= processed for items, processed in seen)  # never ahead of the server


async def test_progress_ignores_a_job_that_is_not_ours(fake_forge):
    from tests.test_forge_client import client, png
    fake_forge.faults.image_latency = 0.6
    backend = backend_for(fake_forge)
    items = [imaging_item(f"o{i}.png") for i in range(3)]
    params = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)
    async with client(fake_forge) as other:  # another client's 5-image job runs first
        theirs = asyncio.create_task(other.extra_batch_images([png()] * 5, **other.extras_fields(2, "Lanczos")))
        while fake_forge.progress()["state"]["job_no"] < 2:
            await asyncio.sleep(0.01)
        ours = asyncio.create_task(backend.upscale(items, params))
        while fake_forge.job_requests < 2:
            await asyncio.sleep(0.01)
        assert await backend.progress_in_flight() == 0  # job_count 5 is not our batch of 3
        await theirs
        while fake_forge.progress()["state"]["job_no"] < 2:  # our 2nd image started: 1 done
            await asyncio.sleep(0.01)
        assert await backend.progress_in_flight() in (1, 2)
        await ours
    assert await backend.progress_in_flight() == 0
    await backend.aclose()


def imaging_item(name: str):
    from fluxgym_coach.enhance.backends.base import EnhanceItem
    from tests.test_forge_client import png
    data = png()
    im = imaging.open_image(data)
    return EnhanceItem(name, data, imaging.digest_bytes(data), im.width, im.height, 2.0)


def _thumb_diff(a: Path, b: Path) -> float:
    import numpy as np
    ta = np.asarray(imaging.load_upright_rgb(a).convert("L").resize((16, 16)), dtype=float)
    tb = np.asarray(imaging.load_upright_rgb(b).convert("L").resize((16, 16)), dtype=float)
    return float(np.abs(ta - tb).mean())


@pytest.mark.parametrize("skip_index", [0, 1, 3])
def test_a_skipped_item_in_a_batch_is_found_by_content_not_position(fake_forge, tmp_path, skip_index):
    from tests.fixtures_forge import draw_image
    # same size, different pictures: a positional mapping would silently mix them up
    paths = [draw_image(tmp_path / "in" / f"p{i}.png", (32, 24), seed=i * 3, gray=False)
             for i in range(4)]
    fake_forge.faults.skip_index = skip_index
    params = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)
    report = run(sources_of(paths), backend_for(fake_forge, max_batch=4, per_server=1), params,
                 ImageCache(tmp_path / "cache"))
    assert [o.name for o in report.failed] == [f"p{skip_index}.png"]
    assert "returned 3 of 4 images" in report.failed[0].reason
    for p in paths:
        o = report.outcomes[p.name]
        if o.status == "enhanced":
            own = _thumb_diff(p, o.entry.path)
            others = [_thumb_diff(q, o.entry.path) for q in paths if q != p]
            assert own < min(others)


async def test_skip_endpoint_drops_the_current_item(fake_forge):
    from tests.test_forge_client import client, png
    fake_forge.faults.image_latency = 0.2
    async with client(fake_forge) as c:
        job = asyncio.create_task(c.extra_batch_images([png()] * 3, **c.extras_fields(2, "Lanczos")))
        while fake_forge.progress()["state"]["job"] == "":
            await asyncio.sleep(0.01)
        await c.skip()
        assert (await c.progress())["state"]["skipped"] is True
        outs = await job
    assert len(outs) == 2


def test_first_and_last_chunks_are_small_the_others_full(fake_forge, tmp_path):
    from tests.fixtures_forge import draw_image
    paths = [draw_image(tmp_path / "in" / f"i{i}.png", (16, 16), seed=i) for i in range(13)]
    sizes: list[int] = []

    class Recording(ForgeBackend):
        async def upscale(self, items, params):
            sizes.append(len(items))
            return await super().upscale(items, params)

    params = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)
    report = run(sources_of(paths), Recording(fake_forge.url, max_batch=4, **FAST), params,
                 ImageCache(tmp_path / "cache"))
    assert len(report.by_status("enhanced")) == 13
    assert sum(sizes) == 13 and fake_forge.images_processed == 13
    assert sizes[0] == 1 and sizes[-1] == 1 and max(sizes) == 4
    assert sizes.count(4) == 2


async def test_a_pool_member_without_the_api_is_left_out(fake_forge):
    import http.server
    import threading
    class NoApi(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - a WebUI started without --api: /sdapi is a 404
            body = b'{"detail":"Not Found"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoApi)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        backend = backend_for(f"http://127.0.0.1:{httpd.server_address[1]}", fake_forge)
        await backend.check(EnhanceParams(upscaler="Lanczos"))
        assert [s.alive for s in backend.servers] == [False, True]
        assert backend.concurrency == 2
        alone = backend_for(f"http://127.0.0.1:{httpd.server_address[1]}")
        with pytest.raises(BackendError, match="does not exist: start Forge/A1111 with --api"):
            await alone.check(EnhanceParams(upscaler="Lanczos"))
        await alone.aclose()
        await backend.aclose()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_cancel_interrupts_only_servers_running_our_jobs(make_fake_forge, tmp_path):
    from tests.fixtures_forge import draw_image
    paths = [draw_image(tmp_path / "in" / f"i{i}.png", (24, 16), seed=i) for i in range(2)]
    busy, idle = make_fake_forge(), make_fake_forge()
    busy.faults.image_latency = 0.3

    async def busy_started():
        while busy.progress()["state"]["job"] == "":
            await asyncio.sleep(0.01)

    report = _cancel_when(lambda: backend_for(busy, idle, max_batch=8), paths, tmp_path, busy_started)
    assert report.cancelled and not report.failed
    assert busy.interrupts == 1 and idle.interrupts == 0
    assert idle.job_requests == 0


def test_a_failing_progress_poll_never_stops_the_job(fake_forge, tmp_path, caplog):
    from tests.fixtures_forge import draw_image
    paths = [draw_image(tmp_path / "in" / f"b{i}.png", (24, 16), seed=i) for i in range(3)]
    fake_forge.faults.image_latency = 0.2

    class Broken(ForgeBackend):
        async def progress_in_flight(self) -> float:
            raise ValueError("a server answering nonsense")

    params = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)
    report = run(sources_of(paths), Broken(fake_forge.url, **FAST), params, ImageCache(tmp_path / "c"),
                 progress_interval=0.05)
    assert len(report.by_status("enhanced")) == 3
    assert "progress from" in caplog.text and "the job goes on" in caplog.text
