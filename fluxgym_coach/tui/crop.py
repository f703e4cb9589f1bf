"""The preview's crop overlay: which trainer profile is shown, the kept region drawn
on the thumbnail, and the info panel's line.

The geometry is the core's (:func:`fluxgym_coach.audit.preview_geometry.trainer_view`);
this module only presents it. The overlay is drawn into a copy of the thumbnail
before any renderer sees it (half-blocks, Sixel and kitty alike): what the
trainer drops is dimmed to :data:`DIM`, the kept window gets an outline of
:data:`OUTLINE` and a stored face box the window cuts one of :data:`FACE_CUT`. The plain thumbnail stays in the
:class:`~fluxgym_coach.tui.thumbnails.ThumbnailCache` untouched, so toggling
decodes nothing; the overlaid copies are kept in a small LRU (the same object
for the same thumbnail and geometry, which the kitty renderer needs to re-use
the image already sent).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image
from rich.text import Text

from ..audit.preview_geometry import PROFILE_KEYS, TrainerView

if TYPE_CHECKING:  # numpy is imported when an overlay is drawn, not when the TUI starts
    import numpy as np

#: Outline colour of the kept window (RGB).
OUTLINE = (255, 214, 0)
#: Outline colour of a stored face box the window cuts (RGB).
FACE_CUT = (255, 64, 64)
#: Brightness kept of the pixels the trainer drops (0..1).
DIM = 0.35
#: Overlaid thumbnails kept in memory.
CACHE_SIZE = 8

_CACHE: OrderedDict[tuple, tuple[Image.Image, Image.Image]] = OrderedDict()


@dataclass(slots=True)
class CropState:
    """Whether the overlay is on and which profile (a key of
    :data:`~fluxgym_coach.audit.preview_geometry.PREVIEW_PROFILES`) it shows; off
    and ``kohya`` at start."""

    on: bool = False
    profile: str = PROFILE_KEYS[0]

    def next_profile(self) -> str:
        """Move to the next profile (wrapping) and return it."""
        self.profile = PROFILE_KEYS[(PROFILE_KEYS.index(self.profile) + 1) % len(PROFILE_KEYS)]
        return self.profile


def outline_width(size: tuple[int, int]) -> int:
    """Outline thickness in thumbnail pixels: 1/128 of the long side, at least 2
    (a half-block cell averages several pixels, a 1-px line would vanish)."""
    return max(2, round(max(size) / 128))


def thumb_rect(view: TrainerView, thumb_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The kept window of ``view`` in thumbnail pixels (left, top, right, bottom;
    right and bottom exclusive, clipped to the thumbnail). Raises ValueError when
    the view has no window."""
    if view.crop is None:
        raise ValueError(f"{view.profile}: no crop window ({view.error})")
    fx, fy = thumb_size[0] / view.size[0], thumb_size[1] / view.size[1]
    l, t, r, b = view.crop
    left, top = max(0, round(l * fx)), max(0, round(t * fy))
    right, bottom = min(thumb_size[0], round(r * fx)), min(thumb_size[1], round(b * fy))
    return left, top, max(left + 1, right), max(top + 1, bottom)


def draw_crop(thumb: Image.Image, view: TrainerView) -> Image.Image:
    """A copy of ``thumb`` (RGB) with the region ``view`` drops dimmed and the kept
    window outlined (:data:`OUTLINE`, :func:`outline_width` px inside the window);
    a face box the window cuts is framed in :data:`FACE_CUT`."""
    import numpy as np

    px = np.asarray(thumb.convert("RGB")).copy()
    left, top, right, bottom = thumb_rect(view, thumb.size)
    keep = np.zeros(px.shape[:2], dtype=bool)
    keep[top:bottom, left:right] = True
    px[~keep] = (px[~keep] * DIM).astype(np.uint8)
    w = outline_width(thumb.size)
    fx, fy = thumb.width / view.size[0], thumb.height / view.size[1]
    for l, t, r, b in view.cut_boxes:
        _frame(px, (max(0, round(l * fx)), max(0, round(t * fy)), min(thumb.width, round(r * fx)),
                    min(thumb.height, round(b * fy))), max(1, w // 2), FACE_CUT)
    _frame(px, (left, top, right, bottom), w, OUTLINE)
    return Image.fromarray(px, "RGB")


def _frame(px: np.ndarray, rect: tuple[int, int, int, int], w: int, rgb: tuple[int, int, int]) -> None:
    """Paint a ``w``-px frame just inside ``rect`` (left, top, right, bottom; exclusive) of ``px``."""
    left, top, right, bottom = rect
    if right <= left or bottom <= top:
        return
    import numpy as np

    colour = np.array(rgb, dtype=np.uint8)
    px[top:min(bottom, top + w), left:right] = colour
    px[max(top, bottom - w):bottom, left:right] = colour
    px[top:bottom, left:min(right, left + w)] = colour
    px[top:bottom, max(left, right - w):right] = colour


def overlaid(thumb: Image.Image, view: TrainerView) -> Image.Image:
    """:func:`draw_crop`, cached for the last :data:`CACHE_SIZE` (thumbnail, window) pairs."""
    key = (id(thumb), thumb.size, view.size, view.crop, view.cut_boxes)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is thumb:
        _CACHE.move_to_end(key)
        return hit[1]
    out = draw_crop(thumb, view)
    _CACHE[key] = (thumb, out)
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return out


def info_line(view: TrainerView) -> Text:
    """The info panel's line for ``view``, e.g. ``kohya 1024: bucket 1024x704, scale
    x0.69, crop 47x0 px (3.0 %)``, then ``face cut`` when a stored face box is cut."""
    t = Text(f"{view.title.split(':')[0]}: ", style="bold")
    if view.error is not None:
        t.append(f"cannot bucket it: {view.error}", style="red")
        return t
    assert view.bucket is not None
    w, h = view.crop_px
    t.append(f"bucket {view.bucket[0]}x{view.bucket[1]}, scale x{view.scale:.2f}")
    if view.profile == "export":
        t.append(f", export drops {w}x{h} px ({view.crop_fraction:.1%}); kohya: no crop")
    else:
        t.append(f", crop {w}x{h} px ({view.crop_fraction:.1%})")
    if view.faces_cut:
        t.append(f"  face cut ({view.faces_cut} of {view.faces})", style="bold red")
    return t


def title_suffix(view: TrainerView) -> str:
    """What the preview title gets while the overlay is on, e.g. ``  crop: kohya 1024``."""
    if view.error is not None:
        return f"  crop: {view.title}: cannot bucket it"
    return f"  crop: {view.title}" + ("  face cut" if view.faces_cut else "")
