"""The core job API (fluxgym_coach.core) and the typed dataset settings: one decision,
used the same way by every front end."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from fluxgym_coach.captions import text as captions
from fluxgym_coach import core
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.settings import (DatasetSettings, load_settings, save_settings, strip_credentials,
                                    update_settings)


def test_trigger_first_is_one_rule_everywhere(example_dataset):
    (example_dataset / "chelsea.txt").write_text("a cat, ohwx, sitting", encoding="utf-8")
    from fluxgym_coach.tui.app import _trigger_first  # what the TUI's `t` applies

    assert _trigger_first("ohwx", "a cat, ohwx, sitting") == "ohwx, a cat, sitting"
    with Dataset(example_dataset) as ds:
        ds.scan()
        captions.bulk_prefix(ds, "ohwx", ["chelsea.png"])
        assert ds.read_caption("chelsea.png").text == "ohwx, a cat, sitting"
        (example_dataset / "coffee.txt").write_text("a cup, ohwx", encoding="utf-8")
        ds.scan()
        captions.bulk_trigger_first(ds, "ohwx", ["coffee.png"])
        assert ds.read_caption("coffee.png").text == "ohwx, a cup"


def test_settings_round_trip_and_one_owner(example_dataset):
    with Dataset(example_dataset) as ds:
        assert load_settings(ds.store) == DatasetSettings()
        update_settings(ds.store, trigger=" ohwx ", caption={"backend": "openai", "options": {
            "base_url": "http://bob:s3cret@127.0.0.1:11434/v1", "model": "llava", "api_key": "sk-x"}})
        s = load_settings(ds.store)
        assert s.trigger == "ohwx"
        assert s.caption.options == {"base_url": "http://127.0.0.1:11434/v1", "model": "llava"}
        raw = str(ds.store.get_setting("dataset.settings"))
        assert "s3cret" not in raw and "sk-x" not in raw
        with pytest.raises(ValidationError):
            update_settings(ds.store, resolution="abc")
        with pytest.raises(ValidationError):
            update_settings(ds.store, trigger="two\nlines")
        update_settings(ds.store, caption={"mode": "overwrite"})  # destructive: never remembered
        assert load_settings(ds.store).caption.mode == "only-missing"


def test_legacy_keys_are_read_once(example_dataset):
    with Dataset(example_dataset) as ds:
        ds.store.set_setting("trigger", "sks")
        ds.store.set_setting("caption.backend", {"backend": "forge", "options": {"url": "http://h:7860"}})
        ds.store.set_setting("tui.export", {"out_dir": "/x", "name": "n", "resolution": 768})
        s = load_settings(ds.store)
        assert (s.trigger, s.resolution, s.caption.backend, s.export.out_dir) == ("sks", 768, "forge", "/x")
        save_settings(ds.store, s.model_copy(update={"trigger": "new"}))
        assert load_settings(ds.store).trigger == "new"


def test_strip_credentials():
    assert strip_credentials("https://u:p@host:7860/x?y=1") == "https://host:7860/x?y=1"
    assert strip_credentials("http://127.0.0.1:7860") == "http://127.0.0.1:7860"
    assert strip_credentials("not a url") == "not a url"


def test_captioner_from_settings_uses_the_saved_server_and_model(example_dataset):
    with Dataset(example_dataset) as ds:
        update_settings(ds.store, caption={"backend": "openai", "options": {
            "base_url": "http://127.0.0.1:9/v1", "model": "qwen2.5-vl"}})
        engine = core.captioner_from_settings(load_settings(ds.store))
        assert type(engine).__name__ == "OpenAICaptioner"
        assert (engine.model, engine.base_url) == ("qwen2.5-vl", "http://127.0.0.1:9/v1")
        assert type(core.captioner_from_settings(load_settings(ds.store), backend="draft")).__name__ == "DraftCaptioner"


def test_backend_from_settings_auto_and_pool(example_dataset):
    with Dataset(example_dataset) as ds:
        # auto without a server: Real-ESRGAN where its engine starts, else the Pillow fallback
        from fluxgym_coach.enhance.backends.realesrgan import probe

        auto = core.backend_from_settings(load_settings(ds.store))
        assert auto.identity.startswith("realesrgan/" if probe().ok else "local")
        asyncio.run(auto.aclose())
        core.remember_forge_pool(ds, ["http://u:p@127.0.0.1:7861", "http://127.0.0.1:7862"])
        s = load_settings(ds.store)
        assert s.enhance.api_urls == ["http://127.0.0.1:7861", "http://127.0.0.1:7862"]
        forge = core.backend_from_settings(s)
        assert type(forge).__name__ == "ForgeBackend"


async def test_enhance_images_selects_pending_where_the_user_has_not_decided(example_dataset):
    from fluxgym_coach.enhance.backends.base import EnhanceParams

    with Dataset(example_dataset) as ds:
        await core.scan(ds)
        ds.store.select_variant("horse.png", None, "accepted")  # the user kept the original
        backend = core.backend_from_settings(load_settings(ds.store), backend="local")
        params = EnhanceParams(target_short_side=640, colorize=False)
        report = await core.enhance_images(ds, ["chelsea.png", "coffee.png", "horse.png"], backend, params)
        sel = ds.store.selection()
        assert {o.name for o in report.outcomes.values() if o.status == "enhanced"} == {
            "chelsea.png", "coffee.png", "horse.png"}
        assert sel["chelsea.png"][1] == "pending" and sel["coffee.png"][1] == "pending"
        assert sel["horse.png"] == (None, "accepted")
        assert load_settings(ds.store).enhance.params["target_short_side"] == 640


async def test_tui_caption_form_prefills_the_saved_backend_server_and_model(tui_dataset, make_tui_app):
    from tests.fixtures_tui import settle

    with Dataset(tui_dataset) as ds:  # what `caption --backend openai ... --set-default` saves
        from fluxgym_coach.captions.job import save_default_backend

        save_default_backend(ds, "openai", {"base_url": "http://127.0.0.1:11434/v1", "model": "llava:13b"})
        update_settings(ds.store, trigger="ohwx")
    app = make_tui_app(tui_dataset, audit=False)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+g")
        await pilot.pause()
        form = app.screen
        assert form.id == "caption-form"
        values = {name: form.query_one(f"#field-{name}").value
                  for name in ("backend", "url", "model", "trigger")}
    assert values == {"backend": "openai", "url": "http://127.0.0.1:11434/v1", "model": "llava:13b",
                      "trigger": "ohwx"}


def test_a_saved_model_folder_inside_the_dataset_is_not_loaded(example_dataset):
    # the store travels with the dataset: a saved florence2 model_path inside it would run its code
    inside = example_dataset / "models" / "florence"
    inside.mkdir(parents=True)
    with Dataset(example_dataset) as ds:
        update_settings(ds.store, caption={"backend": "florence2", "options": {"model_path": str(inside)}})
        with pytest.raises(ValueError, match="inside the dataset"):
            core.captioner_from_settings(load_settings(ds.store), dataset_root=ds.root)
        # given on this run, it is the user's own choice
        name, options = core.caption_backend_choice(load_settings(ds.store), dataset_root=ds.root,
                                                    model=str(inside))
        assert (name, options) == ("florence2", {"model_path": str(inside)})
