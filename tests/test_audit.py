"""Audit: every finding on generated images with known properties, the real images,
bucket maths, duplicate groups, warm audits that decode nothing, and the CLI."""

from __future__ import annotations

import json
import shutil

import PIL.Image
import pytest
from typer.testing import CliRunner

from fluxgym_coach.audit import rules as audit
from fluxgym_coach.audit.buckets import kohya_bucket_list
from fluxgym_coach.audit.rules import (ERROR, INFO, WARNING, Thresholds, audit_dataset, duplicate_groups,
                                       kohya_bucket, stored_findings)
from fluxgym_coach.cli import app
from fluxgym_coach.audit.duplicates import hex_to_uint64, near_duplicate_pairs
from fluxgym_coach.audit.faces import FaceBox, save_faces
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.store import ImageRecord, VariantRecord

from .fixtures_audit import SIDE, textured

runner = CliRunner()


def codes(report, rel):
    return {f.code for f in report.findings(rel)}


def finding(report, rel, code):
    return next(f for f in report.findings(rel) if f.code == code)


# -- generated images ---------------------------------------------------------------
def test_every_finding_on_generated_images(audit_images):
    folder, expected = audit_images
    with Dataset(folder) as ds:
        report = audit_dataset(ds, resolution=SIDE, trigger="ohwx")
    assert set(report.images) == set(expected)
    for rel, want in expected.items():
        got = codes(report, rel)
        assert want <= got, f"{rel}: expected {sorted(want)}, got {sorted(got)}"
    # the sharp, well-exposed colour image at the target resolution is clean
    assert codes(report, "sharp.png") == set()
    # no finding is invented where the property is absent
    for rel in ("sharp.png", "gray.png", "small.png", "alpha.png", "cmyk.jpg"):
        assert "blurry" not in codes(report, rel)
    for rel in ("sharp.png", "dark.png", "alpha.png", "small.png"):
        assert "grayscale" not in codes(report, rel)
    assert "low_resolution" not in codes(report, "sharp.png")
    assert "near_duplicate" not in codes(report, "sharp.png")
    assert "too_dark" not in codes(report, "bright.png") and "too_bright" not in codes(report, "dark.png")


def test_values_thresholds_and_severities(audit_images):
    folder, _ = audit_images
    with Dataset(folder) as ds:
        report = audit_dataset(ds, resolution=SIDE, trigger="ohwx")
        rec = ds.store.image("blurry.png")
    blur = finding(report, "blurry.png", "blurry")
    assert blur.severity == WARNING and blur.value == rec.sharpness and blur.threshold == 100.0
    assert blur.fix and blur.category == "quality"
    # no contrast, no meaningful blur measure: info only, next to the finding to act on
    assert finding(report, "flat.png", "blurry").severity == INFO
    assert finding(report, "flat.png", "low_information").severity == WARNING
    small = finding(report, "small.png", "low_resolution")
    assert small.severity == WARNING and small.value == pytest.approx(SIDE / 320, abs=1e-3)
    assert small.detail["scale_factor"] == 1.75
    tiny = finding(report, "tiny.png", "low_resolution")
    assert tiny.severity == ERROR and tiny.value > 4
    assert finding(report, "corrupt.png", "unreadable").severity == ERROR
    assert report.images["corrupt.png"].bucket is None
    alpha = finding(report, "alpha.png", "alpha")
    assert alpha.severity == WARNING and alpha.value == pytest.approx(0.09, rel=0.05)
    assert finding(report, "alpha_opaque.png", "alpha").severity == INFO
    assert finding(report, "deep16.png", "high_bit_depth").value == 16
    assert finding(report, "anim.gif", "animated").value == 2
    assert finding(report, "rotated.jpg", "exif_rotated").value == 6
    assert finding(report, "mismatch.jpg", "extension_mismatch").value == "PNG"
    dark = finding(report, "dark.png", "too_dark")
    assert dark.value < dark.threshold == 0.32
    crop = finding(report, "tall.png", "bucket_crop")
    assert crop.detail["bucket"] == [256, 1024] and crop.value == pytest.approx(0.2, abs=0.01)
    # exact duplicates: the keeper gets info, the other a warning naming the keeper
    a, b = finding(report, "dup_a.png", "exact_duplicate"), finding(report, "dup_b.png", "exact_duplicate")
    assert {a.severity, b.severity} == {INFO, WARNING}
    # near duplicates: the larger one (near_a, 1024 px) is the keeper
    group = next(g for g in report.groups if g.kind == "near")
    assert group.members == ["near_a.png", "near_b.png"] and group.keeper == "near_a.png"
    assert finding(report, "near_b.png", "near_duplicate").severity == WARNING
    # findings are sorted most serious first
    ranks = [SEV.index(f.severity) for f in report.findings("tiny.png")]
    assert ranks == sorted(ranks)
    assert report.exit_code() == 1 and report.exit_code(strict=True) == 1


