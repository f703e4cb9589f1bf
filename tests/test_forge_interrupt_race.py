"""Issue 11 item 5, the race: on a shared Forge another client's job can begin between our
answer and our ``/progress`` read, and its ``state.begin()`` clears ``interrupted``. The
interrupted image (a plain Lanczos resize, HTTP 200) is then recognised by content
(server_io.is_plain_resize), against the fake Forge server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io

import numpy as np
from PIL import Image, ImageFilter

from fluxgym_coach.cache import ImageCache
from fluxgym_coach.enhance import server_io
from fluxgym_coach.enhance.backends.base import EnhanceParams
from fluxgym_coach.enhance.backends.forge import ForgeBackend
from fluxgym_coach.enhance.job import Source, run_enhance
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "dataset"
MODEL = EnhanceParams(scale_factor=2, upscaler="R-ESRGAN 4x+", colorize=False)


def run(sources, server, params, cache, **kw):
    async def go():
        backend = ForgeBackend(server.url, backoff=0.001, max_backoff=0.01, **kw)
        try:
            return await run_enhance(sources, backend, params, cache)
        finally:
            await backend.aclose()
    return asyncio.run(go())


def crops(folder: Path, n: int) -> list[Path]:
    """``n`` different crops of a real photo (detail for the content check)."""
    folder.mkdir(parents=True, exist_ok=True)
    im = Image.open(EXAMPLES / "chelsea.png").convert("RGB")
    paths = []
    for i in range(n):
        p = folder / f"crop{i}.png"
        im.crop((40 * i, 30 * i, 40 * i + 96, 30 * i + 80)).save(p)
        paths.append(p)
    return paths


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_is_plain_resize_tells_a_resize_from_a_model_result():
    im = Image.open(EXAMPLES / "chelsea.png").convert("RGB")
    size = (im.width * 2 // 8 * 8, im.height * 2 // 8 * 8)  # the extras size rule
    resized = im.resize(size, Image.Resampling.LANCZOS)
    assert server_io.is_plain_resize(png(im), png(resized))
    assert not server_io.is_plain_resize(png(im), png(resized.filter(ImageFilter.UnsharpMask(1.5, 80, 0))))
    buf = io.BytesIO()
    resized.save(buf, "JPEG", quality=90)  # lossy: inconclusive, kept
    assert not server_io.is_plain_resize(png(im), buf.getvalue())
    flat = Image.new("RGB", (64, 48), (90, 120, 200))  # no detail: inconclusive, kept
    assert not server_io.is_plain_resize(png(flat), png(flat.resize((128, 96), Image.Resampling.LANCZOS)))
    assert not server_io.is_plain_resize(png(im), b"not an image")


def test_model_results_of_the_fake_are_not_plain_resizes(fake_forge, tmp_path):
    paths = crops(tmp_path / "in", 3)
    report = run([Source(p.name, p) for p in paths], fake_forge, MODEL, ImageCache(tmp_path / "cache"),
                 max_batch=3, per_server=1)
    assert {o.status for o in report.outcomes.values()} == {"enhanced"}


def test_an_interrupt_whose_flag_was_reset_is_still_not_cached(fake_forge, tmp_path):
    src = crops(tmp_path / "in", 1)[0]
    fake_forge.faults.interrupt_on = {1}
    fake_forge.faults.next_job_at_once = True  # another client's job begins before our /progress read
    cache = ImageCache(tmp_path / "cache")
    report = run([Source(src.name, src)], fake_forge, MODEL, cache)
    assert fake_forge.interrupts == 1
    assert fake_forge.progress()["state"]["interrupted"] is False  # the flag is gone: the race
    o = report.outcomes[src.name]
    assert o.status == "failed" and "plain Lanczos resize" in o.reason and "interrupted" in o.reason
    assert not [f for f in (tmp_path / "cache").rglob("*.png") if not f.name.startswith(".")]
    fake_forge.faults.interrupt_on = set()
    again = run([Source(src.name, src)], fake_forge, MODEL, cache)
    assert again.outcomes[src.name].status == "enhanced"


def test_an_interrupted_batch_whose_flag_was_reset_keeps_only_finished_images(fake_forge, tmp_path):
    paths = crops(tmp_path / "in", 3)
    fake_forge.faults.interrupt_on, fake_forge.faults.interrupt_at = {1}, 1
    fake_forge.faults.next_job_at_once = True
    report = run([Source(p.name, p) for p in paths], fake_forge, MODEL, ImageCache(tmp_path / "cache"),
                 max_batch=3, per_server=1)
    out = report.outcomes
    assert out["crop0.png"].status == "enhanced"
    assert out["crop1.png"].status == "failed" and "plain Lanczos resize" in out["crop1.png"].reason
    assert out["crop2.png"].status == "failed" and "run again" in out["crop2.png"].reason
    # what was kept is the model's result, not a resize
    kept = np.asarray(Image.open(out["crop0.png"].entry.path).convert("RGB"), np.int16)
    src = Image.open(paths[0]).convert("RGB")
    plain = np.asarray(src.resize(kept.shape[1::-1], Image.Resampling.LANCZOS), np.int16)
    assert np.abs(kept - plain).max() > server_io.PLAIN_RESIZE_LEVELS


def test_a_lanczos_request_is_never_refused_as_a_plain_resize(fake_forge, tmp_path):
    src = crops(tmp_path / "in", 1)[0]
    report = run([Source(src.name, src)], fake_forge, MODEL.with_(upscaler="Lanczos"),
                 ImageCache(tmp_path / "cache"))
    assert report.outcomes[src.name].status == "enhanced"
