"""The bucket simulator against golden tables made by running the trainers' own code.

``tests/data/buckets/kohya.jsonl.gz``: kohya-ss/sd-scripts sd3 @ 3265f2ed,
``make_bucket_resolutions``, ``BucketManager.select_bucket`` and
``trim_and_resize_if_required`` run on random sizes (1x1..8000x8000, aspect up
to 16:1) for resolution 512/768/1024 x bucket on/off x no_upscale on/off x
max_bucket_reso 1024/2048 (plus two odd step/limit combinations).
``ai-toolkit.jsonl.gz``: ostris/ai-toolkit @ 27a03a91 ``setup_buckets``.
``simpletuner.jsonl.gz``: bghira/SimpleTuner @ bc8e6ab7, ``TrainingSample.prepare``
with its geometry modules loaded unchanged (``tests/data/buckets/make_simpletuner.py``).
Rows with ``error`` are sizes where the trainer itself raises.
"""

import gzip
import json
from pathlib import Path

import pytest

from fluxgym_coach.audit.buckets import BucketError, BucketSettings, place, place_many, placer

DATA = Path(__file__).parent / "data" / "buckets"


def _rows(name):
    with gzip.open(DATA / name, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def _kohya_settings(row):
    return BucketSettings("kohya", row["resolution"], row["enable_bucket"], row["bucket_no_upscale"],
                          row["min_bucket_reso"], row["max_bucket_reso"], row["bucket_reso_steps"])


def test_kohya_golden_table_matches_every_row():
    rows = _rows("kohya.jsonl.gz")
    assert len(rows) >= 2000
    combos = {(r["resolution"], r["enable_bucket"], r["bucket_no_upscale"], r["max_bucket_reso"]) for r in rows}
    assert len(combos) >= 24
    mismatches = []
    for row in rows:
        s = _kohya_settings(row)
        try:
            p = place(tuple(row["size"]), s)
        except BucketError:
            if "error" not in row:
                mismatches.append((row, "raised"))
            continue
        if "error" in row:
            mismatches.append((row, "kohya raised, we did not"))
            continue
        got = (list(p.bucket), list(p.resized), list(p.offset))
        if got != (row["bucket"], row["resized"], row["crop_offset"]):
            mismatches.append((row, got))
    assert not mismatches, mismatches[:5]


def test_aitk_golden_table_matches_every_row():
    rows = _rows("ai-toolkit.jsonl.gz")
    assert len(rows) >= 1000
    bad = []
    for row in rows:
        s = BucketSettings("ai-toolkit", row["resolution"], not row["square_crop"],
                           bucket_reso_steps=row["bucket_tolerance"])
        p = place(tuple(row["size"]), s)
        if (list(p.bucket), list(p.resized), list(p.offset)) != (row["bucket"], row["resized"], row["crop_offset"]):
            bad.append((row, p))
    assert not bad, bad[:5]


def test_reference_examples_and_crop_in_source_pixels():
    # reference table: 1024x1536 at 1024 with buckets -> 704x1024 (max_bucket_reso caps the long side)
    p = place((1024, 1536), BucketSettings(resolution=1024))
    assert p.bucket == (704, 1024) and p.resized == (704, 1056) and p.offset == (0, 16)
    left, top, right, bottom = p.crop
    assert left == 0 and right == pytest.approx(1024)
    assert top == pytest.approx(16 * 1536 / 1056) and bottom - top == pytest.approx(1024 * 1536 / 1056)
    assert 0.03 < p.crop_fraction < 0.031
    # no bucket: Fluxgym's own toml -> a centred square
    sq = place((768, 1024), BucketSettings(resolution=768, enable_bucket=False))
    assert sq.bucket == (768, 768) and sq.offset == (0, 128)
    # an image already at a bucket-size multiple with no_upscale is kept as it is
    keep = place((1216, 832), BucketSettings(resolution=1024, bucket_no_upscale=True))
    assert keep.unchanged


def test_kohya_failures_and_unknown_trainers_are_named():
    out = place_many([(900, 30), (900, 600)], BucketSettings(resolution=512, bucket_no_upscale=True))
    assert isinstance(out[0], BucketError) and "ZeroDivisionError" in str(out[0])
    assert out[1].bucket == (576, 384) and out[1].resized == (576, 384)
    with pytest.raises(BucketError, match="unknown trainer"):
        placer(BucketSettings(trainer="onetrainer"))
    with pytest.raises(BucketError, match="max_bucket_reso"):
        placer(BucketSettings(resolution=1024, max_bucket_reso=768))


def test_zero_crop_sizes_are_kept_by_kohya_and_fill_90_percent_up_to_3_to_1():
    import random

    from fluxgym_coach.export.fluxgym import bucket_settings
    from fluxgym_coach.export.framing import zero_crop_bucket
    rng = random.Random(3)
    settings = bucket_settings(1024)
    worst_area, worst_cut = 1.0, 0.0
    for _ in range(2000):
        ar = rng.uniform(1.0, 3.0)
        area = rng.uniform(1024 * 1024, 6000 * 4000)
        w, h = round((area * ar) ** 0.5), round((area / ar) ** 0.5)
        if rng.random() < 0.5:
            w, h = h, w
        if w * h < 1024 * 1024:
            continue
        b = zero_crop_bucket(w, h, 1024)
        assert place(b, settings).unchanged  # kohya neither rescales nor crops it
        worst_area = min(worst_area, b[0] * b[1] / 1024 ** 2)
        a = b[0] / b[1]
        worst_cut = max(worst_cut, 1 - min(a / (w / h), (w / h) / a))
    assert worst_area >= 0.9
    assert worst_cut < 0.04


def test_zero_crop_band_search_equals_the_exhaustive_search():
    import random

    from fluxgym_coach.export.framing import zero_crop_bucket
    rng = random.Random(11)
    for _ in range(1500):
        w, h = rng.randint(1, 8000), rng.randint(1, 8000)
        if max(w, h) / min(w, h) > 16:
            continue
        for res in (512, 1024):
            assert zero_crop_bucket(w, h, res) == zero_crop_bucket(w, h, res, exhaustive=True), (w, h, res)


def test_diffusion_pipe_golden_table_matches_every_row():
    rows = _rows("diffusion-pipe.jsonl.gz")  # tdrussell/diffusion-pipe @ 8f83dbf, ImageOps.fit's box captured
    assert len(rows) >= 1000
    bad = []
    for row in rows:
        s = BucketSettings("diffusion-pipe", row["resolution"], row["enable_ar_bucket"],
                           bucket_reso_steps=row["multiple"], min_ar=row["min_ar"], max_ar=row["max_ar"],
                           num_ar_buckets=row["num_ar_buckets"])
        p = place(tuple(row["size"]), s)
        if list(p.bucket) != row["bucket"] or any(abs(a - b) > 1e-9 for a, b in zip(p.crop, row["box"])):
            bad.append((row, p))
    assert not bad, bad[:5]


def _simpletuner_settings(row):
    area = row["resolution_type"] == "area"

    def edge(v):  # SimpleTuner's area values are megapixels; ours are pixel edges (its pixel_area)
        return None if v is None else (round((v * 1e6) ** 0.5) if area else v)

    return BucketSettings("simpletuner", edge(row["resolution"]), bucket_reso_steps=row["alignment"],
                          resolution_type=row["resolution_type"], crop=row["crop"], crop_style=row["crop_style"],
                          crop_aspect=row["crop_aspect"],
                          crop_aspect_buckets=(0.5, 0.67, 0.75, 1.0, 1.33, 1.5, 2.0)
                          if row["crop_aspect"] == "closest" else (),
                          maximum_image_size=edge(row.get("maximum_image_size")),
                          target_downsample_size=edge(row.get("target_downsample_size")))


def test_simpletuner_golden_table_matches_every_row():
    rows = _rows("simpletuner.jsonl.gz")
    assert len(rows) >= 2000
    assert {(r["resolution_type"], r["crop"], r["crop_aspect"]) for r in rows} >= {
        ("pixel", False, "square"), ("area", False, "square"), ("pixel", True, "square"),
        ("area", True, "preserve"), ("pixel", True, "closest")}
    bad = []
    for row in rows:
        p = place(tuple(row["size"]), _simpletuner_settings(row))
        got, want = (list(p.bucket), list(p.resized), list(p.offset)), (row["target"], row["resized"], row["offset"])
        if row["crop_style"] == "random":  # SimpleTuner draws the offset; we report the centre
            got, want = got[:2], want[:2]
        if got != want:
            bad.append((row, got))
    assert not bad, bad[:5]


def test_simpletuner_flux_defaults_on_a_3_2_photo():
    # FLUX quickstart: resolution 1024, pixel_area, crop off, alignment 64
    s = BucketSettings("simpletuner", 1024, resolution_type="area")
    p = place((6000, 4000), s)
    assert (p.bucket, p.resized, p.offset) == ((1280, 832), (1280, 853), (0, 10))  # 2.5 % cut top and bottom
    # pixel mode: the short side becomes the resolution; a 3:2 aspect fits the 64 grid exactly
    assert place((6000, 4000), s.with_(resolution_type="pixel")).bucket == (1536, 1024)
    with pytest.raises(BucketError, match="crop_style"):
        placer(s.with_(crop_style="face"))