SEV = [ERROR, WARNING, INFO]


def test_thresholds_are_parameters(audit_images):
    folder, _ = audit_images
    with Dataset(folder) as ds:
        lax = audit_dataset(ds, resolution=SIDE, thresholds=Thresholds(blur_variance=1.0, near_duplicate_distance=0))
    assert "blurry" not in codes(lax, "blurry.png")          # 3.75 > 1.0
    assert "near_duplicate" not in codes(lax, "near_b.png")  # 4 bits apart > 0
    assert "exact_duplicate" in codes(lax, "dup_b.png")


# -- buckets ----------------------------------------------------------------------
def test_bucket_resolutions_match_sd_scripts():
    b1024 = kohya_bucket_list(1024, 256, 1024, 64)
    assert (1024, 1024) in b1024 and (256, 1024) in b1024 and (1024, 256) in b1024
    assert (704, 1024) in b1024 and (1024, 704) in b1024
    assert all(w % 64 == 0 and h % 64 == 0 and w * h <= 1024 * 1024 for w, h in b1024)
    b512 = kohya_bucket_list(512, 256, 1024, 64)
    assert (512, 512) in b512 and (256, 1024) in b512 and all(w * h <= 512 * 512 for w, h in b512)


def test_kohya_bucket_is_the_simulators():
    sq = kohya_bucket(512, 512, 1024)
    assert sq.size == (1024, 1024) and sq.scale == 2.0 and sq.crop == 0.0
    land = kohya_bucket(1500, 1000, 1024)  # 1.5: nearest bucket 1024x704 (1.4545)
    assert land.size == (1024, 704) and land.resized == (1056, 704)
    assert land.crop == pytest.approx(1 - 1024 / 1056, abs=1e-6) and land.scale < 1
    with pytest.raises(ValueError):
        kohya_bucket(0, 10, 1024)


def test_audit_reports_what_each_trainer_profile_does(tmp_path):
    """Issue 12 item 5: faces cut, upscales past the enhancer's result and small
    buckets, per trainer profile, from the one bucket simulator; the TUI's
    store-only findings say the same."""
    root = tmp_path / "ds"
    root.mkdir()
    textured((1536, 1024), 21).save(root / "wide.png")  # 3:2, 1.5 MP
    textured((512, 512), 22).save(root / "small.png")
    textured((1024, 1024), 23).save(root / "square.png")
    enhanced = tmp_path / "small-x1.5.png"
    textured((768, 768), 22).save(enhanced)
    with Dataset(root) as ds:
        ds.scan()
        wide = ds.store.image("wide.png")
        # a face at the left edge: Fluxgym's square centre crop keeps x 256..1280 of 1536
        save_faces(ds.store, "wide.png", wide.digest, [FaceBox(0.01, 0.1, 0.12, 0.3)])
        ds.store.add_variant(VariantRecord("small.png", "k1", ds.store.image("small.png").digest, "upscale",
                                           {}, "local", str(enhanced), 768, 768))
        ds.store.select_variant("small.png", "k1", "accepted")
        report = audit_dataset(ds, resolution=1024, trigger="ohwx")
        stored = stored_findings(ds.store)
    cut = finding(report, "wide.png", "trainer_face_cut")
    assert cut.severity == WARNING and cut.value == 1 and cut.fix
    assert "kohya (Fluxgym default, no buckets)" in cut.message
    profiles = [p["profile"] for p in cut.detail["profiles"]]
    # kohya's 1024x704 bucket drops 16 px of the 1056-px resize on each side: 23 source px
    assert profiles[:2] == ["kohya (Fluxgym default, no buckets)", "kohya (enable_bucket)"]
    area = finding(report, "wide.png", "trainer_small_area")  # kohya's buckets cap the long side at 1024
    assert area.severity == INFO and area.value == round(1024 * 704 / 1024 ** 2, 4) and area.threshold == 0.8
    assert area.detail["profiles"][0]["bucket"] == [1024, 704]
    # the enhancer's 768x768 is still stretched by every profile that fills 1024x1024
    up = finding(report, "small.png", "trainer_upscale")
    assert up.severity == WARNING and up.value == pytest.approx(1024 / 768, abs=1e-3)
    assert "768x768" in up.message
    assert "low_resolution" in codes(report, "small.png")  # the original's finding stays
    assert not {"trainer_face_cut", "trainer_upscale", "trainer_small_area"} & codes(report, "square.png")
    for rel in ("wide.png", "small.png"):
        assert {f.code for f in stored[rel]} == codes(report, rel)
    # the same problems without an enhanced variant: the upscale is low_resolution's alone
    with Dataset(root) as ds:
        ds.store.select_variant("small.png", None, "accepted")
        again = audit_dataset(ds, resolution=1024, trigger="ohwx")
    assert "trainer_upscale" not in codes(again, "small.png") and "low_resolution" in codes(again, "small.png")


