"""Fixtures of the safety tests (auto-loaded by conftest.py): every test gets its own
user config folder, so plugin trust recorded by one test (or by the user) never leaks."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path_factory, monkeypatch):
    """``$FLUXGYM_COACH_CONFIG_DIR`` points at a fresh folder for every test."""
    monkeypatch.setenv("FLUXGYM_COACH_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
