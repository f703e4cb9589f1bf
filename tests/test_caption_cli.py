"""``fluxgym-coach caption`` and ``fluxgym-coach captions ...``: output, JSON and exit codes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fluxgym_coach.captions import job as captioning
from fluxgym_coach.cli import app
from fluxgym_coach.dataset import Dataset

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_caption_draft_json_and_saved_trigger(example_dataset):
    res = invoke("caption", example_dataset, "--trigger", "ohwx", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["counts"] == {"captioned": 4, "skipped": 2} and data["mode"] == "only-missing"
    assert (example_dataset / "horse.txt").read_text().startswith("ohwx, ")
    # the trigger was saved: lint uses it without --trigger and finds the two old captions lack it
    res = invoke("captions", "lint", example_dataset, "--json")
    assert res.exit_code == 1
    findings = json.loads(res.stdout)["findings"]
    assert [f["code"] for f in findings["chelsea.png"]][0] == "trigger-missing"
    assert "horse.png" not in findings or all(f["severity"] != "error" for f in findings["horse.png"])
    # fix it with an undoable bulk prefix, then lint passes the error bar
    res = invoke("captions", "prefix", example_dataset, "ohwx", "--json")
    op = json.loads(res.stdout)["op_id"]
    assert sorted(json.loads(res.stdout)["changed"]) == ["chelsea.png", "coffee.png"]
    assert invoke("captions", "lint", example_dataset).exit_code == 0
    res = invoke("captions", "undo", example_dataset, "--op", op)
    assert res.exit_code == 0 and "2 caption(s) restored" in res.stdout
    assert invoke("captions", "lint", example_dataset).exit_code == 1


def test_caption_modes_are_exclusive_and_bad_input_is_usage_error(example_dataset, tmp_path):
    res = invoke("caption", example_dataset, "--overwrite", "--refresh")
    assert res.exit_code == 2 and "choose one" in res.output
    res = invoke("caption", tmp_path / "missing")
    assert res.exit_code == 2 and "not a folder" in res.output
    res = invoke("caption", example_dataset, "--backend", "openai")
    assert res.exit_code == 2 and "needs a model" in res.output
    res = invoke("caption", example_dataset, "--image", "nope.png")
    assert res.exit_code == 2 and "nope.png" in res.output


def test_caption_openai_unreachable_exits_3(example_dataset, fake_openai):
    url = fake_openai.url
    fake_openai.stop()
    res = invoke("caption", example_dataset, "--backend", "openai", "--model", "fake-vision",
                 "--base-url", url)
    assert res.exit_code == 3 and "cannot reach" in res.output


def test_caption_openai_no_vision_exits_3_and_default_backend_is_saved(example_dataset, fake_openai):
    res = invoke("caption", example_dataset, "--backend", "openai", "--model", "fake-vision",
                 "--base-url", fake_openai.url, "--set-default", "--image", "horse.png", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["counts"] == {"captioned": 1}
    with Dataset(example_dataset) as ds:
        assert captioning.default_backend(ds) == ("openai", {"model": "fake-vision",
                                                             "base_url": fake_openai.url})
    fake_openai.vision = False
    # no --backend: the saved openai settings are used
    res = invoke("caption", example_dataset, "--overwrite", "--image", "rocket.jpg")
    assert res.exit_code == 3 and "does not accept images" in res.output
    assert len(fake_openai.chat_requests) == 2


def test_status_tokens_and_tag_ops(example_dataset):
    invoke("caption", example_dataset)
    res = invoke("captions", "status", example_dataset, "--json")
    status = json.loads(res.stdout)
    assert status["horse.png"] == "draft" and status["chelsea.png"] == "edited"
    res = invoke("captions", "tokens", "--text", "a photo of a cat", "--json")
    assert json.loads(res.stdout)["--text"]["clip"] == 7
    with Dataset(example_dataset) as ds:
        ds.scan()
        ds.write_caption("horse.png", "ohwx, b, a, b")
    assert invoke("captions", "dedup-tags", example_dataset, "-i", "horse.png").exit_code == 0
    assert invoke("captions", "sort-tags", example_dataset, "-i", "horse.png").exit_code == 0
    assert (example_dataset / "horse.txt").read_text() == "ohwx, a, b"
    res = invoke("captions", "replace", example_dataset, "(", "x")
    assert res.exit_code == 2 and "invalid regular expression" in res.output
    res = invoke("captions", "undo", example_dataset, "--image", "horse.png", "--json")
    assert json.loads(res.stdout)["restored"] == "ohwx, b, a"


def test_cli_bulk_edits_are_recorded_as_review_decisions_like_the_tuis(example_dataset):
    from fluxgym_coach import feedback

    with Dataset(example_dataset) as ds:
        ds.scan()
        ds.write_caption("horse.png", "a horse, ohwx, grazing")
    res = invoke("captions", "trigger-first", example_dataset, "--trigger", "ohwx", "-i", "horse.png")
    assert res.exit_code == 0, res.output
    assert (example_dataset / "horse.txt").read_text() == "ohwx, a horse, grazing"
    with Dataset(example_dataset) as ds:
        edits = [d for d in feedback.decisions(ds.store) if d.decision == feedback.CAPTION_EDIT]
    # the core's bulk job (captions.bulk.edit_captions), as the TUI's t records it
    assert [(d.relpath, d.source, d.params["bulk"]) for d in edits] == [
        ("horse.png", "cli", "trigger-first")]


def test_a_caption_that_cannot_be_written_is_named_and_exits_1(example_dataset, monkeypatch):
    with Dataset(example_dataset) as ds:
        ds.scan()
        ds.write_caption("horse.png", "a horse, grazing")
    real = Dataset.write_caption

    def full_disk(self, relpath, text, **kw):  # the disk refuses this one sidecar
        if relpath == "horse.png":
            raise OSError(28, "No space left on device")
        return real(self, relpath, text, **kw)

    monkeypatch.setattr(Dataset, "write_caption", full_disk)
    res = invoke("captions", "suffix", example_dataset, "outdoors", "-i", "horse.png")
    assert res.exit_code == 1, res.output
    assert "1 not written" in " ".join(res.stdout.split())
    assert "horse.png" in res.stderr and "No space left on device" in res.stderr
    assert (example_dataset / "horse.txt").read_text() == "a horse, grazing"


def test_fake_openai_command_refuses_a_busy_port(fake_openai):
    port = fake_openai.url.split(":")[-1].split("/")[0]
    res = invoke("fake-openai", "--port", port)
    assert res.exit_code == 2 and "cannot listen" in res.output


def test_unreadable_images_are_reported_by_name_on_every_run(example_dataset):
    """issue 11 item 13: `caption` names the images it leaves out because they cannot be
    read, in --json and in the table, with the same exit code on the first run and on a
    second run over the same (already scanned) dataset."""
    (example_dataset / "broken.png").write_bytes(b"not a png at all")
    runs = [invoke("caption", example_dataset, "--json") for _ in range(2)]
    for res in runs:
        assert res.exit_code == 1, res.output
        data = json.loads(res.stdout)
        assert list(data["unreadable"]) == ["broken.png"]
        assert "Pillow" in data["unreadable"]["broken.png"]
        assert "broken.png" not in {o["relpath"] for o in data["outcomes"]}
    assert json.loads(runs[1].stdout)["counts"] == {"skipped": 6}  # nothing left to caption
    res = invoke("caption", example_dataset)
    assert res.exit_code == 1
    assert "unreadable (left out)" in res.stdout
    assert "unreadable broken.png:" in " ".join(res.stderr.split())
    # once fixed, nothing is left out and the run is clean
    (example_dataset / "broken.png").unlink()
    res = invoke("caption", example_dataset, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["unreadable"] == {}


def test_api_url_is_refused_for_a_non_forge_captioner(example_dataset):
    res = invoke("caption", example_dataset, "--backend", "draft", "--api-url", "http://127.0.0.1:9")
    assert res.exit_code == 2 and "--api-url is for --backend forge" in res.output


def test_forge_servers_from_the_environment_do_not_stop_another_captioner(example_dataset, monkeypatch):
    """$FLUXGYM_COACH_API_URL names Forge servers (the shared --api-url): the draft
    captioner runs as if it were unset, while the same URL typed as --api-url is refused."""
    monkeypatch.setenv("FLUXGYM_COACH_API_URL", "http://127.0.0.1:9,http://127.0.0.1:10")
    res = invoke("caption", example_dataset, "--backend", "draft", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["counts"]["captioned"] == 4