# -- duplicates --------------------------------------------------------------------
def _rec(rel, phash, digest=None, w=512, h=512, **kw):
    return ImageRecord(relpath=rel, size=1, mtime_ns=1, digest=digest or rel, width=w, height=h,
                       phash=phash, **kw)


def test_near_duplicates_are_transitive_and_keeper_is_best():
    a = "0000000000000000"
    b = "00000000000000ff"  # 8 bits from a
    c = "000000000000ffff"  # 8 bits from b, 16 from a
    far = "ffffffffffffffff"
    recs = [_rec("a.png", a, w=256, h=256), _rec("b.png", b, w=1024, h=1024),
            _rec("c.png", c), _rec("far.png", far)]
    i, j, _ = near_duplicate_pairs(hex_to_uint64([a, b, c, far]), 10)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 1), (1, 2)]
    groups = duplicate_groups(recs, 10)
    assert len(groups) == 1
    g = groups[0]
    assert g.kind == "near" and set(g.members) == {"a.png", "b.png", "c.png"}
    assert g.keeper == "b.png"  # most pixels
    assert g.max_distance == 8
    # colour beats grayscale and sharper beats softer at equal size
    recs = [_rec("g.png", a, is_grayscale=True, sharpness=900.0), _rec("s.png", a, sharpness=50.0),
            _rec("t.png", a, sharpness=500.0)]
    assert duplicate_groups(recs, 0)[0].members == ["t.png", "s.png", "g.png"]


def test_near_pairs_scales_in_blocks():
    hashes = [f"{i * 7919:016x}" for i in range(3000)]
    i, _, _ = near_duplicate_pairs(hex_to_uint64(hashes), 0, block=256)
    assert len(i) == 0
    hashes[2999] = hashes[5]
    i, j, _ = near_duplicate_pairs(hex_to_uint64(hashes), 0, block=256)
    assert list(zip(i.tolist(), j.tolist())) == [(5, 2999)]


# -- warm audits -------------------------------------------------------------------
def test_warm_audit_decodes_nothing(audit_images, monkeypatch):
    folder, _ = audit_images
    opened: list[object] = []
    real_open = PIL.Image.open

    def counting_open(fp, *args, **kwargs):
        opened.append(fp)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", counting_open)
    with Dataset(folder) as ds:
        cold = audit_dataset(ds, resolution=SIDE, trigger="ohwx")
    assert cold.measured == len(cold.images) - 2  # the corrupt file and one exact copy are not measured
    assert len(opened) > cold.measured
    opened.clear()
    with Dataset(folder) as ds:
        warm = audit_dataset(ds, resolution=SIDE, trigger="ohwx")
    assert opened == [] and warm.measured == 0
    assert warm.to_dict()["images"] == cold.to_dict()["images"]
    # what the TUI reads: the same findings, from the store alone
    with Dataset(folder) as ds:
        stored = audit.stored_findings(ds.store)
    assert opened == []
    assert set(stored) == {rel for rel, a in cold.images.items() if a.findings}
    assert {f.code for f in stored["blurry.png"]} == codes(cold, "blurry.png")


