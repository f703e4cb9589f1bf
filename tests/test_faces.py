"""Face boxes from OpenCV's bundled cascades keep faces inside the exported crop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from fluxgym_coach.audit import faces
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.export.fluxgym import export_dataset
from fluxgym_coach.export.framing import choose_window, zero_crop_bucket

pytestmark = pytest.mark.skipif(
    not faces.detector_available(),
    reason="needs opencv-python-headless<5 (OpenCV 5 has no cv2.CascadeClassifier); "
           "an opencv-python 5 installed by another package hides it")

SIZE, RESOLUTION = (660, 1480), 320  # the grid drops 80 px at the top and at the bottom
ASTRONAUT = Path(__file__).parents[1] / "examples" / "dataset" / "astronaut.png"


def _tall_canvas() -> Image.Image:
    """The astronaut photo near the top edge of a 660x1480 grey canvas."""
    canvas = Image.new("RGB", SIZE, (128, 128, 128))
    with Image.open(ASTRONAUT) as im:
        canvas.paste(im.convert("RGB"), (74, -20))
    return canvas


def _inside(box, window) -> bool:
    return box[0] >= window[0] and box[1] >= window[1] and box[2] <= window[2] and box[3] <= window[3]


def test_a_face_near_the_top_stays_whole_where_a_centre_crop_cuts_it(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    _tall_canvas().save(root / "portrait.png")
    found = faces.detect_faces(_tall_canvas())
    assert len(found) >= 1
    face = max((b.pixels(*SIZE) for b in found), key=lambda b: b[2] - b[0])
    bucket = zero_crop_bucket(*SIZE, RESOLUTION)
    centre = choose_window(Image.new("RGB", SIZE), bucket).window  # flat: centred
    assert face[1] < centre[1]  # the face sits in the band a centre crop drops
    assert not _inside(face, centre)
    with Dataset(root) as ds:
        ds.scan()
        report = export_dataset(ds, tmp_path / "fg", "p", "ohwx", resolution=RESOLUTION)
        (f,) = report.files
        assert (f.width, f.height) == bucket and f.framing == "faces"
        assert _inside(face, f.crop)
        # stored per image, reused by the next export (no second detection)
        rec = ds.store.image("portrait.png")
        assert faces.stored_faces(ds.store, "portrait.png", rec.digest) == found
    manifest = [json.loads(line) for line in (tmp_path / "fg/outputs/p/manifest.jsonl").read_text().splitlines()]
    assert manifest[0]["crop"] == f.crop


def test_no_face_in_a_flat_image_and_the_store_remembers_it(tmp_path):
    flat = Image.new("RGB", (800, 600), (40, 90, 200))
    assert faces.detect_faces(flat) == []
    from fluxgym_coach.store import Store
    with Store(tmp_path / "s.sqlite") as store:
        store.migrate()
        assert faces.faces_for(store, "a.png", "d1", flat) == []
        assert faces.stored_faces(store, "a.png", "d1") == []
        assert faces.stored_faces(store, "a.png", "other-digest") is None  # changed file: detect again
