"""Fixtures for the audit, feedback and report tests: generated images with known properties."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter


def textured(size: tuple[int, int], seed: int = 0, lo: int = 0, hi: int = 256,
             gray: bool = False) -> Image.Image:
    """A sharp, colourful image: random 8-px blocks plus per-pixel noise, values in [lo, hi)."""
    rng = np.random.default_rng(seed)
    w, h = size
    blocks = rng.integers(lo, hi, (max(1, h // 8) + 1, max(1, w // 8) + 1, 3)).astype(np.float64)
    big = np.kron(blocks, np.ones((8, 8, 1)))[:h, :w]
    noise = rng.normal(0, (hi - lo) * 0.08, (h, w, 3))
    arr = np.clip(big + noise, lo, hi - 1).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    return im.convert("L") if gray else im


def _save(im: Image.Image, path: Path, **kw) -> None:
    im.save(path, **kw)


#: name -> the finding codes the audit must report for it (others may come in addition
#: only where listed in ALLOWED_EXTRA).
EXPECTED: dict[str, set[str]] = {
    "sharp.png": set(),
    "blurry.png": {"blurry"},
    "dark.png": {"too_dark"},
    "bright.png": {"too_bright"},
    "gray.png": {"grayscale"},
    "tall.png": {"odd_aspect", "bucket_crop"},
    "small.png": {"low_resolution"},
    "tiny.png": {"low_resolution"},
    "flat.png": {"low_information", "blurry"},
    "alpha.png": {"alpha"},
    "alpha_opaque.png": {"alpha"},
    "cmyk.jpg": {"cmyk"},
    "deep16.png": {"high_bit_depth", "grayscale"},
    "anim.gif": {"animated", "format_not_trained"},
    "rotated.jpg": {"exif_rotated"},
    "mismatch.jpg": {"extension_mismatch"},
    "corrupt.png": {"unreadable"},
    "dup_a.png": {"exact_duplicate"},
    "dup_b.png": {"exact_duplicate"},
    "near_a.png": {"near_duplicate"},
    "near_b.png": {"near_duplicate"},
}


#: Side of the generated images; audit them at this resolution.
SIDE = 512


def make_audit_images(folder: Path) -> dict[str, set[str]]:
    """Write the images of :data:`EXPECTED` into ``folder`` (:data:`SIDE` px unless size is the test)."""
    folder.mkdir(parents=True, exist_ok=True)
    S = (SIDE, SIDE)
    _save(textured(S, 1), folder / "sharp.png")
    _save(textured(S, 2).filter(ImageFilter.GaussianBlur(6)), folder / "blurry.png")
    _save(textured(S, 3, 0, 40), folder / "dark.png")
    _save(textured(S, 4, 248, 256), folder / "bright.png")
    _save(textured(S, 5, gray=True), folder / "gray.png")
    _save(textured((200, 1000), 6), folder / "tall.png")
    _save(textured((320, 320), 7), folder / "small.png")
    _save(textured((100, 100), 8), folder / "tiny.png")
    flat = np.full((SIDE, SIDE, 3), (120, 160, 90), np.uint8)
    flat[:, SIDE // 2:] = (121, 161, 91)
    _save(Image.fromarray(flat, "RGB"), folder / "flat.png")
    rgba = textured(S, 9).convert("RGBA")
    a = np.full((SIDE, SIDE), 255, np.uint8)
    a[:SIDE * 3 // 10, :SIDE * 3 // 10] = 0
    rgba.putalpha(Image.fromarray(a, "L"))
    _save(rgba, folder / "alpha.png")
    _save(textured(S, 10).convert("RGBA"), folder / "alpha_opaque.png")
    _save(textured(S, 11).convert("CMYK"), folder / "cmyk.jpg", quality=92)
    deep = (np.asarray(textured(S, 12, gray=True), dtype=np.uint16) * 257).astype(np.uint16)
    _save(Image.fromarray(deep), folder / "deep16.png")
    frames = [textured(S, 13), textured(S, 14)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    exif = Image.Exif()
    exif[0x0112] = 6
    textured(S, 15).save(folder / "rotated.jpg", "JPEG", exif=exif.tobytes(), quality=92)
    textured(S, 16).save(folder / "mismatch.jpg", "PNG")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20)
    _save(textured(S, 17), folder / "dup_a.png")
    shutil.copy(folder / "dup_a.png", folder / "dup_b.png")
    near = textured(S, 18)
    _save(near, folder / "near_a.png")
    arr = np.asarray(near, dtype=np.int16).copy()
    arr[:, : SIDE // 3] += 20  # brighter left third: pHash 4 bits away at 512 px
    _save(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").resize((SIDE * 7 // 8, SIDE * 7 // 8)),
          folder / "near_b.png")
    for name in EXPECTED:
        stem = Path(name).stem
        (folder / f"{stem}.txt").write_text(f"ohwx, a test picture named {stem} on a plain table",
                                            encoding="utf-8")
    return dict(EXPECTED)


@pytest.fixture(scope="session")
def _audit_template(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("audit-template") / "gen"
    make_audit_images(folder)
    return folder


@pytest.fixture
def audit_images(tmp_path, _audit_template) -> tuple[Path, dict[str, set[str]]]:
    """A writable folder of generated images with known properties (:data:`SIDE` px;
    audit at ``resolution=SIDE``) and the codes each must get."""
    folder = tmp_path / "gen"
    shutil.copytree(_audit_template, folder)
    return folder, dict(EXPECTED)