def test_measures_are_keyed_by_digest(audit_images):
    folder, _ = audit_images
    with Dataset(folder) as ds:
        audit_dataset(ds, resolution=SIDE)
        shutil.copy(folder / "dark.png", folder / "dark_copy.png")
        report = audit_dataset(ds, resolution=SIDE)
    assert report.measured == 0  # same bytes, already measured under its digest
    assert "too_dark" in codes(report, "dark_copy.png")
    assert "exact_duplicate" in codes(report, "dark_copy.png")


def test_changed_file_is_measured_again(audit_images):
    folder, _ = audit_images
    with Dataset(folder) as ds:
        audit_dataset(ds, resolution=SIDE)
        textured((SIDE, SIDE), 3, 220, 256).save(folder / "dark.png")
        report = audit_dataset(ds, resolution=SIDE)
    assert report.measured == 1 and "too_dark" not in codes(report, "dark.png")


# -- captions ----------------------------------------------------------------------
def test_caption_rules(tmp_path):
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        textured((256, 256), i).save(tmp_path / name)
    (tmp_path / "a.txt").write_text("ohwx, a red bicycle leaning on a brick wall", encoding="utf-8")
    (tmp_path / "b.txt").write_text("a red bicycle leaning on a white wall at noon", encoding="utf-8")
    with Dataset(tmp_path) as ds:
        report = audit_dataset(ds, resolution=SIDE, trigger="ohwx")
        plain = audit_dataset(ds, trigger="ohwx", caption_rules=False)
    if not report.caption_rules:
        pytest.skip("fluxgym_coach.captions.text.lint is not available")
    assert not any(c.startswith("caption-") for c in codes(report, "a.png"))
    assert "caption-trigger-missing" in codes(report, "b.png")
    assert "caption-missing" in codes(report, "c.png")
    assert all(f.category == "caption" for f in report.findings("b.png") if f.code.startswith("caption-"))
    assert not any(c.startswith("caption-") for rel in report.images for c in codes(plain, rel))
    assert "no_caption" in codes(plain, "c.png") and "no_caption" not in codes(plain, "a.png")
    assert plain.caption_rules is False


# -- real images -------------------------------------------------------------------
def test_real_images(real_dataset):
    with Dataset(real_dataset) as ds:
        report = audit_dataset(ds, caption_rules=False)
    by = report.by_code()
    assert by["blurry"] == ["clock_motion.png"]
    assert set(by["grayscale"]) == {"brick.png", "camera.png", "clock_motion.png", "coins.png", "horse.png"}
    near = [g for g in report.groups if g.kind == "near"]
    assert [sorted(g.members) for g in near] == [["motorcycle_left.png", "motorcycle_right.png"]]
    for sharp in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "retina.jpg",
                  "hubble_deep_field.jpg", "motorcycle_left.png"):
        assert "blurry" not in codes(report, sharp), sharp
        assert "grayscale" not in codes(report, sharp), sharp
        assert "too_dark" not in codes(report, sharp) and "low_information" not in codes(report, sharp)
    assert "alpha" in codes(report, "horse.png")
    assert report.images["horse.png"].category == "bw/small/drawing"
    assert report.images["astronaut.png"].category == "colour/small/photo"
    assert report.images["retina.jpg"].category == "colour/large/photo"
    assert "low_resolution" in codes(report, "astronaut.png")
    assert "low_resolution" not in codes(report, "retina.jpg")


