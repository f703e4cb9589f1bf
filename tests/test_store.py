"""store.py: per-component migrations, settings, caption history, selection."""

from __future__ import annotations

import sqlite3

import pytest

from fluxgym_coach import store as store_mod
from fluxgym_coach.store import ImageRecord, Store, StoreError


def test_new_store_has_every_component_at_its_latest_version(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        versions = s.schema_versions()
    assert versions["core"] == len(store_mod._SCHEMAS["core"])
    assert versions["jobs"] == len(store_mod._SCHEMAS["jobs"])


def test_a_component_registered_later_is_migrated_on_next_open(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    monkeypatch.setitem(store_mod._SCHEMAS, "extra", ["CREATE TABLE extra_t (x INTEGER)"])
    with Store(path) as s:
        assert s.schema_versions()["extra"] == 1
        s.execute("INSERT INTO extra_t VALUES (1)")
    monkeypatch.setitem(store_mod._SCHEMAS, "extra", ["CREATE TABLE extra_t (x INTEGER)",
                                                      "ALTER TABLE extra_t ADD COLUMN y TEXT"])
    with Store(path) as s:
        assert s.schema_versions()["extra"] == 2
        assert s.execute("SELECT x, y FROM extra_t")[0][0] == 1


def test_a_failing_migration_rolls_back_and_keeps_the_version(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    monkeypatch.setitem(store_mod._SCHEMAS, "bad", ["CREATE TABLE ok_t (x INT); CREATE TABLE ok_t (x INT)"])
    with pytest.raises(sqlite3.OperationalError):
        Store(path)
    monkeypatch.setitem(store_mod._SCHEMAS, "bad", ["CREATE TABLE ok_t (x INT)"])
    with Store(path) as s:
        assert s.schema_versions()["bad"] == 1


def test_a_store_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.execute("UPDATE schema_versions SET version = 99 WHERE component = 'core'")
    with pytest.raises(StoreError, match="newer than this fluxgym-coach"):
        Store(path)


def test_images_roundtrip_and_delete(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.upsert_images([ImageRecord("a.png", 10, 1, digest="d", width=30, height=20,
                                     orientation=6, is_grayscale=True)])
        rec = s.image("a.png")
        assert rec.is_grayscale is True and rec.display_size == (20, 30) and rec.short_side == 20
        s.select_variant("a.png", "k", "accepted")
        assert s.delete_images(["a.png"]) == 1
        assert s.image("a.png") is None and s.selection() == {}


def test_settings_are_json(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.set_setting("last", {"scale": 2, "upscaler": "Lanczos"})
        assert s.get_setting("last") == {"scale": 2, "upscaler": "Lanczos"}
        assert s.get_setting("missing", 5) == 5
