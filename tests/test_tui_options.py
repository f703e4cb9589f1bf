"""The review app as presentation (issue 10 item 5): ``tui --backend`` and a repeatable
``tui --api-url`` resolved by the CLI as for every command, jobs cancelled through
Textual's ``Worker.cancel()``, and the export form and caption form reading and
writing the dataset's typed settings through the core."""

from __future__ import annotations

import pytest
from textual.worker import WorkerState
from typer.testing import CliRunner

from fluxgym_coach import core
from fluxgym_coach.cli import app as cli_app
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.settings import load_settings, update_settings
from fluxgym_coach.tui.widgets.jobs_panel import JobsPanel
from tests.fixtures_tui import settle, wait_until

SIZE = (100, 32)


@pytest.fixture
def started(monkeypatch):
    """Run ``tui`` up to the app's start: the real ReviewApp is built by the command, only
    its ``run`` is replaced (no terminal in CliRunner) and the terminal check passes."""
    from fluxgym_coach.tui import app as app_module
    from fluxgym_coach.tui import serve

    apps: list = []
    monkeypatch.setattr(serve, "served", lambda: True)
    monkeypatch.setattr(app_module.ReviewApp, "run", lambda self: apps.append(self))

    def invoke(*args: str, env: dict[str, str] | None = None):
        result = CliRunner().invoke(cli_app, ["tui", *args, "--preview", "off"], env=env)
        for a in apps:
            a.dataset.close()
        return result, apps[-1] if apps else None
    return invoke


def test_tui_api_url_is_a_pool_and_backend_resolves_as_everywhere(tui_dataset, started, monkeypatch):
    monkeypatch.delenv("FLUXGYM_COACH_BACKEND", raising=False)
    result, app = started(str(tui_dataset), "--api-url", "http://127.0.0.1:7001",
                          "--api-url", "http://u:secret@127.0.0.1:7002")
    assert result.exit_code == 0, result.output
    assert app.api_urls == ["http://127.0.0.1:7001", "http://u:secret@127.0.0.1:7002"]
    assert app.backend_name == "forge"  # auto with servers means forge, as in `enhance`
    assert app._backend_label() == "forge 127.0.0.1:7001 +1"  # no credentials shown
    backend = app._make_backend()
    assert backend.urls == ["http://127.0.0.1:7001", "http://127.0.0.1:7002"]
    # an explicit --backend wins over the servers, as in every command
    result, app = started(str(tui_dataset), "--backend", "local", "--api-url", "http://127.0.0.1:7001")
    assert result.exit_code == 0, result.output
    assert app.backend_name == "local" and app._backend_label() == "local backend"
    assert type(app._make_backend()).__name__ == "LocalBackend"


def test_tui_backend_and_servers_from_the_environment(tui_dataset, started):
    result, app = started(str(tui_dataset), env={"FLUXGYM_COACH_BACKEND": "local"})
    assert result.exit_code == 0, result.output
    assert app.backend_name == "local" and app.api_urls == []
    result, app = started(str(tui_dataset), env={
        "FLUXGYM_COACH_BACKEND": "auto",
        "FLUXGYM_COACH_API_URL": "http://127.0.0.1:7001 http://127.0.0.1:7002"})
    assert result.exit_code == 0, result.output
    assert app.backend_name == "forge" and len(app.api_urls) == 2


def test_tui_unknown_backend_is_a_usage_error(tui_dataset):
    result = CliRunner().invoke(cli_app, ["tui", str(tui_dataset), "--backend", "nonesuch"])
    assert result.exit_code == 2
    assert "--backend" in result.output and "realesrgan" in result.output


def test_the_app_reads_no_backend_variable(tui_dataset, make_tui_app, monkeypatch):
    monkeypatch.setenv("FLUXGYM_COACH_BACKEND", "forge")
    app = make_tui_app(tui_dataset, backend="local", scan=False)
    assert type(app._make_backend()).__name__ == "LocalBackend"
    app.dataset.close()


