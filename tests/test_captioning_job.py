"""The caption job (run_caption) with the draft backend and the fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from fluxgym_coach.captions import job as captioning
from fluxgym_coach.captions.backends.base import CaptionBackendError
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.events import ItemDone, ItemWarning


def run(ds, backend, *args, **kw):
    return asyncio.run(captioning.run_caption(ds, backend, *args, **kw))


def openai(server, **kw):
    kw.setdefault("retry_wait", 0.01)
    kw.setdefault("base_url", server.url)
    return captioning.get_caption_backend("openai", model="fake-vision", **kw)


def history_sources(ds, rel):
    return [r["source"] for r in ds.store.caption_history(rel)]


# -- draft backend ----------------------------------------------------------------------
def test_draft_only_missing_keeps_existing_captions(scanned_example):
    ds = scanned_example
    before = ds.read_caption("chelsea.png").text
    report = run(ds, captioning.get_caption_backend("draft"), trigger="ohwx")
    assert report.counts() == {"captioned": 4, "skipped": 2}
    assert ds.read_caption("chelsea.png").text == before
    horse = ds.read_caption("horse.png").text
    assert horse.startswith("ohwx, ") and "black-and-white image" in horse
    assert captioning.caption_status(ds, "horse.png") == "draft"
    assert captioning.caption_status(ds, "chelsea.png") == "edited"
    assert sorted(captioning.draft_relpaths(ds)) == ["astronaut.png", "camera.png", "horse.png",
                                                      "rocket.jpg"]
    assert history_sources(ds, "horse.png") == ["caption:draft"]
    # the results are kept as proposals for the tag editor
    props = captioning.proposals(ds.store, "horse.png")
    assert props[0]["backend"] == "draft" and "black-and-white image" in props[0]["tags"]


def test_draft_second_run_is_cached_and_touches_nothing(scanned_example):
    ds = scanned_example
    backend = captioning.get_caption_backend("draft")
    run(ds, backend, mode="overwrite")
    report = run(ds, backend, mode="overwrite")
    assert set(report.counts()) == {"cached"}
    assert history_sources(ds, "horse.png") == ["caption:draft"]  # same text: no new history


def test_unknown_mode_and_backend_are_refused(scanned_example):
    with pytest.raises(ValueError, match="unknown caption mode"):
        run(scanned_example, captioning.get_caption_backend("draft"), mode="all")
    with pytest.raises(ValueError, match="unknown caption backend"):
        captioning.get_caption_backend("blip")
    with pytest.raises(ValueError, match="takes no options"):
        captioning.get_caption_backend("draft", model="x")


def test_unreadable_and_unknown_images_fail_with_reasons(scanned_example):
    ds = scanned_example
    (ds.root / "broken.png").write_bytes(b"not a png")
    ds.scan()
    report = run(ds, captioning.get_caption_backend("draft"), ["broken.png", "nope.png", "horse.png"])
    assert report.outcomes["broken.png"].status == "failed"
    assert "not an image" in report.outcomes["broken.png"].reason
    assert "scan" in report.outcomes["nope.png"].reason
    assert report.outcomes["horse.png"].status == "captioned"
    assert not (ds.root / "broken.txt").exists()


# -- OpenAI-compatible backend -------------------------------------------------------------
def test_openai_prompts_data_urls_and_trigger(scanned_example, fake_openai, monkeypatch):
    ds = scanned_example
    monkeypatch.setenv("FAKE_KEY", "sk-test-123")
    fake_openai.api_key = "sk-test-123"
    backend = openai(fake_openai, api_key_env="FAKE_KEY", image_size=128, concurrency=3,
                     system_prompt="You caption {folder} images.",
                     prompt="Caption {filename} (trigger {trigger}; known tags: {tags}).")
    report = run(ds, backend, ["camera.png", "rocket.jpg", "chelsea.png"], mode="overwrite",
                 trigger="ohwx")
    assert report.counts() == {"captioned": 3}
    reqs = {r.prompt.split()[1]: r for r in fake_openai.chat_requests}
    assert set(reqs) == {"camera", "rocket", "chelsea"}
    assert reqs["camera"].prompt == "Caption camera (trigger ohwx; known tags: )."
    # the current caption's tags fill {tags}
    assert reqs["chelsea"].prompt == ("Caption chelsea (trigger ohwx; known tags: a tabby cat lying "
                                      "on a wooden floor, looking at the camera).")
    assert reqs["camera"].system == "You caption images."  # "dataset" is a generic folder name
    for r in fake_openai.chat_requests:
        assert r.authorized and r.body["model"] == "fake-vision" and r.body["max_tokens"] == 300
        img = r.images[0]
        assert img.mime == "image/jpeg" and max(img.width, img.height) == 128
    assert reqs["camera"].images[0].is_gray and not reqs["rocket"].images[0].is_gray
    rocket = reqs["rocket"].images[0]
    assert rocket.width == 128 and abs(rocket.height - 427 * 128 / 640) < 1  # aspect kept
    text = ds.read_caption("camera.png").text
    # trigger first, "The image shows" removed, the image really reached the server
    assert text == "ohwx, a black-and-white picture of 128x128 pixels with mean colour " + \
        " ".join(str(c) for c in reqs["camera"].images[0].mean)
    assert fake_openai.max_in_flight <= 3
    assert "sk-test-123" not in repr(backend) and "sk-test-123" not in str(backend.cache_params(
        captioning.CaptionRequest("a.png", ds.root / "a.png", "d")))


def test_openai_retries_then_succeeds(scanned_example, fake_openai):
    fake_openai.fail_next(2, 503)
    fake_openai.fail_next(1, 429)
    report = run(scanned_example, openai(fake_openai, retries=3, concurrency=1), ["horse.png"])
    assert report.outcomes["horse.png"].status == "captioned"
    assert [r.status for r in fake_openai.chat_requests] == [503, 503, 429, 200]


def test_openai_gives_up_after_retries_without_stopping_the_job(scanned_example, fake_openai):
    fake_openai.fail_next(3, 500)
    report = run(scanned_example, openai(fake_openai, retries=2, concurrency=1),
                 ["horse.png", "rocket.jpg"])
    failed = report.outcomes["horse.png"]
    assert failed.status == "failed" and "HTTP 500" in failed.reason
    assert report.outcomes["rocket.jpg"].status == "captioned" and report.fatal is None
    assert len(fake_openai.chat_requests) == 4
    assert not (scanned_example.root / "horse.txt").exists()


@pytest.mark.parametrize("status", [500, 400])
def test_no_vision_stops_the_job_without_retrying(scanned_example, fake_openai, status):
    fake_openai.vision = False
    fake_openai.no_vision_status = status
    report = run(scanned_example, openai(fake_openai, concurrency=1, retries=3), mode="overwrite")
    assert report.fatal and "does not accept images" in report.fatal and "mmproj" in report.fatal
    assert len(fake_openai.chat_requests) == 1
    assert report.counts() == {"failed": 1, "skipped": 5}
    assert all("not run" in o.reason for o in report.by_status("skipped"))
    assert scanned_example.read_caption("chelsea.png").text.startswith("a tabby cat")


def test_openai_overwrite_keeps_history_and_undo_restores(scanned_example, fake_openai):
    ds = scanned_example
    old = ds.read_caption("coffee.png").text
    report = run(ds, openai(fake_openai), ["coffee.png"], mode="overwrite")
    assert report.outcomes["coffee.png"].previous == old
    assert ds.read_caption("coffee.png").text.startswith("a colour picture")
    hist = ds.store.caption_history("coffee.png")
    assert hist[0]["old_text"] == old and hist[0]["source"] == "caption:openai"
    assert ds.undo_caption("coffee.png") == old
    assert ds.read_caption("coffee.png").text == old


def test_refresh_replaces_drafts_but_never_user_edits(scanned_example, fake_openai):
    ds = scanned_example
    run(ds, captioning.get_caption_backend("draft"))
    ds.write_caption("horse.png", "a horse silhouette, my words", source="tui")
    report = run(ds, openai(fake_openai), mode="refresh")
    assert report.outcomes["horse.png"].status == "skipped"
    assert "edited by the user" in report.outcomes["horse.png"].reason
    assert ds.read_caption("horse.png").text == "a horse silhouette, my words"
    assert report.outcomes["rocket.jpg"].status == "captioned"
    assert captioning.caption_status(ds, "rocket.jpg") == "generated"
    assert report.outcomes["chelsea.png"].status == "skipped"  # pre-existing sidecar = user's
    assert len(fake_openai.chat_requests) == 3  # astronaut, camera, rocket


def test_resume_after_cancel_does_not_redo_items(scanned_example, fake_openai):
    ds = scanned_example
    cancel = asyncio.Event()

    def sink(event):
        if isinstance(event, ItemDone) and event.detail.get("status") == "captioned":
            cancel.set()

    first = run(ds, openai(fake_openai, concurrency=1), mode="overwrite", cancel=cancel, on_event=sink)
    # the request in flight when cancel came (the next one leaves as soon as a slot frees,
    # while the previous caption is written) still finishes: at most 2 of 6
    n_done = first.counts()["captioned"]
    assert first.cancelled and n_done in (1, 2) and first.counts()["skipped"] == 6 - n_done
    done = first.by_status("captioned")[0].relpath
    n_first = len(fake_openai.chat_requests)
    assert n_first == n_done
    second = run(ds, openai(fake_openai, concurrency=1), mode="overwrite")
    assert second.resumed and second.job_id == first.job_id
    assert second.outcomes[done].status == "resumed"
    assert second.counts() == {"resumed": n_done, "captioned": 6 - n_done}
    assert len(fake_openai.chat_requests) == 6
    assert history_sources(ds, done) == ["caption:openai"]  # written once, not twice
    # a finished job is closed: running again is a new job served from the cache
    third = run(ds, openai(fake_openai, concurrency=1), mode="overwrite")
    assert not third.resumed and set(third.counts()) == {"cached"}
    assert len(fake_openai.chat_requests) == 6


def test_cache_is_shared_across_datasets_and_keyed_by_prompt(example_dataset, tmp_path, fake_openai):
    other = tmp_path / "copy"
    shutil.copytree(example_dataset, other)
    with Dataset(example_dataset) as a, Dataset(other) as b:
        a.scan()
        b.scan()
        run(a, openai(fake_openai), ["horse.png"])
        assert len(fake_openai.chat_requests) == 1
        report = run(b, openai(fake_openai), ["horse.png"])
        assert report.outcomes["horse.png"].status == "cached" and len(fake_openai.chat_requests) == 1
        assert b.read_caption("horse.png").text == a.read_caption("horse.png").text
        run(b, openai(fake_openai, prompt="Another prompt"), ["horse.png"], mode="overwrite")
        assert len(fake_openai.chat_requests) == 2


def test_truncated_answer_warns(scanned_example, fake_openai):
    events = []
    fake_openai.truncate = True
    run(scanned_example, openai(fake_openai), ["horse.png"], on_event=events.append)
    warnings = [e for e in events if isinstance(e, ItemWarning)]
    assert warnings and "cut off" in warnings[0].reason


def test_unreachable_server_is_fatal(scanned_example, fake_openai):
    port_free = openai(fake_openai)
    fake_openai.stop()
    with pytest.raises(CaptionBackendError, match="cannot reach") as info:
        run(scanned_example, port_free)
    assert info.value.fatal


def test_unknown_model_and_refused_key_are_fatal(scanned_example, fake_openai, monkeypatch):
    b = captioning.get_caption_backend("openai", model="nope", base_url=fake_openai.url, concurrency=1)
    report = run(scanned_example, b, mode="overwrite")
    assert "no model 'nope'" in report.fatal and len(fake_openai.chat_requests) == 1
    fake_openai.api_key = "right"
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    with pytest.raises(CaptionBackendError, match=r"\$OPENAI_API_KEY, which is set") as info:
        run(scanned_example, openai(fake_openai))
    assert "wrong" not in info.value.reason


def test_tags_style_and_settings_validation(scanned_example, fake_openai):
    fake_openai.answer = lambda prompt, images, body: "Horse; Black Horse, silhouette, horse."
    report = run(scanned_example, openai(fake_openai, style="tags"), ["horse.png"], mode="propose")
    out = report.outcomes["horse.png"]
    assert out.tags == ["horse", "black horse", "silhouette"]
    assert not (scanned_example.root / "horse.txt").exists()  # propose writes nothing
    assert captioning.proposals(scanned_example.store, "horse.png")[0]["tags"] == out.tags
    with pytest.raises(ValueError, match=r"allowed placeholders: \{trigger\}"):
        openai(fake_openai, prompt="Describe {subject}")
    with pytest.raises(ValueError, match="needs a model"):
        captioning.get_caption_backend("openai")
    assert openai(fake_openai).base_url == fake_openai.url
    b = captioning.get_caption_backend("openai", model="m", base_url="http://127.0.0.1:11434/")
    assert b.base_url == "http://127.0.0.1:11434/v1"


def test_concurrency_limit_is_used_and_respected(scanned_example, fake_openai):
    fake_openai.latency = 0.3
    run(scanned_example, openai(fake_openai, concurrency=2), mode="overwrite")
    assert len(fake_openai.chat_requests) == 6 and fake_openai.max_in_flight == 2


def test_an_edit_made_while_captioning_is_kept(scanned_example, fake_openai):
    ds = scanned_example
    sidecar = ds.sidecar_path("horse.png")

    def answer(prompt, images, body):
        sidecar.write_text("typed by the user meanwhile", encoding="utf-8")  # e.g. in the TUI
        return "a caption that must not win"

    fake_openai.answer = answer
    report = run(ds, openai(fake_openai), ["horse.png"])
    out = report.outcomes["horse.png"]
    assert out.status == "skipped" and "changed while captioning" in out.reason
    assert sidecar.read_text(encoding="utf-8") == "typed by the user meanwhile"


def test_rate_limit_answer_carries_retry_after(fake_openai):
    import httpx

    backend = openai(fake_openai)
    resp = httpx.Response(429, json={"error": {"message": "slow down"}}, headers={"Retry-After": "7"})
    err = backend._classify(resp)
    assert err.retryable and not err.fatal and err.retry_after == 7.0
    err = backend._classify(httpx.Response(429, json={"error": "slow down"},
                                           headers={"Retry-After": "999"}))
    assert err.retry_after == 60.0  # capped
    err = backend._classify(httpx.Response(400, json={"error": {"message": "bad field"}}))
    assert not err.retryable and not err.fatal and "bad field" in err.reason


# -- issue 11 item 8: reasoning models, <think>, credentials, our own uploads ------------------------
def test_reasoning_model_gets_max_completion_tokens_after_its_400_only(scanned_example, fake_openai):
    fake_openai.reasoning = True
    backend = openai(fake_openai, concurrency=1)
    report = run(scanned_example, backend, ["horse.png", "camera.png"], mode="overwrite")
    assert report.counts() == {"captioned": 2}
    statuses = [r.status for r in fake_openai.chat_requests]
    assert statuses == [400, 200, 200]  # one fallback, then the new form at once
    first, retry = fake_openai.chat_requests[0].body, fake_openai.chat_requests[1].body
    assert first["max_tokens"] == 300 and "temperature" in first
    assert retry["max_completion_tokens"] == 300 and "max_tokens" not in retry
    assert "temperature" not in retry


def test_other_400s_are_not_retried_with_other_parameters(scanned_example, fake_openai):
    fake_openai.fail_next(1, 400)
    report = run(scanned_example, openai(fake_openai, concurrency=1), ["horse.png"], mode="overwrite")
    assert report.outcomes["horse.png"].status == "failed"
    assert len(fake_openai.chat_requests) == 1
    assert fake_openai.chat_requests[0].body["max_tokens"] == 300  # Ollama keeps max_tokens


def test_think_blocks_are_removed_from_answers(scanned_example, fake_openai):
    fake_openai.think = True
    run(scanned_example, openai(fake_openai), ["horse.png"], mode="overwrite")
    text = scanned_example.read_caption("horse.png").text
    assert "think" not in text.lower() and "Let me look" not in text
    assert text.startswith("a black-and-white picture")
    from fluxgym_coach.captions.backends.openai import strip_reasoning
    assert strip_reasoning("reasoning without an opening tag</think>\n a cat") == "a cat"


def test_credentials_in_the_base_url_are_used_but_never_printed_or_stored(scanned_example, fake_openai):
    fake_openai.basic_auth = "coach:s3cret"
    url = fake_openai.url.replace("http://", "http://coach:s3cret@")
    backend = openai(fake_openai, base_url=url)
    report = run(scanned_example, backend, ["horse.png"], mode="overwrite")
    assert report.outcomes["horse.png"].status == "captioned"
    assert "s3cret" not in repr(backend) and "s3cret" not in backend.base_url
    assert "s3cret" not in captioning.describe_settings(backend)
    captioning.save_default_backend(scanned_example, "openai", {"model": "fake-vision", "base_url": url})
    assert captioning.default_backend(scanned_example)[1]["base_url"] == fake_openai.url
    raw = scanned_example.store.execute("SELECT * FROM settings")
    assert all("s3cret" not in str(tuple(r)) for r in raw)
    fake_openai.stop()
    with pytest.raises(CaptionBackendError) as info:
        run(scanned_example, openai(fake_openai, base_url=url, retries=0), ["camera.png"],
            mode="overwrite")
    assert "cannot reach" in info.value.reason and "s3cret" not in info.value.reason


def test_credentials_can_come_from_the_environment(scanned_example, fake_openai, monkeypatch):
    fake_openai.basic_auth = "coach:s3cret"
    monkeypatch.setenv("FLUXGYM_COACH_OPENAI_AUTH", "coach:s3cret")
    report = run(scanned_example, openai(fake_openai), ["horse.png"], mode="overwrite")
    assert report.outcomes["horse.png"].status == "captioned"


def test_a_16_bit_scan_reaches_the_captioner_as_a_real_picture(fake_openai, tmp_path):
    import numpy as np
    from PIL import Image

    from fluxgym_coach.captions.backends.base import CaptionRequest
    arr = (np.linspace(0.2, 0.6, 64 * 64).reshape(64, 64) * 65535).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "scan16.png")
    backend = openai(fake_openai)

    async def go():
        try:
            return await backend.caption(CaptionRequest("scan16.png", tmp_path / "scan16.png", "d"))
        finally:
            await backend.aclose()

    asyncio.run(go())
    img = fake_openai.chat_requests[0].images[0]
    assert img.is_gray and 80 < img.mean[0] < 120  # about 0.4 of full scale, not clipped white
