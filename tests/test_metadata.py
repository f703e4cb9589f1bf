"""Technical metadata: EXIF camera/lens/date/exposure, ICC, DPI, bit depth, animation; store and CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageCms
from typer.testing import CliRunner

from fluxgym_coach import imaging, metadata
from fluxgym_coach.cli import app
from fluxgym_coach.dataset import Dataset


def make_camera_jpeg(path):
    """A JPEG with the EXIF a camera writes, an sRGB profile and 300 DPI."""
    exif = Image.Exif()
    exif[metadata.MAKE] = "Canon"
    exif[metadata.MODEL] = "Canon EOS R5"
    exif[metadata.DATETIME] = "2024:05:01 10:00:00"
    sub = exif.get_ifd(metadata.EXIF_IFD)
    sub[metadata.EXPOSURE_TIME] = 0.004  # 1/250 s
    sub[metadata.F_NUMBER] = 2.8
    sub[metadata.ISO] = 400
    sub[metadata.FOCAL_LENGTH] = 50.0
    sub[metadata.LENS_MODEL] = "RF50mm F1.8 STM"
    sub[metadata.DATETIME_ORIGINAL] = "2024:05:01 09:59:58"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.new("RGB", (64, 48), (200, 100, 50)).save(path, "JPEG", exif=exif, icc_profile=icc,
                                                    dpi=(300, 300))


def test_extract_camera_jpeg(tmp_path):
    p = tmp_path / "photo.jpg"
    make_camera_jpeg(p)
    m = metadata.extract(p)
    assert m["camera"] == {"make": "Canon", "model": "Canon EOS R5"}
    assert m["lens"] == "RF50mm F1.8 STM"
    assert m["datetime"] == "2024:05:01 09:59:58"  # DateTimeOriginal wins over DateTime
    assert m["exposure"]["exposure_time"] == "1/250" and m["exposure"]["f_number"] == 2.8
    assert m["exposure"]["iso"] == 400 and m["exposure"]["focal_length_mm"] == 50.0
    assert m["icc_profile"]["description"] and "sRGB" in m["icc_profile"]["description"]
    assert m["dpi"] == [300.0, 300.0] and m["bit_depth"] == 8 and not m["animated"]
    lines = metadata.summary_lines(m)
    assert "Camera: Canon Canon EOS R5" in lines
    assert "Exposure: 1/250 s f/2.8 ISO 400 50 mm" in lines


def test_bit_depth_animation_and_plain_files(tmp_path):
    arr = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    Image.fromarray(arr).save(tmp_path / "deep.png")  # uint16 -> a 16-bit PNG
    assert metadata.extract(tmp_path / "deep.png")["bit_depth"] == 16
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    m = metadata.extract(tmp_path / "anim.gif")
    assert m["animated"] and m["n_frames"] == 3 and m["duration_ms"] == 300
    assert any("3 frames" in line for line in metadata.summary_lines(m))
    Image.new("L", (8, 8)).save(tmp_path / "plain.png")
    m = metadata.extract(tmp_path / "plain.png")
    assert m["camera"] is None and m["exposure"] is None and m["icc_profile"] is None
    assert "Colour profile: none (read as sRGB)" in metadata.summary_lines(m)
    (tmp_path / "bad.png").write_bytes(b"junk")
    with pytest.raises(imaging.ImageReadError):
        metadata.extract(tmp_path / "bad.png")


def test_real_images_profiles(real_images_dir):
    assert metadata.extract(real_images_dir / "rocket.jpg")["icc_profile"]["description"] == \
        "Adobe RGB (1998)"
    assert "sRGB" in metadata.extract(real_images_dir / "astronaut.png")["icc_profile"]["description"]
    assert metadata.extract(real_images_dir / "retina.jpg")["dpi"] == [150.0, 150.0]
    assert metadata.extract(real_images_dir / "camera.png")["mode"] == "L"


def test_update_store_and_get(example_dataset):
    make_camera_jpeg(example_dataset / "photo.jpg")
    with Dataset(example_dataset) as ds:
        ds.scan()
        assert metadata.get_metadata(ds.store, "photo.jpg", extract_missing=False) is None
        rep = metadata.update_metadata(ds)
        assert len(rep.extracted) == 7 and not rep.errors
        assert metadata.get_metadata(ds.store, "photo.jpg")["lens"] == "RF50mm F1.8 STM"
        again = metadata.update_metadata(ds)
        assert again.extracted == [] and again.unchanged == 7
        # a changed file is read again, a removed one leaves the store
        Image.new("RGB", (10, 10)).save(example_dataset / "photo.jpg", "JPEG")
        (example_dataset / "horse.png").unlink()
        ds.scan()
        rep = metadata.update_metadata(ds)
        assert rep.extracted == ["photo.jpg"]
        assert metadata.get_metadata(ds.store, "photo.jpg")["camera"] is None
        assert metadata.get_metadata(ds.store, "horse.png") is None


def test_metadata_cli(example_dataset):
    make_camera_jpeg(example_dataset / "photo.jpg")
    runner = CliRunner()
    res = runner.invoke(app, ["metadata", str(example_dataset), "--json"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)["images"]
    assert data["photo.jpg"]["exposure"]["iso"] == 400 and data["camera.png"]["bit_depth"] == 8
    res = runner.invoke(app, ["metadata", str(example_dataset), "-i", "photo.jpg"])
    assert "Lens: RF50mm F1.8 STM" in res.stdout
    (example_dataset / "broken.jpg").write_bytes(b"nope")
    res = runner.invoke(app, ["metadata", str(example_dataset)])
    assert res.exit_code == 1 and "broken.jpg" in res.output


def test_get_metadata_extracts_on_first_use(example_dataset):
    make_camera_jpeg(example_dataset / "photo.jpg")
    with Dataset(example_dataset) as ds:
        ds.scan()
        assert metadata.get_metadata(ds.store, "photo.jpg")["camera"]["model"] == "Canon EOS R5"
        assert "photo.jpg" in metadata.all_metadata(ds.store)  # stored, not re-read next time
        Image.new("RGB", (10, 10)).save(example_dataset / "photo.jpg", "JPEG")
        ds.scan()
        assert metadata.get_metadata(ds.store, "photo.jpg")["camera"] is None  # new bytes, re-read
        assert metadata.get_metadata(ds.store, "nope.png") is None