async def test_cancel_goes_through_worker_cancel(tui_dataset, make_tui_app, make_fake_forge):
    from fluxgym_coach.testing.fake_forge import Faults

    server = make_fake_forge(faults=Faults(image_latency=0.4))
    app = make_tui_app(tui_dataset, api_url=server.url, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        # x2 for every image: one batch in flight (the default size rule gives these photos
        # several scales, so several single-image requests)
        key = app.start_enhance(list(app.index.rows), app.last_params().with_(scale_factor=2.0))
        sink = app._sinks[key]
        await wait_until(pilot, lambda: server.job_requests, "the server working on the batch")
        worker = sink.worker
        assert worker is not None and worker.group == "enhance" and not worker.is_cancelled
        app.cancel_job(key)
        assert worker.is_cancelled  # Textual's Worker.cancel(), not a private registry
        assert app.query_one(JobsPanel).jobs[key].status == "cancelling"
        await settle(pilot, app)
        assert app.query_one(JobsPanel).jobs[key].status == "cancelled"
        assert key not in app.running_jobs()
        # the worker was not cut short: the core saw its cancel event, asked the server to
        # interrupt, and returned its report (a worker cut short would end CANCELLED)
        assert worker.state == WorkerState.SUCCESS and server.interrupts >= 1
        assert sum(1 for r in app.index.rows if r.variants) < 6


def test_caption_server_options_round_trip():
    assert core.caption_server_options("openai", "http://h/v1", "m") == {"base_url": "http://h/v1", "model": "m"}
    assert core.caption_server_options("forge", "http://h:7860", "") == {"url": "http://h:7860"}
    assert core.caption_server_options("florence2", "", "/models/f2") == {"model_path": "/models/f2"}
    assert core.caption_server_options("draft", "http://h", "m") == {}
    for backend, opts in (("openai", {"base_url": "http://h/v1", "model": "m"}),
                          ("forge", {"url": "http://h:7860", "model": "clip"}),
                          ("florence2", {"model_path": "/models/f2"})):
        assert core.caption_server_options(backend, *core.caption_server_fields(backend, opts)) == opts


async def test_export_takes_only_accepted_images_by_the_core_rule(tui_dataset, tmp_path):
    from fluxgym_coach import feedback

    with Dataset(tui_dataset) as ds:
        ds.scan()
        feedback.record_decision(ds.store, feedback.Decision("coffee.png", feedback.ACCEPT, source="cli"))
        assert core.accepted_images(ds) == ["coffee.png"]
        report = await core.export_dataset(ds, tmp_path / "out", "lora", "ohwx", rescan=False,
                                           only_accepted=True)
        assert [f.source for f in report.files] == ["coffee.png"]
        assert load_settings(ds.store).export.only_accepted is True


async def test_export_form_reads_and_writes_the_typed_settings(tui_dataset, make_tui_app, tmp_path):
    with Dataset(tui_dataset) as ds:
        update_settings(ds.store, trigger="ohwx", resolution=768, repeats=4,
                        export={"out_dir": str(tmp_path / "fg"), "name": "astro", "vram": "12G",
                                "only_accepted": True})
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+e")
        await pilot.pause()
        values = {f: app.screen.query_one(f"#field-{f}").value
                  for f in ("out_dir", "name", "trigger", "resolution", "repeats", "vram", "force",
                            "only_accepted")}
        assert values == {"out_dir": str(tmp_path / "fg"), "name": "astro", "trigger": "ohwx",
                          "resolution": "768", "repeats": "4", "vram": "12G", "force": "n",
                          "only_accepted": "y"}
        app.screen.query_one("#field-trigger").value = "sks"
        app.screen.query_one("#field-only_accepted").value = "n"
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        settings = load_settings(app.dataset.store)
        assert settings.trigger == "sks" and settings.export.only_accepted is False
        assert (tmp_path / "fg" / "datasets" / "astro").is_dir()


async def test_view_state_is_reactive(tui_dataset, make_tui_app):
    """Assigning the view state re-applies the list, redraws the status line and is
    remembered, with no hand-called refresh; the search field feeds ``search_text``."""
    from textual.widgets import Static

    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        status = app.query_one("#status", Static)
        app.filter_name = "needs-caption"
        assert app.index.filter == "needs-caption"
        assert len(app.index.view) == 4  # 6 photos, 2 with a caption
        assert "4/6 needs caption" in str(status.render())
        app.sort_name = "size"
        assert app.index.sort == "size" and "sort size" in str(status.render())
        app.filter_name = "all"
        await pilot.press("slash", "c", "h", "e")
        await pilot.pause()
        assert app.search_text == "che" and [r.relpath for r in app.index.view] == ["chelsea.png"]
        assert "search “che”" in str(status.render())
        assert app.dataset.store.get_setting("tui.state")["sort"] == "size"
        app.show_relpath("coffee.png")  # hidden by the search: the view is cleared
        await pilot.pause()
        assert app.search_text == "" and app.filter_name == "all"
        assert app.current.relpath == "coffee.png"
        await settle(pilot, app)


async def test_marks_count_is_reactive(tui_dataset, make_tui_app):
    """space (the list's own key) and "mark all" update the status line's count at once."""
    from textual.widgets import Static

    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        status = app.query_one("#status", Static)
        assert "marked" not in str(status.render())
        await pilot.press("space", "space")
        await pilot.pause()
        assert app.marked == 2 and "2 marked" in str(status.render())
        app.mark_all(True)
        assert app.marked == 6 and "6 marked" in str(status.render())
        app.mark_all(False)
        assert app.marked == 0 and "marked" not in str(status.render())
        await settle(pilot, app)
