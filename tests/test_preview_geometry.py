"""``audit/preview_geometry.py``: what each profile does to the image a preview shows."""

from __future__ import annotations

import pytest
from PIL import Image

from fluxgym_coach.audit.buckets import BucketSettings, place
from fluxgym_coach.audit.faces import FaceBox, save_faces
from fluxgym_coach.audit.preview_geometry import PREVIEW_PROFILES, PROFILE_KEYS, record_view, trainer_view
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.export.fluxgym import BUCKET_STEPS, bucket_settings
from fluxgym_coach.export.framing import choose_window, zero_crop_bucket
from tests.helpers_images import jpeg_with_orientation


@pytest.mark.parametrize("size", [(1536, 1024), (1024, 1536), (3000, 1000), (700, 700), (4000, 900)])
def test_trainer_profiles_are_the_simulators_placement(size):
    for key, _, fields in PREVIEW_PROFILES:
        if key == "export":
            continue
        view = trainer_view(size, 768, key)
        p = place(size, BucketSettings(resolution=768, **fields))
        assert view.bucket == p.bucket and view.scale == pytest.approx(p.scale)
        c = p.crop
        assert view.crop == pytest.approx((max(0, c[0]), max(0, c[1]), min(size[0], c[2]), min(size[1], c[3])))
        kept = (view.crop[2] - view.crop[0]) * (view.crop[3] - view.crop[1])
        assert view.crop_fraction == pytest.approx(1 - kept / (size[0] * size[1]))
        assert view.trainer_crops and view.error is None


def test_kohya_default_matches_the_cli_numbers_and_counts_cut_faces():
    view = trainer_view((1536, 1024), 1024, "kohya", faces=[(0, 300, 150, 500), (600, 300, 800, 500)])
    assert view.bucket == (1024, 704) and view.scale == pytest.approx(0.6875)
    assert view.crop_px == (47, 0) and view.crop_fraction == pytest.approx(0.030303, abs=1e-6)
    assert (view.faces_cut, view.faces) == (1, 2)  # the left one touches the dropped 23 columns
    assert view.title == "kohya 1024"
    square = trainer_view((1536, 1024), 1024, "kohya-nobucket", faces=[(0, 300, 150, 500)])
    assert square.bucket == (1024, 1024) and square.crop_px == (512, 0) and square.faces_cut == 1


def test_export_profile_is_what_the_export_writes_and_kohya_keeps():
    size = (1777, 1000)
    view = trainer_view(size, 1024, "export")
    bucket = zero_crop_bucket(*size, 1024, BUCKET_STEPS)
    assert view.bucket == bucket and not view.trainer_crops
    assert place(bucket, bucket_settings(1024, "zero")).unchanged  # kohya keeps the exported file
    assert view.crop == pytest.approx(choose_window(Image.new("L", size), bucket).window)  # centred, no faces
    assert view.title == "export 1024: no crop by kohya, export drops 27x0 px"
    assert trainer_view((1216, 832), 1024, "export").title == "export 1024: no crop"
    # a face at the left edge: the square centre crop cuts it, the export's window keeps it
    face = [(2, 300, 200, 500)]
    assert trainer_view(size, 1024, "kohya-nobucket", face).faces_cut == 1
    kept = trainer_view(size, 1024, "export", face)
    assert kept.faces_cut == 0 and kept.crop[0] == pytest.approx(0.0)
    tiny = trainer_view((20, 500), 1024, "export")
    assert tiny.error and tiny.crop is None and "cannot bucket" not in tiny.title
    with pytest.raises(KeyError):
        trainer_view(size, 1024, "onetrainer")
    assert PROFILE_KEYS[0] == "kohya"


def test_record_view_uses_the_upright_size_and_the_stored_faces(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    jpeg_with_orientation(root / "rot.jpg", (1200, 800), 6)  # stored landscape, shown portrait 800x1200
    ds = Dataset(root)
    ds.scan()
    rec = ds.store.image("rot.jpg")
    view = record_view(ds.store, rec, 1024)
    assert view.size == (800, 1200) and view.bucket == place((800, 1200), BucketSettings()).bucket
    assert view.faces == 0
    save_faces(ds.store, rec.relpath, rec.digest, [FaceBox(0.1, 0.0, 0.5, 0.1)])  # a face at the top edge
    view = record_view(ds.store, rec, 1024)
    assert (view.faces, view.faces_cut) == (1, 1)
    variant = record_view(ds.store, rec, 1024, size=(1600, 2400))  # an enhanced variant's size
    assert variant.size == (1600, 2400) and variant.faces == 1
