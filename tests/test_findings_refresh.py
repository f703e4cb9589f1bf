"""Findings recomputed for a few images after a change (audit.refresh), checked
against a full audit of the same store."""

from __future__ import annotations

import pytest

from fluxgym_coach.audit.refresh import refresh_findings
from fluxgym_coach.audit.rules import audit_dataset, stored_report
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.store import VariantRecord
from tests.fixtures_tui import tui_dataset  # noqa: F401 - fixture


def _codes(findings) -> list[str]:
    return sorted(f.code for f in findings)


@pytest.fixture
def audited(tui_dataset):  # noqa: F811
    ds = Dataset(tui_dataset)
    report = audit_dataset(ds)
    yield ds, {rel: a.findings for rel, a in report.images.items()}
    ds.close()


def test_a_saved_caption_refreshes_like_a_full_audit(audited):
    ds, before = audited
    assert "caption-missing" in _codes(before["astronaut.png"])
    ds.write_caption("astronaut.png", "an astronaut in a white suit holding a flag on the moon")
    fresh = refresh_findings(ds, ["astronaut.png"], before)
    assert "caption-missing" not in _codes(fresh["astronaut.png"].findings)
    full = audit_dataset(ds, scan=False)
    assert _codes(fresh["astronaut.png"].findings) == _codes(full.images["astronaut.png"].findings)
    assert fresh["astronaut.png"].category == full.images["astronaut.png"].category


def test_a_shared_caption_flags_both_images_and_clears_when_changed(audited):
    ds, before = audited
    chelsea = ds.store.image("chelsea.png").caption
    ds.write_caption("coffee.png", chelsea)
    fresh = refresh_findings(ds, ["coffee.png"], before)
    assert "caption-duplicate" in _codes(fresh["coffee.png"].findings)
    assert "caption-duplicate" in _codes(fresh["chelsea.png"].findings)  # the other image too
    shown = {**before, **{rel: a.findings for rel, a in fresh.items()}}
    ds.write_caption("coffee.png", "a cup of coffee on a saucer, seen from above, on a table")
    again = refresh_findings(ds, ["coffee.png"], shown)
    assert "caption-duplicate" not in _codes(again["coffee.png"].findings)
    assert "caption-duplicate" not in _codes(again["chelsea.png"].findings)
    full = audit_dataset(ds, scan=False)
    assert _codes(again["chelsea.png"].findings) == _codes(full.images["chelsea.png"].findings)


@pytest.mark.parametrize("status,cleared", [("accepted", True), ("pending", True),
                                            ("rejected", False)])
def test_the_exported_variant_is_judged_not_the_original(audited, tmp_path, status, cleared):
    ds, before = audited
    rel = "chelsea.png"  # 451x300: below resolution 1024
    assert "low_resolution" in _codes(before[rel])
    rec = ds.store.image(rel)
    ds.store.add_variant(VariantRecord(rel, "k1", rec.digest, "upscale", {"scale_factor": 4},
                                       "local", str(tmp_path / "v.png"), 1804, 1200))
    ds.store.select_variant(rel, "k1" if status != "rejected" else None, status)
    fresh = refresh_findings(ds, [rel], before)[rel]
    assert ("low_resolution" not in _codes(fresh.findings)) is cleared
    # what no rule here makes (duplicates) is carried over; nothing else is lost
    assert {c for c in _codes(before[rel]) if c != "low_resolution"} <= set(_codes(fresh.findings))
    # a full audit, and the report rebuilt from the store, judge the same exported size
    full = audit_dataset(ds, scan=False).images[rel]
    assert _codes(full.findings) == _codes(fresh.findings)
    assert full.category == fresh.category
    assert _codes(stored_report(ds.store).images[rel].findings) == _codes(fresh.findings)


def test_a_colorized_variant_is_no_longer_grayscale(audited, tmp_path):
    ds, before = audited
    rel = "camera.png"  # a black-and-white photo
    assert "grayscale" in _codes(before[rel])
    rec = ds.store.image(rel)
    ds.store.add_variant(VariantRecord(rel, "c1", rec.digest, "colorize", {}, "forge",
                                       str(tmp_path / "c.png"), rec.width, rec.height))
    ds.store.select_variant(rel, "c1", "accepted")
    assert "grayscale" not in _codes(refresh_findings(ds, [rel], before)[rel].findings)
    assert "grayscale" not in _codes(audit_dataset(ds, scan=False).images[rel].findings)
