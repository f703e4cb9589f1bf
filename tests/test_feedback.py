"""Review decisions, the learning loop (acceptance rates, suggested defaults), JSON Lines
exchange, the v1 -> v2 schema upgrade, and the review/feedback commands."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from fluxgym_coach import feedback
from fluxgym_coach.enhance.backends.base import EnhanceItem, EnhanceParams
from fluxgym_coach.enhance.backends.local import LocalBackend
from fluxgym_coach.cli import app
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.feedback import (ACCEPT, CAPTION_EDIT, MIN_DECISIONS, REJECT, REPROCESS, Decision,
                                    acceptance_rates, category_matches, decisions, export_decisions,
                                    import_decisions, learn_defaults, record_decision, suggest_defaults,
                                    wilson_lower_bound)
from fluxgym_coach.store import Store, VariantRecord

from .fixtures_audit import textured

runner = CliRunner()


@pytest.fixture
def small_ds(tmp_path):
    """A scanned dataset: two colour photos, one grayscale, with a local-backend variant each."""
    root = tmp_path / "ds"
    root.mkdir()
    textured((320, 320), 1).save(root / "a.png")
    textured((320, 320), 2).save(root / "b.png")
    textured((320, 320), 3, gray=True).save(root / "g.png")
    ds = Dataset(root)
    ds.scan()
    backend = LocalBackend()
    for rec in ds.images():
        params = EnhanceParams(scale_factor=2.0, sharpen=0.5)
        item = EnhanceItem(rec.relpath, b"", rec.digest, rec.width, rec.height, scale=2.0)
        cp = backend.cache_params("upscale", params, item)
        ds.store.add_variant(VariantRecord(rec.relpath, f"key-{rec.relpath}", rec.digest, "upscale", cp,
                                           backend.identity, str(root / rec.relpath), 640, 640))
    yield ds
    ds.close()


def test_record_decision_fills_and_selects(small_ds):
    store = small_ds.store
    d = Decision("a.png", ACCEPT, variant="key-a.png", source="tui")
    did = record_decision(store, d)
    rec = store.image("a.png")
    assert d.digest == rec.digest and d.category == "colour/small/photo"
    assert d.judged["scale"] == 2.0 and d.judged["sharpen"] == 0.5 and d.params == d.judged
    assert d.backend == LocalBackend().identity and d.uid and d.id == did
    assert store.selection()["a.png"] == ("key-a.png", "accepted")
    # the same decision again (same uid) is stored once
    assert record_decision(store, Decision("a.png", ACCEPT, variant="key-a.png", source="tui", at=d.at)) == did
    record_decision(store, Decision("g.png", REJECT, variant="key-g.png"))
    assert store.selection()["g.png"] == (None, "rejected")
    # a reprocess judges the shown variant; params are the new settings asked for
    new = EnhanceParams(sharpen=0.1).to_dict()
    r = Decision("b.png", REPROCESS, variant="key-b.png", params=new)
    record_decision(store, r)
    assert r.judged["sharpen"] == 0.5 and r.params["sharpen"] == 0.1
    assert "b.png" not in store.selection()
    record_decision(store, Decision("b.png", CAPTION_EDIT, params={"caption": "ohwx, a cat"}))
    got = decisions(store)
    assert [x.decision for x in got] == [ACCEPT, REJECT, REPROCESS, CAPTION_EDIT]
    assert got[1].category == "bw/small/photo" and got[3].judged is None
    with pytest.raises(ValueError):
        record_decision(store, Decision("a.png", "maybe"))


def _d(i, decision, category, **judged):
    return Decision(f"img{i}.png", decision, digest=f"d{i}", variant=f"v{i}", judged=judged,
                    params=judged, category=category, at=1000.0 + i)


def test_acceptance_rates_counts_latest_decision_per_variant():
    items = [_d(i, ACCEPT, "bw/small/photo", upscaler="A", sharpen=0.5) for i in range(4)]
    items += [_d(10 + i, REJECT, "bw/small/photo", upscaler="B", sharpen=0.5) for i in range(2)]
    items.append(_d(20, REPROCESS, "colour/large/photo", upscaler="B", size=[1, 2]))
    # img0 was first rejected, then accepted: only the latest counts
    items.insert(0, Decision("img0.png", REJECT, digest="d0", variant="v0", judged={"upscaler": "A"},
                             category="bw/small/photo", at=1.0))
    rows = {(r.category, r.param, r.value): r for r in acceptance_rates(items)}
    a = rows[("bw/small/photo", "upscaler", "A")]
    assert (a.accepted, a.rejected, a.reprocessed, a.total, a.rate) == (4, 0, 0, 4, 1.0)
    b = rows[("bw/small/photo", "upscaler", "B")]
    assert (b.accepted, b.rejected, b.rate) == (0, 2, 0.0)
    assert rows[("bw/small/photo", "sharpen", 0.5)].total == 6
    assert rows[("colour/large/photo", "upscaler", "B")].reprocessed == 1
    assert not any(r.param == "size" for r in rows.values())  # per-image sizes are not settings
    pooled = acceptance_rates(items, per_category=False)
    assert {r.category for r in pooled} == {"*"}
    assert next(r for r in pooled if r.param == "upscaler" and r.value == "B").total == 3
    assert [r.category for r in acceptance_rates(items, "colour")] == ["colour/large/photo"]


def test_wilson_and_category_patterns():
    assert wilson_lower_bound(0, 0) == 0.0
    assert wilson_lower_bound(5, 5) == pytest.approx(0.5655, abs=1e-3)
    assert wilson_lower_bound(50, 50) > wilson_lower_bound(5, 5)
    assert category_matches("bw/small/photo", "bw") and category_matches("bw/small/photo", "*/small")
    assert not category_matches("colour/small/photo", "bw") and category_matches("x/y/z", None)
    assert not category_matches(None, "bw") and not category_matches("bw/small", "bw/small/photo")


def test_suggest_defaults_needs_evidence_and_respects_categories():
    shipped = EnhanceParams()
    few = [_d(i, ACCEPT, "bw/small/photo", upscaler="4x-UltraSharp") for i in range(MIN_DECISIONS - 1)]
    assert suggest_defaults(few) == shipped
    assert not learn_defaults(few).learned
    bw = [_d(i, ACCEPT, "bw/small/photo", upscaler="4x-UltraSharp", denoising_strength=0.3)
          for i in range(6)]
    bw += [_d(50 + i, REJECT, "bw/small/photo", upscaler=shipped.upscaler, denoising_strength=0.5)
           for i in range(6)]
    colour = [_d(100 + i, ACCEPT, "colour/large/photo", upscaler="Lanczos", scale=1.5) for i in range(8)]
    colour += [_d(120 + i, REJECT, "colour/large/photo", upscaler="Lanczos", scale=1.5) for i in range(8)]
    everything = bw + colour
    s = learn_defaults(everything, "bw")
    assert s.changes == {"upscaler": "4x-UltraSharp", "denoising_strength": 0.3}
    assert s.evidence["upscaler"].accepted == 6 and s.params.upscaler == "4x-UltraSharp"
    assert s.params.steps == shipped.steps  # untouched fields keep the shipped value
    # colour: Lanczos at 50 % is eligible (rate >= MIN_RATE) and its lower bound beats the
    # shipped upscaler, which has no evidence in this category
    c = learn_defaults(everything, "colour")
    # (a variant's scale is what the size rule gave that image, enhance/sizing.py: never learned)
    assert c.changes == {"upscaler": "Lanczos"}
    # a base is respected, and a higher bar keeps it
    base = EnhanceParams(upscaler="R-ESRGAN 4x+", steps=30)
    assert suggest_defaults(everything, "bw", base=base, min_count=20) == base
    # shipped default with strong evidence is not replaced by a weaker winner
    strong = [_d(200 + i, ACCEPT, "colour/large/photo", upscaler=shipped.upscaler) for i in range(40)]
    strong += [_d(300 + i, ACCEPT, "colour/large/photo", upscaler="Other") for i in range(5)]
    assert suggest_defaults(strong).upscaler == shipped.upscaler


def test_suggest_defaults_from_a_store(small_ds):
    store = small_ds.store
    for rel in ("a.png", "b.png"):
        record_decision(store, Decision(rel, ACCEPT, variant=f"key-{rel}"))
    assert suggest_defaults(store) == EnhanceParams()  # 2 decisions < MIN_DECISIONS
    s = learn_defaults(store, min_count=2)
    assert s.changes == {"sharpen": 0.5} and s.params.sharpen == 0.5
    assert s.decisions == 2


def test_export_import_merge(small_ds, tmp_path):
    store = small_ds.store
    record_decision(store, Decision("a.png", ACCEPT, variant="key-a.png"))
    record_decision(store, Decision("g.png", REJECT, variant="key-g.png"))
    path = tmp_path / "decisions.jsonl"
    assert export_decisions(store, path) == 2
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert {x["decision"] for x in lines} == {ACCEPT, REJECT}
    assert all(x["uid"] and x["category"] and x["digest"] for x in lines)
    with Store(tmp_path / "other.sqlite") as other:
        rep = import_decisions(other, path)
        assert (rep.added, rep.skipped, rep.invalid) == (2, 0, {})
        again = import_decisions(other, path)
        assert (again.added, again.skipped) == (0, 2)
        assert decisions(other) == []  # imported decisions are learning data only
        merged = decisions(other, include_imported=True)
        assert {d.origin for d in merged} == {"decisions.jsonl"}
        assert other.selection() == {}
        assert acceptance_rates(other, per_category=False)[0].total >= 1
        # a merged store exports everything, and bad lines are reported, not raised
        bad = tmp_path / "bad.jsonl"
        bad.write_text(path.read_text() + "not json\n"
                       + json.dumps({"relpath": "x", "decision": "nope", "at": 1.0}) + "\n\n"
                       + json.dumps([1, 2]) + "\n" + json.dumps({"relpath": "x", "decision": "accept"}) + "\n")
        rep = import_decisions(other, bad)
        assert rep.added == 0 and rep.skipped == 2
        assert set(rep.invalid) == {"bad.jsonl:3", "bad.jsonl:4", "bad.jsonl:6", "bad.jsonl:7"}
        assert "missing at" in rep.invalid["bad.jsonl:7"]
    # importing back into the source store adds nothing (same uids)
    assert import_decisions(store, path).added == 0


def test_v1_decisions_are_upgraded(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL);"
        "INSERT INTO schema_versions VALUES ('feedback', 1);"
        "CREATE TABLE decisions (id INTEGER PRIMARY KEY, relpath TEXT NOT NULL, digest TEXT,"
        " decision TEXT NOT NULL, variant TEXT, params TEXT NOT NULL, backend TEXT, source TEXT NOT NULL,"
        " at REAL NOT NULL);"
        "INSERT INTO decisions(relpath, digest, decision, variant, params, backend, source, at)"
        " VALUES ('a.png', 'd1', 'accept', NULL, '{}', NULL, 'tui', 5.0);")
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.schema_versions()["feedback"] == 2
        (d,) = decisions(store)
        assert d.uid == d.compute_uid() and d.origin is None and d.judged is None


# -- CLI ---------------------------------------------------------------------------
def test_cli_review_and_feedback(small_ds, tmp_path):
    root = str(small_ds.root)
    res = runner.invoke(app, ["review", root, "--accept", "a.png,b.png", "--reject", "g*", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [(r["relpath"], r["decision"]) for r in data["recorded"]] == [
        ("a.png", ACCEPT), ("b.png", ACCEPT), ("g.png", REJECT)]
    assert data["recorded"][0]["variant"] == "key-a.png"  # latest variant judged by default
    assert data["status"]["g.png"]["status"] == "rejected"
    res = runner.invoke(app, ["review", root, "--reject", "a.png", "--variant", "original"])
    assert res.exit_code == 0 and "reject" in res.stdout
    assert runner.invoke(app, ["review", root, "--accept", "nothing*.png"]).exit_code == 2
    assert runner.invoke(app, ["review", root, "--variant", "best"]).exit_code == 2
    listing = runner.invoke(app, ["review", root])
    assert listing.exit_code == 0 and "rejected" in listing.stdout

    res = runner.invoke(app, ["feedback", "stats", root, "--json"])
    assert res.exit_code == 0
    rows = json.loads(res.stdout)
    sharpen = [r for r in rows if r["param"] == "sharpen" and r["category"] == "colour/small/photo"]
    assert sharpen and sharpen[0]["accepted"] == 2
    res = runner.invoke(app, ["feedback", "suggest", root, "--min-count", "2", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["changes"] == {"sharpen": 0.5}
    res = runner.invoke(app, ["feedback", "suggest", root])
    assert res.exit_code == 0 and "shipped defaults kept" in res.stdout

    res = runner.invoke(app, ["feedback", "export", root])
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 4
    out = tmp_path / "x.jsonl"
    assert runner.invoke(app, ["feedback", "export", root, "--out", str(out)]).exit_code == 0
    other = tmp_path / "other"
    other.mkdir()
    res = runner.invoke(app, ["feedback", "import", str(other), str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)[str(out)]["added"] == 4
    out.write_text(out.read_text() + "{broken\n")
    assert runner.invoke(app, ["feedback", "import", str(other), str(out)]).exit_code == 1
    assert runner.invoke(app, ["feedback", "import", str(other), str(tmp_path / "none.jsonl")]).exit_code == 2
    assert runner.invoke(app, ["feedback", "stats", str(tmp_path / "missing")]).exit_code == 2
    assert feedback.MIN_DECISIONS == 5
