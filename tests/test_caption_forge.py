"""The Forge interrogate caption backend against the fake Forge server (real HTTP)."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from fluxgym_coach.captions import job as captioning, tags
from fluxgym_coach.captions.backends.base import CaptionBackendError
from fluxgym_coach.captions.backends.forge import clean_clip, clean_deepdanbooru
from fluxgym_coach.cli import app
from fluxgym_coach.testing.fake_forge import Faults


def forge(server, **kw):
    kw.setdefault("backoff", 0.01)
    return captioning.get_caption_backend("forge", url=server.url, **kw)


def run(ds, backend, *args, **kw):
    async def go():
        try:
            return await captioning.run_caption(ds, backend, *args, **kw)
        finally:
            await backend.aclose()
    return asyncio.run(go())


def test_clip_caption_keeps_the_sentence(scanned_example, fake_forge):
    report = run(scanned_example, forge(fake_forge), ["rocket.jpg", "camera.png"], trigger="ohwx")
    assert report.counts() == {"captioned": 2}
    text = scanned_example.read_caption("rocket.jpg").text
    # the fake answers "a <light> <orientation> photo with <hue> tones, WxH": the size flavour is cut
    assert text == "ohwx, a dark landscape photo with blue tones"
    assert fake_forge.jobs_by_path.get("/sdapi/v1/interrogate") == 2
    assert clean_clip("a man riding a horse, by Greg Rutkowski, trending on artstation") == \
        "a man riding a horse"
    assert clean_clip("a cat, detailed", keep_flavours=True) == "a cat, detailed"


def test_deepdanbooru_tags_are_cleaned_and_proposed(scanned_example, fake_forge):
    report = run(scanned_example, forge(fake_forge, model="deepdanbooru"), ["horse.png"],
                 mode="propose")
    out = report.outcomes["horse.png"]
    assert "photo (medium)" in out.tags and "no humans" in out.tags
    assert all("\\" not in t for t in out.tags)
    assert not (scanned_example.root / "horse.txt").exists()
    proposed = {p.tag: p for p in tags.propose(scanned_example, "horse.png")}
    assert proposed["no humans"].sources == ["forge"]
    assert clean_deepdanbooru("1girl, long_hair, (smile:1.2), long hair, photo \\(medium\\)") == \
        ["1girl", "long hair", "smile", "photo (medium)"]


def test_clip_error_caption_fails_the_image_only(scanned_example, make_fake_forge):
    server = make_fake_forge(faults=Faults(caption_error=True))
    report = run(scanned_example, forge(server), ["horse.png", "rocket.jpg"])
    assert report.counts() == {"failed": 2} and report.fatal is None
    assert "<error>" in report.outcomes["horse.png"].reason


def test_forge_unreachable_and_bad_model(scanned_example, make_fake_forge):
    server = make_fake_forge()
    url = server.url
    server.stop()
    backend = captioning.get_caption_backend("forge", url=url, retries=1)
    with pytest.raises(CaptionBackendError, match="cannot reach") as info:
        run(scanned_example, backend)
    assert info.value.fatal
    with pytest.raises(ValueError, match="clip, deepdanbooru"):
        captioning.get_caption_backend("forge", model="wd14")


def test_forge_retries_a_failed_job(scanned_example, make_fake_forge):
    server = make_fake_forge(faults=Faults(fail_on={1}))
    report = run(scanned_example, forge(server, concurrency=1), ["horse.png"])
    assert report.outcomes["horse.png"].status == "captioned"
    assert server.job_requests == 2


def test_forge_cli(example_dataset, fake_forge):
    res = CliRunner().invoke(app, ["caption", str(example_dataset), "--backend", "forge",
                                   "--api-url", fake_forge.url, "--model", "deepdanbooru",
                                   "--image", "horse.png", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["counts"] == {"captioned": 1}
    assert "no humans" in (example_dataset / "horse.txt").read_text()
