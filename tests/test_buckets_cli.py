"""``fluxgym-coach buckets`` and the per-image bucket findings."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from typer.testing import CliRunner

from fluxgym_coach.audit.buckets import BucketSettings, crop_rectangle
from fluxgym_coach.audit.trainer_rules import dataset_bucket_findings, profile_findings
from fluxgym_coach.cli import app
from fluxgym_coach.dataset import Dataset
from tests.helpers_images import jpeg_with_orientation

runner = CliRunner()
GOLDEN = Path(__file__).parent / "data" / "buckets" / "kohya.jsonl.gz"


def test_json_agrees_with_kohyas_own_functions_in_input_order(tmp_path):
    with gzip.open(GOLDEN, "rt") as fh:
        rows = [json.loads(x) for x in fh]
    rows = [r for r in rows if r["resolution"] == 1024 and r["enable_bucket"] and not r["bucket_no_upscale"]
            and r["max_bucket_reso"] == 2048 and r["bucket_reso_steps"] == 64][:300]
    assert len(rows) >= 100
    listing = tmp_path / "sizes.txt"
    listing.write_text("# sizes\n" + "\n".join(f"{r['size'][0]}x{r['size'][1]}" for r in rows[1:]) + "\n")
    first = f"{rows[0]['size'][0]}x{rows[0]['size'][1]}"
    r = runner.invoke(app, ["buckets", "--trainer", "kohya", "--resolution", "1024", "--max-bucket-reso", "2048",
                            "--size", first, "--sizes-from", str(listing), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert len(got) == len(rows)
    for g, want in zip(got, rows):
        assert g["size"] == want["size"] and g["bucket"] == want["bucket"] and g["resized"] == want["resized"]
        assert set(g) >= {"crop", "crop_fraction", "scale"}


def test_dataset_sizes_are_display_sizes_and_bad_input_is_named(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    jpeg_with_orientation(root / "rot.jpg", (1200, 800), 6)  # stored landscape, shown portrait
    r = runner.invoke(app, ["buckets", str(root), "--json"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    assert row["size"] == [800, 1200] and row["input"] == "rot.jpg"
    r = runner.invoke(app, ["buckets", "--size", "12by7"])
    assert r.exit_code == 2 and "WIDTHxHEIGHT" in r.output
    r = runner.invoke(app, ["buckets", "--size", "6000x4000", "--trainer", "simpletuner", "--resolution-type", "area",
                            "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["bucket"] == [1280, 832] and json.loads(r.stdout)[0]["resized"] == [1280, 853]
    r = runner.invoke(app, ["buckets", "--size", "100x100", "--trainer", "simpletuner", "--crop", "--crop-aspect",
                            "closest"])
    assert r.exit_code == 2 and "crop_aspect_buckets" in r.output
    assert "Example:" in runner.invoke(app, ["buckets", "--help"]).stdout
    r = runner.invoke(app, ["buckets", "--size", "1536x1024", "--trainer", "diffusion-pipe", "-r", "512",
                            "--bucket-reso-steps", "16", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["bucket"] == [640, 400]


def test_simpletuner_sizes_are_one_dataset_and_its_random_crop_is_a_range():
    # both 1:5-ish sizes have the target aspect key 0.19 at 1 MP; the first one met sets its size
    base = ["buckets", "--trainer", "simpletuner", "--resolution-type", "area", "-r", "1000", "--json"]
    r = runner.invoke(app, [*base, "--size", "1276x6767", "--size", "1133x5571"])
    assert r.exit_code == 0, r.output
    first, second = json.loads(r.stdout)
    assert first["bucket"] == second["bucket"] == [448, 2368]
    assert first["order_dependent"] and second["order_dependent"]
    (alone,) = json.loads(runner.invoke(app, [*base, "--size", "1133x5571"]).stdout)
    assert alone["bucket"] == [448, 2304] and "order_dependent" not in alone
    assert alone["crop_offset"] == "random" and alone["offset_max"][0] + alone["offset_max"][1] > 0
    (centre,) = json.loads(runner.invoke(app, [*base, "--size", "1133x5571", "--crop-style", "center"]).stdout)
    assert centre["crop_offset"] == "fixed"


def test_findings_name_face_cuts_upscales_and_small_areas():
    # a 3:2 photo under Fluxgym's square crop, with a face at the left edge
    found = profile_findings("a.png", (1536, 1024), 1024, faces=[(10, 100, 200, 300)])
    kinds = {(f.profile, f.kind) for f in found}
    assert ("kohya (Fluxgym default, no buckets)", "face-cut") in kinds
    assert ("kohya (enable_bucket)", "small-area") in kinds  # 1024x704 is 69 %
    small = profile_findings("b.png", (500, 400), 1024)
    assert any(f.kind == "upscale" for f in small)
    assert profile_findings("c.png", (1216, 832), 1024, profiles=(("kohya nu", dict(bucket_no_upscale=True)),)) == []
    assert crop_rectangle((1536, 1024), BucketSettings(enable_bucket=False)) == (256.0, 0.0, 1280.0, 1024.0)
    # above 1024 the kohya profiles raise max_bucket_reso with the resolution (kohya asserts it)
    big = profile_findings("d.png", (2048, 1536), 1536)
    assert not any("max_bucket_reso" in f.message for f in big)
    (area,) = [f for f in big if f.kind == "small-area"]  # the long side is capped at 1536 as well
    assert area.profile == "kohya (enable_bucket)" and area.bucket == (1536, 1152) and area.value == 0.75


def test_dataset_findings_read_the_store(example_dataset):
    with Dataset(example_dataset) as ds:
        ds.scan()
        got = dataset_bucket_findings(ds, 1024)
    assert "chelsea.png" in got and any(f.kind == "upscale" for f in got["chelsea.png"])
