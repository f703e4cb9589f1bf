"""ForgeClient against the fake Forge server (real HTTP on 127.0.0.1): every endpoint,
error bodies in both dialects, auth, retries and the fault switches."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import threading

import httpx
import pytest
from PIL import Image

from fluxgym_coach.enhance.backends.forge import (AUTH_ENV, ForgeClient, ForgeError, ForgeUnreachable,
                                                  error_detail, output_size)
from fluxgym_coach.testing.fake_forge import FakeForge, FifoLock, Faults


def png(size=(40, 30), color=(200, 40, 10), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color if mode != "L" else 128).save(buf, "PNG")
    return buf.getvalue()


def size_of(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def client(server: FakeForge, **kw) -> ForgeClient:
    kw.setdefault("backoff", 0.001)
    kw.setdefault("max_backoff", 0.01)
    return ForgeClient(server.url, **kw)


async def test_small_endpoints(fake_forge):
    async with client(fake_forge) as c:
        names = await c.upscaler_names()
        assert names[:3] == ["None", "Lanczos", "Nearest"]
        assert "R-ESRGAN 4x+" in names
        samplers = await c.samplers()
        assert {"name": "Euler a", "aliases": ["k_euler_a"], "options": {}} in samplers
        models = await c.sd_models()
        assert models[0]["title"].startswith("fake-sdxl")
        opts = await c.options()
        assert opts["samples_format"] == "png"
        await c.set_options({"ESRGAN_tile": 256})
        assert (await c.options())["ESRGAN_tile"] == 256
        with pytest.raises(ForgeError, match="model 'nope' not found"):
            await c.set_options({"sd_model_checkpoint": "nope"})
        idle = await c.progress()
        assert idle["progress"] == 0 and idle["state"]["job_count"] == 0
    assert fake_forge.job_requests == 0  # small endpoints are not jobs


@pytest.mark.parametrize("scale,upscaler", [(2, "R-ESRGAN 4x+"), (1.5, "Lanczos"), (3, "Nearest"),
                                            (2, "None")])
async def test_single_image_size_rules(fake_forge, scale, upscaler):
    async with client(fake_forge) as c:
        out = await c.extra_single_image(png((37, 21)), **c.extras_fields(scale, upscaler))
    assert size_of(out) == output_size(37, 21, scale, upscaler)
    expected = (37, 21) if upscaler == "None" else ((37 * scale) // 8 * 8, (21 * scale) // 8 * 8)
    assert size_of(out) == tuple(int(v) for v in expected)


async def test_model_upscaler_drops_alpha_lanczos_keeps_it(fake_forge):
    rgba = png((16, 16), (10, 20, 30, 128), mode="RGBA")
    async with client(fake_forge) as c:
        model = await c.extra_single_image(rgba, **c.extras_fields(2, "R-ESRGAN 4x+"))
        lanczos = await c.extra_single_image(rgba, **c.extras_fields(2, "Lanczos"))
    assert Image.open(io.BytesIO(model)).mode == "RGB"
    assert Image.open(io.BytesIO(lanczos)).mode == "RGBA"


async def test_resize_mode_1_with_crop_pads_on_black_canvas(fake_forge):
    async with client(fake_forge) as c:
        out = await c.extra_single_image(png((30, 10), (255, 255, 255)), **c.extras_fields(
            1, "Lanczos", resize_mode=1, upscaling_resize_w=100, upscaling_resize_h=60,
            upscaling_crop=True))
    im = Image.open(io.BytesIO(out)).convert("RGB")
    assert im.size == (100, 60)
    assert im.getpixel((50, 0)) == (0, 0, 0)        # band above the pasted image
    assert im.getpixel((50, 30))[0] > 200           # the image itself


async def test_batch_keeps_order_and_empty_batch(fake_forge):
    sizes = [(40, 30), (17, 50), (64, 8)]
    async with client(fake_forge) as c:
        outs = await c.extra_batch_images([png(s) for s in sizes], **c.extras_fields(2, "Lanczos"))
        assert await c.extra_batch_images([], **c.extras_fields(2, "Lanczos")) == []
    assert [size_of(o) for o in outs] == [output_size(w, h, 2) for w, h in sizes]
    assert fake_forge.jobs_by_path["/sdapi/v1/extra-batch-images"] == 2


async def test_unknown_upscaler_is_a_500_not_retried(fake_forge):
    async with client(fake_forge) as c:
        with pytest.raises(ForgeError) as info:
            await c.extra_single_image(png(), **c.extras_fields(2, "R-ESRGAN_4x+"))
    assert info.value.status == 500
    assert "could not find upscaler named R-ESRGAN_4x+" in str(info.value)
    assert fake_forge.job_requests == 1


@pytest.mark.parametrize("dialect,key", [("forge", "message"), ("a1111", "errors")])
async def test_error_bodies_in_both_dialects(make_fake_forge, dialect, key):
    server = make_fake_forge(dialect=dialect)
    async with httpx.AsyncClient(base_url=server.url) as raw:
        r = await raw.post("/sdapi/v1/extra-single-image",
                           json={"image": base64.b64encode(png()).decode(), "upscaler_1": "Nope"})
        assert r.status_code == 500 and key in r.json()
        assert error_detail(r) == "could not find upscaler named Nope"
        r = await raw.post("/sdapi/v1/extra-single-image", json={"image": "x", "upscaling_resize": 0})
        assert r.status_code == 422
        item = r.json()["detail"][0]
        assert item["loc"] == ["body", "upscaling_resize"]
        assert ("input" in item) == (dialect == "forge")
        assert error_detail(r).startswith("upscaling_resize: ")
        r = await raw.post("/sdapi/v1/img2img", json={})
        assert r.status_code == 404 and error_detail(r) == "Init image not found"
        assert ("error" in r.json()) == (dialect == "a1111")
        assert (await raw.get("/sdapi/v1/nothing")).status_code == 404
        assert (await raw.get("/sdapi/v1/interrupt")).status_code == 405
        r = await raw.post("/sdapi/v1/extra-batch-images", json={"imageList": [{"data": "x"}]})
        assert r.status_code == 422 and "imageList.0.name" in error_detail(r)


def test_error_detail_reads_plain_text_and_detail_lists():
    req = httpx.Request("GET", "http://127.0.0.1/")
    assert error_detail(httpx.Response(500, text="Internal Server Error", request=req)) == \
        "Internal Server Error"
    body = {"detail": [{"loc": ["body", "steps"], "msg": "bad"}, {"loc": ["body"], "msg": "worse"}]}
    assert error_detail(httpx.Response(422, json=body, request=req)) == "steps: bad; worse"
    assert error_detail(httpx.Response(500, json={"error": "X", "detail": "", "errors": "boom"},
                                       request=req)) == "boom"


async def test_data_uri_prefix_rule(fake_forge):
    b64 = base64.b64encode(png()).decode()
    fields = ForgeClient.extras_fields(2, "Lanczos")
    async with httpx.AsyncClient(base_url=fake_forge.url) as raw:
        ok = await raw.post("/sdapi/v1/extra-single-image",
                            json={**fields, "image": "data:image/png;base64," + b64})
        assert ok.status_code == 200
        for bad in ("data:text/plain;base64," + b64, " " + b64, ""):
            r = await raw.post("/sdapi/v1/extra-single-image", json={**fields, "image": bad})
            assert r.status_code == 500 and error_detail(r) == "Invalid encoded image"


async def test_img2img_colorizes_at_the_requested_size(fake_forge):
    async with client(fake_forge) as c:
        out = await c.img2img(png((41, 30), mode="L"), width=40, height=32, prompt="color",
                              denoising_strength=0.4, steps=5, cfg_scale=6.0,
                              sampler_name="Euler a")
    im = Image.open(io.BytesIO(out)).convert("RGB")
    assert im.size == (40, 32)
    r, g, b = im.getpixel((10, 10))
    assert max(r, g, b) - min(r, g, b) > 20   # a visible tint on a gray input


async def test_interrogate_models_and_error_caption(fake_forge):
    async with client(fake_forge) as c:
        caption = await c.interrogate(png((60, 30)))
        assert "landscape" in caption
        tags = await c.interrogate(png((60, 30)), model="deepdanbooru")
        assert tags.split(", ") == sorted(tags.split(", "))
        with pytest.raises(ForgeError, match="Model not found"):
            await c.interrogate(png(), model="blip2")
        fake_forge.faults.caption_error = True
        with pytest.raises(ForgeError, match="<error>"):
            await c.interrogate(png())
        assert await c.interrogate(png(), model="deepdanbooru")  # only CLIP fails that way


async def test_auth_missing_wrong_right_and_never_leaks_the_password(make_fake_forge, monkeypatch,
                                                                      caplog):
    server = make_fake_forge(auth="alice:s3cret-pw")
    caplog.set_level(logging.DEBUG)
    async with client(server) as c:
        with pytest.raises(ForgeError) as info:
            await c.upscalers()
        assert info.value.status == 401 and "--api-auth" in str(info.value)
    async with client(server, api_auth="alice:wrong-pw") as c:
        with pytest.raises(ForgeError, match="Incorrect username or password"):
            await c.upscalers()
    async with client(server, api_auth="alice:s3cret-pw") as c:
        assert "Lanczos" in await c.upscaler_names()
        assert "s3cret" not in repr(c)
    monkeypatch.setenv(AUTH_ENV, "alice:s3cret-pw")
    async with client(server) as c:
        assert await c.samplers()
    assert "s3cret" not in caplog.text


async def test_forge_sends_a_challenge_a1111_does_not(make_fake_forge):
    for dialect, challenged in (("forge", True), ("a1111", False)):
        server = make_fake_forge(auth="u:p", dialect=dialect)
        async with httpx.AsyncClient(base_url=server.url) as raw:
            r = await raw.get("/sdapi/v1/options")
        assert r.status_code == 401 and ("www-authenticate" in r.headers) == challenged


async def test_500_on_nth_request_is_retried(fake_forge):
    fake_forge.faults.fail_on = {1}
    async with client(fake_forge) as c:
        out = await c.extra_single_image(png(), **c.extras_fields(2, "Lanczos"))
    assert size_of(out) == (80, 56)
    assert fake_forge.job_requests == 2


async def test_500_after_all_retries_is_an_error(fake_forge):
    fake_forge.faults.fail_on = {1, 2}
    async with client(fake_forge, retries=2) as c:
        with pytest.raises(ForgeError, match="simulated failure of job 2") as info:
            await c.extra_single_image(png(), **c.extras_fields(2, "Lanczos"))
    assert info.value.retryable and not isinstance(info.value, ForgeUnreachable)


async def test_dropped_connection_is_retried(fake_forge):
    fake_forge.faults.drop_on = {1}
    async with client(fake_forge) as c:
        outs = await c.extra_batch_images([png(), png((8, 8))], **c.extras_fields(2, "Lanczos"))
    assert len(outs) == 2 and fake_forge.job_requests == 2


async def test_dropped_connections_exhaust_retries(fake_forge):
    fake_forge.faults.drop_on = {1, 2, 3}
    async with client(fake_forge, retries=3) as c:
        with pytest.raises(ForgeUnreachable, match="closed the connection"):
            await c.interrogate(png())
    assert fake_forge.job_requests == 3


async def test_slow_response_times_out_and_is_not_resent(fake_forge):
    fake_forge.faults.response_delay = 0.5
    async with client(fake_forge, timeout=0.1) as c:
        with pytest.raises(ForgeUnreachable, match="did not answer"):
            await c.extra_single_image(png(), **c.extras_fields(2, "Lanczos"))
    assert fake_forge.job_requests == 1


async def test_truncated_batch_returns_fewer_images(fake_forge):
    fake_forge.faults.truncate_batch = 1
    async with client(fake_forge) as c:
        outs = await c.extra_batch_images([png(), png(), png()], **c.extras_fields(2, "Lanczos"))
    assert len(outs) == 2


async def test_unreachable_server(unused_tcp_port):
    async with ForgeClient(f"http://127.0.0.1:{unused_tcp_port}", retries=2, backoff=0.001) as c:
        with pytest.raises(ForgeUnreachable, match="start it with --api"):
            await c.options()


async def test_gets_and_interrupt_answer_while_a_job_runs(fake_forge):
    fake_forge.faults.image_latency = 0.3
    async with client(fake_forge) as c:
        job = asyncio.create_task(c.extra_batch_images([png()] * 4, **c.extras_fields(2, "Lanczos")))
        while fake_forge.progress()["state"]["job"] == "":
            await asyncio.sleep(0.01)
        seen = await c.progress()
        assert seen["state"]["job"] == "extra-batch-images" and seen["state"]["job_count"] == 4
        assert 1 <= seen["state"]["job_no"] <= 4  # advanced as each image starts, as Forge does
        assert await c.upscaler_names()
        await c.interrupt()
        outs = await job
    assert len(outs) < 4                      # interrupt truncates the batch, still a 200
    assert fake_forge.interrupts == 1


async def test_jobs_run_one_at_a_time(fake_forge):
    fake_forge.faults.job_latency = 0.02
    async with client(fake_forge) as c:
        await asyncio.gather(*(c.extra_single_image(png(), **c.extras_fields(2, "Lanczos"))
                               for _ in range(6)),
                             c.interrogate(png()), c.img2img(png(), width=8, height=8))
    assert fake_forge.job_requests == 8
    assert fake_forge.max_parallel_jobs == 1
    assert sorted(fake_forge.job_order) == list(range(1, 9))


def test_fifo_lock_serves_in_arrival_order():
    lock = FifoLock()
    order: list[int] = []
    threads = []
    with lock.hold():
        for i in range(5):
            t = threading.Thread(target=lambda i=i: _take(lock, order, i))
            t.start()
            threads.append(t)
            while lock._next != i + 2:  # wait until thread i holds its ticket
                pass
    for t in threads:
        t.join()
    assert order == [0, 1, 2, 3, 4]


def _take(lock: FifoLock, order: list[int], i: int) -> None:
    with lock.hold():
        order.append(i)


def test_fake_counts_busy_time_under_latency():
    with FakeForge(faults=Faults(job_latency=0.05)) as server:
        with httpx.Client(base_url=server.url) as raw:
            raw.post("/sdapi/v1/interrogate", json={"image": base64.b64encode(png()).decode()})
        assert server.busy_seconds >= 0.05 and server.images_processed == 1
        server.reset_counters()
        assert server.job_requests == 0 and server.busy_seconds == 0
