"""imaging.py: measurements against known facts and imagehash, and bad input."""

from __future__ import annotations

import io

import imagehash
import pytest
from PIL import Image, ImageFilter

from fluxgym_coach import imaging
from tests.helpers_images import jpeg_with_orientation, photo_like, png_header_only, save


def test_phash_agrees_with_imagehash_on_real_images(real_images_dir):
    distances = []
    for path in sorted(real_images_dir.glob("*.*")):
        if path.suffix.lower() not in {".png", ".jpg"}:
            continue
        ours = imaging.measure(imaging.open_image(path)).phash
        theirs = str(imagehash.phash(Image.open(path)))
        distances.append(imaging.hamming(ours, theirs))
    assert distances and max(distances) <= 6
    assert sum(d == 0 for d in distances) >= len(distances) // 2


def test_phash_separates_different_images_and_matches_resized_copy(tmp_path):
    a = photo_like((640, 480), seed=1)
    b = photo_like((640, 480), seed=2)
    pa = imaging.measure(imaging.open_image(save(a, tmp_path / "a.png"))).phash
    pb = imaging.measure(imaging.open_image(save(b, tmp_path / "b.png"))).phash
    pa_small = imaging.measure(imaging.open_image(save(a.resize((320, 240)), tmp_path / "a2.jpg"))).phash
    assert imaging.hamming(pa, pa_small) <= 4
    assert imaging.hamming(pa, pb) >= 16


def test_grayscale_flag(tmp_path, real_images_dir):
    for name, expected in [("camera.png", True), ("horse.png", True), ("coins.png", True),
                           ("chelsea.png", False), ("coffee.png", False), ("rocket.jpg", False)]:
        m = imaging.measure(imaging.open_image(real_images_dir / name))
        assert m.is_grayscale is expected, name
    # an RGB file holding gray pixels (what a scanner often writes) counts as gray
    gray_rgb = save(photo_like((300, 200), seed=3, gray=True), tmp_path / "g.jpg", quality=90)
    assert imaging.measure(imaging.open_image(gray_rgb)).is_grayscale is True


def test_sharpness_orders_blurred_below_sharp(tmp_path):
    sharp = photo_like((128, 128), seed=4).resize((512, 512), Image.Resampling.NEAREST)
    blurred = sharp.filter(ImageFilter.GaussianBlur(4))
    s = imaging.measure(imaging.open_image(save(sharp, tmp_path / "s.png"))).sharpness
    b = imaging.measure(imaging.open_image(save(blurred, tmp_path / "b.png"))).sharpness
    assert b < s / 4


def test_probe_reads_header_and_exif_orientation(tmp_path):
    p = jpeg_with_orientation(tmp_path / "rot.jpg", (400, 200), 6)
    im = imaging.open_image(p)
    info = imaging.probe(im)
    assert (info.format, info.width, info.height, info.orientation) == ("JPEG", 400, 200, 6)
    upright = imaging.load_upright_rgb(p)
    assert upright.size == (200, 400)


def test_jpeg_draft_decodes_small(tmp_path):
    p = save(photo_like((4000, 3000), seed=5), tmp_path / "big.jpg", quality=85)
    work = imaging.load_work_copy(imaging.open_image(p))
    assert max(work.size) <= imaging.WORK_SIZE


@pytest.mark.parametrize("maker, words", [
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_text("hello, I am text"), "not an image"),
    (lambda p: png_header_only(p, 30000, 30000), "too many pixels"),
])
def test_bad_input_raises_readable_errors(tmp_path, maker, words):
    p = tmp_path / "bad.png"
    maker(p)
    with pytest.raises(imaging.ImageReadError) as info:
        imaging.measure(imaging.open_image(p))
    assert words in info.value.reason
    assert str(p) in str(info.value)


def test_truncated_jpeg_is_reported(tmp_path):
    buf = io.BytesIO()
    photo_like((800, 600), seed=6).save(buf, "JPEG", quality=90)
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(imaging.ImageReadError) as info:
        imaging.measure(imaging.open_image(p))
    assert "truncated" in info.value.reason


def test_rgba_flattened_on_white():
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgb = imaging.to_rgb(im)
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (255, 255, 255)


def test_resize_short_side_keeps_aspect():
    im = Image.new("RGB", (3000, 2000))
    out = imaging.resize_short_side(im, 1024)
    assert out.size == (1536, 1024)


def test_format_helpers():
    assert imaging.normalise_format("jpg") == "JPEG"
    assert imaging.extension_for("webp") == ".webp"
    with pytest.raises(ValueError):
        imaging.normalise_format("gif")


def test_phash_file_matches_measure_closely(tmp_path, real_images_dir):
    for name in ("rocket.jpg", "coffee.png", "horse.png", "hubble_deep_field.jpg"):
        p = real_images_dir / name
        a = imaging.phash_file(p)
        b = imaging.measure(imaging.open_image(p)).phash
        assert imaging.hamming(a, b) <= 6, name
    bad = tmp_path / "x.jpg"
    bad.write_text("nope")
    with pytest.raises(imaging.ImageReadError):
        imaging.phash_file(bad)


# -- issue 11 item 12: bounded resizes --------------------------------------------------------
@pytest.mark.parametrize("size", [(1, 1), (14, 25), (102, 80)])
def test_tiny_images_are_not_upscaled_beyond_the_limit(size):
    from PIL import Image

    im = Image.new("RGB", size, (10, 20, 30))
    with pytest.raises(imaging.ResizeLimitError, match=r"beyond the x8 limit"):
        imaging.resize_short_side(im, 1024)


def test_extreme_strips_are_refused_before_any_pixel_is_allocated():
    from PIL import Image

    strip = Image.new("RGB", (10000, 10))
    with pytest.raises(imaging.ResizeLimitError, match="upscaled x102.4"):
        imaging.check_resize(10000, 10, 1_024_000, 1024)
    with pytest.raises(imaging.ResizeLimitError, match="aspect ratio of 1000:1"):
        imaging.check_resize(10000, 10, 5000, 5)  # even a downscale
    with pytest.raises(imaging.ResizeLimitError):
        imaging.resize_short_side(strip, 1024)
    with pytest.raises(imaging.ResizeLimitError, match="MP limit"):
        imaging.check_resize(8000, 8000, 9000, 9000)
    ok = imaging.resize_short_side(Image.new("RGB", (300, 200)), 1024)  # x5.1: allowed
    assert min(ok.size) == 1024
