"""What goes to a Forge server and what comes back (issue 11 items 1, 4-7): our own 8-bit
uploads, results checked by content, interrupted jobs, errors that never succeed."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from fluxgym_coach.enhance import server_io
from fluxgym_coach.enhance.backends.base import EnhanceParams
from fluxgym_coach.enhance.backends.forge import ForgeBackend, ForgeClient, resolve_sampler
from fluxgym_coach.events import ItemDone
from fluxgym_coach.cache import ImageCache
from fluxgym_coach.enhance.job import Source, run_enhance
from fluxgym_coach.store import Store
from fluxgym_coach.testing.fake_forge import SAMPLERS
from tests.fixtures_forge import draw_image

FAST = {"backoff": 0.001, "max_backoff": 0.01}
LANCZOS = EnhanceParams(scale_factor=2, upscaler="Lanczos", colorize=False)


def backend_for(server, **kw) -> ForgeBackend:
    return ForgeBackend(server.url, **{**FAST, **kw})


def run(sources, backend, params, cache, **kw):
    async def go():
        try:
            return await run_enhance(sources, backend, params, cache, **kw)
        finally:
            await backend.aclose()
    return asyncio.run(go())


def gradient16(path, size=(48, 40), bits=16):
    """A 16-bit grayscale PNG (I;16) with a diagonal gradient and a bright disc."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    top = 2 ** bits - 1
    arr = ((0.1 + 0.7 * (x + y) / (w + h - 2)) * top).astype(np.uint16)
    arr[(x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(w, h) / 4) ** 2] = top
    Image.fromarray(arr).save(path)
    return path


def corr_with_source(src, result_path) -> float:
    return server_io.correlation(server_io.signature(src.read_bytes()),
                                 server_io.signature(result_path.read_bytes()))


# -- item 1: our own conversion --------------------------------------------------------------
def test_server_image_scales_deep_images_by_their_real_range():
    a12 = np.array([[0, 2048, 4095]], dtype=np.uint16)  # a 12-bit scan stored in 16 bits
    im = server_io.server_image(Image.fromarray(a12))
    assert im.mode == "L" and px(im) == [0, 128, 255]
    big = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
    assert px(server_io.server_image(big)) == [0, 128, 255]
    be = Image.frombytes("I;16B", (3, 1), np.array([0, 32768, 65535], dtype=">u2").tobytes())
    assert px(server_io.server_image(be)) == [0, 128, 255]
    i32 = Image.fromarray(np.array([[-100, 0, 100]], dtype=np.int32))
    assert all(abs(a - b) <= 1 for a, b in zip(px(server_io.server_image(i32)), [0, 128, 255]))
    f01 = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert px(server_io.server_image(f01)) == [0, 128, 255]
    fwide = Image.fromarray(np.array([[10.0, 1010.0, 2010.0]], dtype=np.float32))
    assert px(server_io.server_image(fwide)) == [0, 128, 255]


def test_server_image_flattens_alpha_on_white_and_converts_cmyk_and_palette():
    rgba = Image.new("RGBA", (2, 1), (255, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 255, 255))
    out = server_io.server_image(rgba)
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (0, 0, 255)
    la = Image.new("LA", (1, 1), (0, 0))
    assert server_io.server_image(la).mode == "L" and server_io.server_image(la).getpixel((0, 0)) == 255
    cmyk = Image.new("CMYK", (1, 1), (0, 255, 255, 0))
    assert server_io.server_image(cmyk).getpixel((0, 0)) == (255, 0, 0)
    pal = Image.new("P", (1, 1), 0)
    pal.putpalette([0, 200, 0] * 256)
    assert server_io.server_image(pal).convert("RGB").getpixel((0, 0)) == (0, 200, 0)
    png = server_io.server_upload(_png(Image.fromarray(np.full((4, 4), 40000, np.uint16))))
    assert Image.open(io.BytesIO(png)).mode == "L"


def px(im: Image.Image) -> list[int]:
    return [int(v) for v in np.asarray(im).ravel()]


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


async def test_the_fake_converts_a_raw_16_bit_upload_as_forge_does(fake_forge, tmp_path):
    raw = gradient16(tmp_path / "scan16.png").read_bytes()
    async with ForgeClient(fake_forge.url, **FAST) as c:
        fields = ForgeClient.extras_fields(2, "R-ESRGAN 4x+")
        white = await c.extra_single_image(raw, **fields)
        ours = await c.extra_single_image(server_io.server_upload(raw), **fields)
    sig = server_io.signature(white)
    assert sig.std() < 1 and sig.mean() > 246  # Pillow 9.5 clipping: a white picture
    server_io.check_result(server_io.signature(raw), ours)  # our conversion: a real picture


def test_a_16_bit_scan_comes_back_as_a_real_picture(fake_forge, tmp_path):
    src = gradient16(tmp_path / "in" / "scan16.png") if (tmp_path / "in").mkdir() is None else None
    cache = ImageCache(tmp_path / "cache")
    report = run([Source("scan16.png", src)], backend_for(fake_forge),
                 EnhanceParams(scale_factor=2, colorize=False), cache)
    o = report.outcomes["scan16.png"]
    assert o.status == "enhanced", o.reason
    assert corr_with_source(src, o.entry.path) > 0.9