# -- CLI ---------------------------------------------------------------------------
def test_cli_audit_exit_codes_and_json(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    textured((512, 512), 1).save(good / "a.png")
    (good / "a.txt").write_text("ohwx, a colourful mosaic of small square tiles", encoding="utf-8")
    res = runner.invoke(app, ["audit", str(good), "--trigger", "ohwx", "--json",
                                 "--resolution", "512"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["exit_code"] == 0 and data["counts"]["clean"] == 1
    assert data["images"][0]["bucket"]["size"] == [512, 512]
    # a warning only fails under --strict
    textured((320, 320), 2).save(good / "b.png")
    (good / "b.txt").write_text("ohwx, another colourful mosaic of square tiles", encoding="utf-8")
    assert runner.invoke(app, ["audit", str(good), "--trigger", "ohwx", "--resolution", "512"]).exit_code == 0
    res = runner.invoke(app, ["audit", str(good), "--trigger", "ohwx", "--strict",
                                 "--resolution", "512"])
    assert res.exit_code == 1 and "low_resolution" in res.stdout
    # an error finding fails
    (good / "bad.png").write_bytes(b"garbage")
    res = runner.invoke(app, ["audit", str(good), "--trigger", "ohwx", "--json",
                                 "--resolution", "512"])
    assert res.exit_code == 1 and json.loads(res.stdout)["counts"]["error"] == 1
    assert runner.invoke(app, ["audit", str(tmp_path / "missing")]).exit_code == 2
    assert runner.invoke(app, ["audit", str(good), "--resolution", "100"]).exit_code == 2


def test_audit_rejects_tiny_resolution(tmp_path):
    with Dataset(tmp_path) as ds, pytest.raises(ValueError):
        audit.audit_dataset(ds, resolution=128)



class Cancelled(Exception):
    pass


def test_cancelling_from_the_event_sink_keeps_finished_work(audit_images):
    """Front ends cancel by raising from their sink (the TUI's JobSink does): the audit
    stops, what was measured is kept, and the next audit measures only the rest."""
    from fluxgym_coach.events import ItemDone

    folder, _ = audit_images
    seen: list[str] = []

    def sink(event):
        if isinstance(event, ItemDone) and event.job.startswith("audit"):
            seen.append(event.item)
            if len(seen) == 3:
                raise Cancelled

    with Dataset(folder) as ds:
        ds.scan()
        # the scan stores the extra measures with its records; drop them to exercise the
        # audit's own measuring of a store filled by an older version
        ds.store.execute("DELETE FROM audit_measures")
        with pytest.raises(Cancelled):
            audit_dataset(ds, resolution=SIDE, scan=False, on_event=sink, workers=1)
        kept = len(audit.stored_measures(ds.store))
        assert 3 <= kept < 19
        report = audit_dataset(ds, resolution=SIDE, scan=False)
    assert report.measured == 19 - kept


def test_saved_trigger_is_the_default(tmp_path):
    textured((256, 256), 1).save(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("a red bicycle leaning on a brick wall", encoding="utf-8")
    from fluxgym_coach.settings import update_settings

    with Dataset(tmp_path) as ds:
        assert audit.saved_trigger(ds) is None
        assert "caption-trigger-missing" not in codes(audit_dataset(ds), "a.png")
        update_settings(ds.store, trigger="ohwx")
        assert audit.saved_trigger(ds) == "ohwx"
        report = audit_dataset(ds)
    assert "caption-trigger-missing" in codes(report, "a.png")


# -- long outputs: summary, --all, streamed --json ------------------------------------------
def _many_small(folder, n: int):
    folder.mkdir()
    for i in range(n):  # 64 px images: every one is below the resolution (an error each)
        textured((64, 48), i).save(folder / f"img_{i:03d}.png")
    return folder


def test_cli_audit_summarises_long_outputs_and_lists_all_on_request(tmp_path):
    from typer.testing import CliRunner

    from fluxgym_coach.cli import app
    from fluxgym_coach.cli.audit_output import TABLE_ROWS

    folder = _many_small(tmp_path / "many", TABLE_ROWS + 10)
    runner = CliRunner()
    res = runner.invoke(app, ["audit", str(folder), "--no-captions"])
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    # one summary row for the code, with its count and a few names, not one row per image
    row = next(line for line in lines if "low_resolution" in line)
    assert str(TABLE_ROWS + 10) in row and "img_000.png" in row and f"(+{TABLE_ROWS + 7})" in res.stdout
    assert sum("low_resolution" in line for line in lines) == 1
    assert "--all" in res.stdout
    full = runner.invoke(app, ["audit", str(folder), "--no-captions", "--all"])
    assert full.exit_code == 1
    listed = [line for line in full.stdout.splitlines() if "\tlow_resolution" in line]
    assert len(listed) == TABLE_ROWS + 10
    assert {line.split("\t")[0] for line in listed} == {f"img_{i:03d}.png" for i in range(TABLE_ROWS + 10)}


def test_cli_audit_json_is_streamed_and_complete(tmp_path):
    from typer.testing import CliRunner

    from fluxgym_coach.cli import app

    folder = _many_small(tmp_path / "many", 12)
    shutil.copy(folder / "img_000.png", folder / "copy.png")
    res = CliRunner().invoke(app, ["audit", str(folder), "--no-captions", "--json"])
    data = json.loads(res.stdout)
    with Dataset(folder) as ds:
        want = audit_dataset(ds, resolution=1024, caption_rules=False).to_dict()
    assert data["exit_code"] == res.exit_code == 1 and data["dataset"] == str(folder.resolve())
    for key in ("images", "groups", "counts", "by_code", "thresholds", "resolution", "caption_rules"):
        assert data[key] == json.loads(json.dumps(want[key], default=str)), key
    assert len(data["images"]) == 13 and data["groups"][0]["kind"] == "exact"


# -- issue 11 item 19: which duplicate to keep ---------------------------------------------
def test_duplicate_keeper_prefers_the_original_over_degraded_copies(tmp_path):
    from PIL import Image

    src = textured((256, 192), 4)
    src.save(tmp_path / "a.png")
    pal = src.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    pal.save(tmp_path / "b.png", transparency=0)  # palette + alpha: degraded
    src.save(tmp_path / "c.jpg", quality=60)  # lossy re-encode, sharper-looking artefacts
    src.save(tmp_path / "a copy.png")  # same bytes as a.png, derived name
    with Dataset(tmp_path) as ds:
        report = audit_dataset(ds, resolution=SIDE, caption_rules=False)
    near = next(g for g in report.groups if g.kind == "near")
    exact = next(g for g in report.groups if g.kind == "exact")
    assert near.keeper == "a.png" and exact.keeper == "a.png"
    assert near.reasons["c.jpg"] == "lossless PNG (vs lossy JPEG)"
    assert near.reasons["b.png"] == "full colour (the other is a palette image)"
    assert exact.reasons["a copy.png"] == "original name (a copy.png looks derived)"
    msg = next(f for f in report.findings("c.jpg") if f.code == "near_duplicate").message
    assert "keep a.png (lossless PNG (vs lossy JPEG))" in msg
    # more pixels comes first: a 2x larger copy is the one to keep
    src.resize((512, 384)).save(tmp_path / "big.png")
    with Dataset(tmp_path) as ds:
        report = audit_dataset(ds, resolution=SIDE, caption_rules=False)
    near = next(g for g in report.groups if g.kind == "near")
    assert near.keeper == "big.png" and near.reasons["a.png"] == "more pixels (512x384 vs 256x192)"


def test_cold_audit_decodes_each_image_once(audit_images, monkeypatch):
    """One read and one decode per file serve the scan's and the audit's measures (no
    second decode in measure_extra); threads, so every open is counted here."""
    folder, _ = audit_images
    opened: list[object] = []
    real_open = PIL.Image.open

    def counting_open(fp, *args, **kwargs):
        opened.append(fp)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", counting_open)
    monkeypatch.setattr(audit, "measure_extra", lambda p: pytest.fail(f"second decode of {p}"))
    from fluxgym_coach.audit import faces
    detected: list[object] = []
    real_detect = faces.detect_file

    def counting_detect(path, *size):
        detected.append(path)
        return real_detect(path, *size)

    monkeypatch.setattr(faces, "detect_file", counting_detect)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix != ".txt"]
    with Dataset(folder) as ds:
        ds.scan(processes=False)
        report = audit_dataset(ds, resolution=SIDE, scan=False)
        stored = audit.stored_measures(ds.store)
    # the measures: one open per file (the corrupt one too, and it fails); face detection
    # (issue 12) opens only the images a trainer profile crops, each once
    assert len(detected) == len(set(detected)) < len(files)
    assert len(opened) == len(files) + len(detected)
    assert report.measured == 0 and len(stored) == len(files) - 2  # corrupt, one exact copy
