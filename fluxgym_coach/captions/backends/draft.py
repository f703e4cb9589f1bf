"""The embedded, offline caption backend: an honest draft from what the pixels say.

No model, no network. For each image it states only what can be measured:

* black-and-white or colour (the scan's grayscale test,
  :func:`fluxgym_coach.imaging.is_grayscale_rgb`);
* orientation: landscape, portrait or square (sides within 5 %);
* the dominant colours: the image is reduced to 64 px, quantised to 8
  colours by median cut, each colour is named by the nearest entry of
  :data:`PALETTE` in CIELAB (D65), shares of the same name are added, and the
  names covering at least 12 % of the pixels are kept, most common first (at
  most 3); black-and-white images are named from the grays only;
* the concept from the folder name (kohya ``N_`` prefix removed).

Example: ``"horses, black-and-white image, landscape orientation, white and
black tones"``. Every result has ``draft=True`` and the caption history
records it as ``caption:draft``, so the review queue, lint and a later
``fluxgym-coach caption --refresh`` know it is a draft to edit, not a
description of the content.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from PIL import Image

from ... import imaging
from .base import CaptionBackendError, CaptionRequest, CaptionResult

#: Named colours (sRGB) that dominant colours are named from.
PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (10, 10, 10), "dark gray": (64, 64, 64), "gray": (128, 128, 128),
    "light gray": (192, 192, 192), "white": (250, 250, 250),
    "dark red": (115, 20, 20), "red": (200, 35, 35), "orange": (235, 135, 35),
    "dark brown": (75, 42, 25), "brown": (145, 85, 45), "tan": (200, 155, 110),
    "beige": (230, 210, 175), "yellow": (235, 215, 50), "olive": (120, 120, 30),
    "green": (60, 160, 60), "dark green": (25, 75, 35), "teal": (20, 125, 125),
    "cyan": (40, 200, 215), "light blue": (150, 190, 230), "blue": (45, 85, 200),
    "navy": (25, 35, 85), "purple": (115, 55, 150), "pink": (235, 155, 185),
    "magenta": (195, 45, 160),
}
GRAYS = ("black", "dark gray", "gray", "light gray", "white")
MIN_SHARE = 0.12
MAX_COLOURS = 3
SQUARE_TOLERANCE = 0.05


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (..., 3) in 0..255 to CIELAB (D65)."""
    c = rgb.astype(np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


_NAMES = list(PALETTE)
_LAB = _srgb_to_lab(np.array([PALETTE[n] for n in _NAMES]))


def name_colour(rgb: tuple[int, int, int], grays_only: bool = False) -> str:
    """The :data:`PALETTE` name nearest to an sRGB colour (CIELAB distance)."""
    lab = _srgb_to_lab(np.array(rgb))
    idx = [i for i, n in enumerate(_NAMES) if not grays_only or n in GRAYS]
    d = np.linalg.norm(_LAB[idx] - lab, axis=1)
    return _NAMES[idx[int(np.argmin(d))]]


def dominant_colours(im: Image.Image, grays_only: bool = False, k: int = 8) -> list[tuple[str, float]]:
    """``[(name, share 0..1), ...]`` most common first, for an RGB image (see module doc)."""
    small = im.convert("RGB")
    small.thumbnail((64, 64), Image.Resampling.BILINEAR)
    q = small.quantize(colors=k, method=Image.Quantize.MEDIANCUT)
    palette = q.getpalette() or []
    total = small.width * small.height
    shares: dict[str, float] = {}
    for count, index in q.getcolors() or []:
        rgb = tuple(palette[index * 3:index * 3 + 3])
        name = name_colour(rgb, grays_only)  # type: ignore[arg-type]
        shares[name] = shares.get(name, 0.0) + count / total
    return sorted(shares.items(), key=lambda kv: -kv[1])


def orientation(width: int, height: int) -> str:
    """``"landscape"``, ``"portrait"`` or ``"square"`` (sides within 5 %)."""
    if abs(width - height) <= SQUARE_TOLERANCE * max(width, height):
        return "square"
    return "landscape" if width > height else "portrait"


def _and(names: list[str]) -> str:
    """``a``, ``a and b``, ``a with b and c``: no commas, so the phrase stays one tag."""
    if len(names) <= 2:
        return " and ".join(names)
    return f"{names[0]} with " + " and ".join(names[1:])


def describe(im: Image.Image, folder: str = "", is_grayscale: bool | None = None) -> tuple[str, list[str]]:
    """The draft text and its tags for an upright RGB image (CPU work)."""
    gray = imaging.is_grayscale_rgb(_shrunk(im)) if is_grayscale is None else is_grayscale
    colours = dominant_colours(im, grays_only=gray)
    kept = [n for n, s in colours if s >= MIN_SHARE][:MAX_COLOURS] or [colours[0][0]]
    tags = [t for t in (folder,) if t]
    tags += ["black-and-white image" if gray else "colour image",
             f"{orientation(im.width, im.height)} orientation", f"{_and(kept)} tones"]
    return ", ".join(tags), tags


def _shrunk(im: Image.Image) -> Image.Image:
    out = im.copy()
    out.thumbnail((96, 96), Image.Resampling.BILINEAR)
    return out


class DraftCaptioner:
    """Offline draft captions (see the module docstring). No options."""

    name = "draft"
    identity = "draft/palette@1"
    style = "tags"
    concurrency = 4
    is_draft = True

    def cache_params(self, request: CaptionRequest) -> dict[str, Any]:
        """The folder concept is the only input besides the pixels."""
        return {"folder": request.folder}

    async def check(self) -> None:
        """Always ready."""

    async def prepare(self, request: CaptionRequest) -> None:
        """Nothing to prepare before :meth:`caption`."""
        return None

    async def caption(self, request: CaptionRequest) -> CaptionResult:
        """Describe one image (decoding and measuring run in a thread)."""
        def work() -> tuple[str, list[str]]:
            im = imaging.load_upright_rgb(request.path, max_side=256)
            return describe(im, request.folder)
        try:
            text, tags = await asyncio.to_thread(work)
        except imaging.ImageReadError as exc:
            raise CaptionBackendError(f"{request.relpath}: {exc.reason}") from exc
        return CaptionResult(text=text, tags=tags, draft=True, model=self.identity)

    async def aclose(self) -> None:
        """Nothing to release."""