def test_a_flat_result_is_a_named_failure_and_never_cached(fake_forge, tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    src = gradient16(tmp_path / "in" / "scan16.png")
    monkeypatch.setattr(server_io, "server_upload", lambda data: data)  # the old raw upload
    cache = ImageCache(tmp_path / "cache")
    report = run([Source("scan16.png", src)], backend_for(fake_forge),
                 EnhanceParams(scale_factor=2, colorize=False), cache)
    o = report.outcomes["scan16.png"]
    assert o.status == "failed" and "flat image" in o.reason
    assert not list((tmp_path / "cache").rglob("*.png"))


def test_check_result_refuses_an_unrelated_picture(tmp_path):
    a = draw_image(tmp_path / "a.png", (40, 40), seed=1).read_bytes()
    b = np.asarray(Image.open(io.BytesIO(a)).convert("L"))[:, ::-1].T  # rotated: other layout
    with pytest.raises(server_io.ResultCheckError, match="does not look like its source"):
        server_io.check_result(server_io.signature(a), _png(Image.fromarray(b.copy())))


# -- item 4: full batches matched by content ----------------------------------------------------
def _distinct_images(folder, n=4, size=(48, 48)):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        arr = np.zeros((size[1], size[0]), np.uint8)
        arr[:, : size[0] * (i + 1) // (n + 1)] = 230  # a bar of a different width each
        arr[size[1] * i // n: size[1] * (i + 1) // n, :] = 120
        p = folder / f"img{i}.png"
        Image.fromarray(arr).convert("RGB").save(p)
        paths.append(p)
    return paths


def test_a_full_batch_in_another_order_gives_each_image_its_own_result(fake_forge, tmp_path):
    paths = _distinct_images(tmp_path / "in")
    fake_forge.faults.reverse_batch = True
    report = run([Source(p.name, p) for p in paths], backend_for(fake_forge, max_batch=4, per_server=1),
                 LANCZOS, ImageCache(tmp_path / "cache"))
    assert not report.failed
    for p in paths:
        mine = corr_with_source(p, report.outcomes[p.name].entry.path)
        others = [corr_with_source(q, report.outcomes[p.name].entry.path) for q in paths if q != p]
        assert mine > 0.95 and mine > max(others)


def test_match_results_fails_an_input_no_result_resembles(tmp_path):
    paths = _distinct_images(tmp_path / "in", n=3)
    sigs = [server_io.signature(p.read_bytes()) for p in paths]
    assert server_io.match_results(sigs, [sigs[2], sigs[0], sigs[1]]) == [1, 2, 0]
    assert server_io.match_results(sigs[:2], [sigs[0], server_io.flat_signature()]) == [0, None]


# -- item 5: interrupted by someone else -------------------------------------------------------
def test_an_interrupted_single_job_is_not_cached_and_a_rerun_finishes_it(fake_forge, tmp_path):
    (tmp_path / "in").mkdir()
    src = draw_image(tmp_path / "in" / "a.png", (40, 32))
    cache = ImageCache(tmp_path / "cache")
    fake_forge.faults.interrupt_on = {1}
    params = EnhanceParams(scale_factor=2, colorize=False)
    report = run([Source("a.png", src)], backend_for(fake_forge), params, cache)
    o = report.outcomes["a.png"]
    assert o.status == "failed" and "interrupted" in o.reason
    assert not list((tmp_path / "cache").rglob("*.png"))
    fake_forge.faults.interrupt_on = set()
    again = run([Source("a.png", src)], backend_for(fake_forge), params, cache)
    assert again.outcomes["a.png"].status == "enhanced"


def test_an_interrupted_batch_keeps_only_the_images_finished_before(fake_forge, tmp_path):
    paths = _distinct_images(tmp_path / "in", n=3)
    fake_forge.faults.interrupt_on, fake_forge.faults.interrupt_at = {1}, 1
    report = run([Source(p.name, p) for p in paths], backend_for(fake_forge, max_batch=3, per_server=1),
                 LANCZOS, ImageCache(tmp_path / "cache"))
    assert report.outcomes["img0.png"].status == "enhanced"
    for name in ("img1.png", "img2.png"):  # img1 came back as a plain resize: not used
        assert report.outcomes[name].status == "failed"
        assert "cut short" in report.outcomes[name].reason


def test_an_interrupted_colorization_is_not_cached(fake_forge, tmp_path):
    (tmp_path / "in").mkdir()
    src = draw_image(tmp_path / "in" / "bw.png", (40, 32), gray=True)
    fake_forge.faults.interrupt_on = {1}
    report = run([Source("bw.png", src)], backend_for(fake_forge), EnhanceParams(scale_factor=1),
                 ImageCache(tmp_path / "cache"))
    assert report.outcomes["bw.png"].status == "failed"
    assert "interrupted" in report.outcomes["bw.png"].reason


# -- item 6: errors that never succeed ----------------------------------------------------------
def test_an_upscaler_the_server_cannot_load_fails_the_job_once(fake_forge, tmp_path):
    paths = [draw_image(tmp_path / "in" / f"c{i}.png", (24, 24), seed=i) for i in range(13)]
    backend = backend_for(fake_forge, max_batch=8, per_server=1)

    async def go():
        try:
            await backend.check(EnhanceParams(upscaler="R-ESRGAN 4x+", colorize=False))
            fake_forge.upscalers.remove("R-ESRGAN 4x+")  # the model went away since the check
            backend.check = lambda params: asyncio.sleep(0)
            return await run_enhance([Source(p.name, p) for p in paths], backend,
                                     EnhanceParams(upscaler="R-ESRGAN 4x+", colorize=False),
                                     ImageCache(tmp_path / "cache"))
        finally:
            await backend.aclose()

    report = asyncio.run(go())
    assert len(report.failed) == 13
    assert fake_forge.job_requests == 1
    assert all("could not find upscaler named R-ESRGAN 4x+" in o.reason for o in report.failed)


def test_a_persistent_500_fails_each_batch_once_without_image_by_image_retries(fake_forge, tmp_path):
    paths = [draw_image(tmp_path / "in" / f"c{i}.png", (24, 24), seed=i) for i in range(13)]
    fake_forge.faults.fail_on = set(range(1, 200))
    report = run([Source(p.name, p) for p in paths], backend_for(fake_forge, max_batch=8, per_server=1),
                 LANCZOS, ImageCache(tmp_path / "cache"))
    assert len(report.failed) == 13
    assert fake_forge.job_requests == 2 * 3  # two batches, three attempts each
    assert "simulated failure" in report.failed[0].reason
    assert "/sdapi/v1/extra-single-image" not in fake_forge.jobs_by_path


def test_results_are_journaled_as_they_arrive_and_a_hung_server_times_out(fake_forge, tmp_path):
    paths = [draw_image(tmp_path / "in" / f"c{i}.png", (24, 24), seed=i) for i in range(4)]
    fake_forge.faults.hang_on = {2}
    store = Store(tmp_path / "store.db")
    seen: dict[str, str] = {}

    def sink(ev):
        if isinstance(ev, ItemDone):  # already in the journal when the event is sent
            rows = store.execute("SELECT status FROM job_items WHERE item = ?", (ev.item,))
            seen[ev.item] = rows[0]["status"] if rows else "missing"

    report = run([Source(p.name, p) for p in paths],
                 backend_for(fake_forge, max_batch=2, per_server=1, timeout=1.0, retries=1),
                 LANCZOS, ImageCache(tmp_path / "cache"), store=store, on_event=sink)
    assert seen == {"c0.png": "done", "c1.png": "done"}
    failed = sorted(o.name for o in report.failed)
    assert failed == ["c2.png", "c3.png"]
    assert "--timeout (now 1 s)" in report.outcomes["c2.png"].reason


async def test_a_reset_from_a_server_that_was_answering_names_the_real_cause(fake_forge):
    async with ForgeClient(fake_forge.url, retries=1, **FAST) as c:
        await c.upscalers()
        fake_forge.faults.drop_on = {1}
        with pytest.raises(Exception, match="closed the connection") as info:
            await c.interrogate(_png(Image.new("RGB", (8, 8))))
    assert "--api" not in str(info.value)


# -- item 7: schedulers ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,want", [("DPM++ 2M Align Your Steps", "DPM++ 2M Align Your Steps"),
                                       ("DPM++ 2M Align Your Steps GITS", "DPM++ 2M Align Your Steps GITS"),
                                       ("k_dpmpp_2m SGMUniform", "DPM++ 2M SGMUniform")])
def test_samplers_with_a_scheduler_suffix_are_accepted(name, want):
    samplers = [{"name": n, "aliases": a} for n, a in SAMPLERS]
    assert resolve_sampler(name, samplers) == want


def test_scheduler_is_resolved_and_sent_with_img2img(fake_forge, tmp_path):
    (tmp_path / "in").mkdir()
    src = draw_image(tmp_path / "in" / "bw.png", (32, 32), gray=True)
    params = EnhanceParams(scale_factor=1, sampler_name="DPM++ 2M", scheduler="align your steps")
    report = run([Source("bw.png", src)], backend_for(fake_forge), params, ImageCache(tmp_path / "c"))
    assert report.outcomes["bw.png"].status == "enhanced"
    assert fake_forge.img2img_samplers == [("DPM++ 2M", "Align Your Steps")]
    assert report.outcomes["bw.png"].params["scheduler"] == "Align Your Steps"


def test_enhance_timeout_option_reaches_the_server_requests(fake_forge, tmp_path):
    from typer.testing import CliRunner

    from fluxgym_coach.cli import app
    src = draw_image(tmp_path / "in" / "a.png", (24, 24))
    fake_forge.faults.hang_on = {1}
    result = CliRunner().invoke(app, ["enhance", str(src), "-o", str(tmp_path / "out"), "--backend", "forge", "--api-url",
                                      fake_forge.url, "--timeout", "1", "--no-colorize",
                                      "--cache-dir", str(tmp_path / "cache"), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 1
    assert "--timeout (now 1 s)" in " ".join(result.output.split())
