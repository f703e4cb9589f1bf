"""Write the generated images of the behaviour lock (tests/data/lock-images/).

Run once; the files are committed, so the lock does not depend on the encoder
versions of the machine that runs the tests. Re-running overwrites them (and
then tests/data/behaviour_lock.json must be re-captured on the old code).

    python tests/data/make_lock_images.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

OUT = Path(__file__).parent / "lock-images"


def photo(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 24), max(2, w // 24), 3), dtype=np.uint8)
    im = Image.fromarray(small, "RGB").resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(im).astype(np.int16)
    arr = arr + rng.integers(-6, 7, arr.shape)  # sensor-like noise: sharpness is not trivial
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    a = photo(1024, 768, 1)
    a.save(OUT / "photo_4x3.jpg", quality=90)
    shutil.copy(OUT / "photo_4x3.jpg", OUT / "photo_4x3 copy.jpg")          # exact duplicate
    a.save(OUT / "photo_4x3_q40.jpg", quality=40)                           # re-encode: near
    a.resize((512, 384), Image.Resampling.LANCZOS).save(OUT / "photo_4x3_small.png")  # smaller: near
    photo(600, 800, 2).save(OUT / "portrait_3x4.jpg", quality=85)
    photo(1600, 900, 3).save(OUT / "wide_16x9.jpg", quality=85)
    photo(1200, 1200, 4).convert("L").convert("RGB").save(OUT / "gray_as_rgb.jpg", quality=85)
    dark = (np.asarray(photo(900, 700, 5)).astype(np.float32) * 0.15).astype(np.uint8)
    Image.fromarray(dark).save(OUT / "dark.jpg", quality=85)
    photo(800, 600, 6).filter(ImageFilter.GaussianBlur(6)).save(
        OUT / "blurred.jpg", quality=85)
    cmyk = photo(640, 480, 7).convert("CMYK")
    cmyk.save(OUT / "cmyk.jpg", quality=85)
    rot = photo(800, 600, 8)
    exif = Image.Exif()
    exif[0x0112] = 6
    rot.save(OUT / "exif_rot6.jpg", quality=85, exif=exif.tobytes())
    g16 = (np.asarray(photo(320, 240, 9).convert("L")).astype(np.uint16) * 257)
    Image.fromarray(g16).save(OUT / "gray16.png")
    rgba = photo(400, 300, 10).convert("RGBA")
    alpha = np.full((300, 400), 255, np.uint8)
    alpha[:60, :80] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(OUT / "rgba_holes.png")
    p = photo(300, 300, 11).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    p.info["transparency"] = 0
    p.save(OUT / "palette_alpha.png", transparency=0)
    photo(500, 400, 12).save(OUT / "webp_img.webp", quality=80)
    photo(300, 200, 13).save(OUT / "tiff_img.tif", compression="tiff_lzw")
    frames = [photo(120, 90, 14 + i) for i in range(2)]
    frames[0].save(OUT / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    photo(200, 150, 16).save(OUT / "bmp_img.bmp")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(OUT / "tiny_1x1.png")
    photo(14, 25, 17).save(OUT / "tiny_14x25.png")
    photo(102, 80, 18).save(OUT / "small_102.png")
    photo(1600, 80, 19).save(OUT / "strip_20x1.png")
    Image.new("RGB", (640, 480), (250, 250, 250)).save(OUT / "blank_white.png")
    data = (OUT / "portrait_3x4.jpg").read_bytes()
    (OUT / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (OUT / "empty.png").write_bytes(b"")
    (OUT / "not_an_image.png").write_bytes(b"hello, I am text\n")
    photo(320, 240, 20).save(OUT / "png_named.jpg", format="PNG")
    (OUT / "photo_4x3.txt").write_text("ohwx, a generated photo\n")
    (OUT / "dark.txt").write_text("")


if __name__ == "__main__":
    main()
