"""SimpleTuner at the dataset level: the first target size per aspect is reused, and the
random crop is reported as a range.

``simpletuner_datasets.jsonl.gz``: bghira/SimpleTuner @ bc8e6ab7, whole datasets
(40 photo-like and 200 random sizes each) prepared one after another by ``TrainingSample.prepare``
with one per-aspect cache per dataset, the geometry modules loaded unchanged
(``tests/data/buckets/make_simpletuner.py --datasets``).
"""

import gzip
import json
from itertools import groupby
from pathlib import Path

from fluxgym_coach.audit.bucket_simpletuner import AspectMap, simpletuner_plan
from fluxgym_coach.audit.buckets import BucketSettings, place, place_many

from .test_buckets import _simpletuner_settings

DATA = Path(__file__).parent / "data" / "buckets"


def _datasets():
    with gzip.open(DATA / "simpletuner_datasets.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [sorted(g, key=lambda r: r["index"]) for _, g in groupby(rows, key=lambda r: r["dataset"])]


def _got(p, row):
    got, want = (list(p.bucket), list(p.resized), list(p.offset)), (row["target"], row["resized"], row["offset"])
    if row["crop_style"] == "random":  # drawn by SimpleTuner: compare the range instead
        assert p.random_crop or p.offset_max == (0, 0)
        assert all(0 <= o <= m for o, m in zip(row["offset"], p.offset_max)), (row, p)
        return got[:2], want[:2]
    return got, want


def test_a_whole_dataset_matches_simpletuner_with_its_first_seen_sizes():
    datasets = _datasets()
    assert len(datasets) >= 20 and sum(len(d) for d in datasets) >= 1600
    bad, reused, flagged = [], 0, 0
    for rows in datasets:
        s = _simpletuner_settings(rows[0])
        plan = simpletuner_plan([tuple(r["size"]) for r in rows], s)
        assert place_many([tuple(r["size"]) for r in rows], s) == plan  # the CLI's path
        for row, p in zip(rows, plan):
            got, want = _got(p, row)
            if got != want:
                bad.append((row, got))
            alone = place(tuple(row["size"]), s)  # as the first of its aspect
            if list(alone.bucket) != row["target"]:
                reused += 1
                flagged += p.order_dependent  # another order could give it its own size back
    assert not bad, bad[:5]
    # the data exercises the reuse: these rows differ from the per-size answer, and each is flagged
    assert reused >= 20 and flagged == reused, (reused, flagged)


def test_pixel_mode_never_reuses_and_nothing_is_order_dependent():
    rows = [r for d in _datasets() for r in d if r["resolution_type"] == "pixel"]
    assert rows
    s = _simpletuner_settings(rows[0])
    plan = simpletuner_plan([tuple(r["size"]) for r in rows], s)
    assert not any(p.order_dependent for p in plan)
    assert [p.bucket for p in plan] == [place(tuple(r["size"]), s).bucket for r in rows]


def test_the_first_size_of_an_aspect_wins_and_a_saved_map_fixes_it():
    s = BucketSettings("simpletuner", 1024, resolution_type="area", crop_style="center")
    # 1.52:1 -> 1280x832 (aspect key 1.54); 1.58:1 -> 1280x832 too; 1.48:1 -> 1216x832 (1.46)
    a, b = place((1520, 1000), s), place((1480, 1000), s)
    assert a.bucket != b.bucket
    key_a = round(a.bucket[0] / a.bucket[1], 2)
    # a saved map (aspect_resolution_map-1.048576.json) decides that key, in any order
    amap = AspectMap({str(key_a): [1344, 768]}, megapixels=1.048576)
    (p,) = simpletuner_plan([(1520, 1000)], s, amap)
    assert p.bucket == (1344, 768) and not p.order_dependent


def test_random_crop_is_reported_as_a_range():
    s = BucketSettings("simpletuner", 1024, resolution_type="area")  # crop_style random by default
    p = place((6000, 4000), s)
    j = p.as_json()
    assert j["crop_offset"] == "random" and j["offset_max"] == [0, 21]
    assert j["crop_range"] == [0.0, 0.0, 6000.0, 4000.0]  # any 853-px band of the height may be kept
    assert p.offset == (0, 10)  # the centre of the range
    centred = place((6000, 4000), s.with_(crop_style="center")).as_json()
    assert centred["crop_offset"] == "fixed" and "offset_max" not in centred


def test_a_face_any_random_offset_may_cut_is_reported_where_the_centre_keeps_it():
    from fluxgym_coach.audit.trainer_rules import profile_findings
    s = BucketSettings("simpletuner", 1024, resolution_type="area")
    p = place((6000, 4000), s)
    top_centred, top_always = p.crop[1], p.always_kept[1]
    assert round(top_centred) == 47 and round(top_always) == 98  # rows 0..98 may be dropped
    face = (2000, 60, 2600, 700)  # kept by the centred window, not by every random one
    found = profile_findings("a.png", (6000, 4000), 1024, faces=[face])
    (cut,) = [f for f in found if f.kind == "face-cut" and f.profile.startswith("simpletuner")]
    assert "random crop can cut 1 face" in cut.message
    fixed = place((6000, 4000), s.with_(crop_style="center"))
    assert fixed.always_kept == fixed.crop and fixed.crop[1] < face[1]
