"""Decisions the CLI used to make itself, now in the core (one rule for every front end):
the export name, the private --no-cache cache, learned defaults under explicit options,
and which caption backend a Forge server URL belongs to."""

from __future__ import annotations

import pytest

from fluxgym_coach import core
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.enhance.backends.base import EnhanceParams
from fluxgym_coach.feedback import ACCEPT, Decision, record_decision
from fluxgym_coach.settings import update_settings


def test_export_name_given_else_last_export_else_folder(example_dataset):
    with Dataset(example_dataset) as ds:
        assert core.export_name(ds) == example_dataset.name
        update_settings(ds.store, export={"name": "my style"})
        assert core.export_name(ds) == "my style"
        assert core.export_name(ds, "other") == "other"


def test_result_cache_is_shared_unless_private(example_dataset, tmp_path):
    with Dataset(example_dataset) as ds:
        shared = core.result_cache(ds, tmp_path / "cache")
        private = core.result_cache(ds, tmp_path / "cache", private=True)
        assert shared.root == tmp_path / "cache"
        assert private.root.is_relative_to(ds.store.path.parent) and private.root != shared.root


def test_learned_params_keep_what_the_user_gave(example_dataset):
    with Dataset(example_dataset) as ds:
        ds.scan()
        rel = ds.images()[0].relpath
        for i in range(6):
            record_decision(ds.store, Decision(rel, ACCEPT, variant=f"k{i}", source="test",
                                               params={"sharpen": 0.4, "upscaler": "Lanczos"}))
        base = EnhanceParams()
        params, changes, evidence = core.learned_params(ds, base)
        assert changes == {"sharpen": 0.4, "upscaler": "Lanczos"}
        assert params.sharpen == 0.4 and params.upscaler == "Lanczos" and evidence.decisions >= 6
        params, changes, _ = core.learned_params(ds, base.with_(sharpen=0.1), keep={"sharpen"})
        assert changes == {"upscaler": "Lanczos"} and params.sharpen == 0.1


def test_a_forge_url_belongs_to_the_forge_captioner_only():
    name, options = core.caption_backend_choice(None, backend="forge", url="http://h:1", api_auth="u:p")
    assert name == "forge" and options["url"] == "http://h:1" and options["api_auth"] == "u:p"
    with pytest.raises(core.ForgeOnlyOption):
        core.caption_backend_choice(None, backend="draft", url="http://h:1")
    # Forge credentials (e.g. from $FLUXGYM_COACH_API_AUTH) never reach another backend
    name, options = core.caption_backend_choice(None, backend="openai", model="m", api_auth="u:p")
    assert name == "openai" and "api_auth" not in options
