"""What a trainer profile does to the image a preview shows: bucket, scale, crop, faces cut.

The geometry the TUI draws over its preview (issue 12, item 5); front ends only
present it. :func:`trainer_view` answers for one upright image size under one
profile of :data:`PREVIEW_PROFILES`:

* the trainer profiles place the size with the simulator of
  :mod:`fluxgym_coach.audit.buckets` (the same integers as the trainer's code)
  and report the window the trainer keeps;
* ``export`` is our zero-crop export (:mod:`fluxgym_coach.export.framing`)
  followed by kohya with the ``dataset.toml`` we write
  (:func:`fluxgym_coach.export.fluxgym.bucket_settings`): kohya then keeps
  the exported file as written, so its crop is nil; the window shown is the
  few source pixels the export's grid keeps (subject first). Without stored
  faces the export picks that window by gradient energy on the decoded image;
  here it is measured on the image passed in (the preview's thumbnail), so it
  can differ from the export's by a few pixels.

Face boxes are those :mod:`fluxgym_coach.audit.faces` stored for the image's
current digest (no detection runs here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from .buckets import BucketError, BucketSettings, place
from .trainer_rules import _cuts

Box = tuple[float, float, float, float]

#: The profiles a preview can show: ``(key, short label, BucketSettings fields)``,
#: the default first (kohya with bucketing at its defaults: what kohya does to a
#: folder that was not exported by us). ``export``'s settings are the ones our
#: ``dataset.toml`` sets.
PREVIEW_PROFILES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("kohya", "kohya", dict(trainer="kohya", enable_bucket=True)),
    ("kohya-nobucket", "kohya no-bucket (Fluxgym toml)", dict(trainer="kohya", enable_bucket=False)),
    ("ai-toolkit", "ai-toolkit", dict(trainer="ai-toolkit", enable_bucket=True)),
    ("simpletuner", "simpletuner (FLUX quickstart)", dict(trainer="simpletuner", resolution_type="area")),
    ("diffusion-pipe", "diffusion-pipe", dict(trainer="diffusion-pipe")),
    ("export", "export (zero-crop)", {}),
)
PROFILE_KEYS = tuple(k for k, _, _ in PREVIEW_PROFILES)


@dataclass(frozen=True, slots=True)
class TrainerView:
    """What ``profile`` does to an image of ``size`` (w, h; upright) at ``resolution``.

    ``bucket`` (w, h) is the training size; ``scale`` the resize factor (> 1 is an
    upscale); ``crop`` the kept window in source pixels (left, top, right, bottom;
    floats); ``crop_px`` the source pixels dropped (width, height; rounded);
    ``crop_fraction`` the share of the source area dropped (0..1); ``faces`` the
    number of stored face boxes; ``cut_boxes`` those not inside ``crop`` (1 px
    slack, as the audit's ``trainer_face_cut``); ``trainer_crops``: False
    for ``export`` (kohya keeps the exported file as written); ``error``: why the
    profile cannot bucket this size (then the geometry fields are None/0)."""

    profile: str
    label: str
    resolution: int
    size: tuple[int, int]
    bucket: tuple[int, int] | None = None
    scale: float = 0.0
    crop: Box | None = None
    crop_fraction: float = 0.0
    faces: int = 0
    trainer_crops: bool = True
    error: str | None = None
    cut_boxes: tuple[Box, ...] = ()

    @property
    def faces_cut(self) -> int:
        """How many stored face boxes the window cuts (``cut_boxes``, source pixels)."""
        return len(self.cut_boxes)

    @property
    def crop_px(self) -> tuple[int, int]:
        """Source pixels dropped across the width and the height."""
        if self.crop is None:
            return (0, 0)
        return (round(self.size[0] - (self.crop[2] - self.crop[0])),
                round(self.size[1] - (self.crop[3] - self.crop[1])))

    @property
    def title(self) -> str:
        """A short state for a preview title, e.g. ``kohya 1024``, ``export 1024: no crop``
        (written at a size kohya keeps, nothing dropped) or ``export 1024: no crop by kohya,
        export drops 0x2 px``."""
        name = "kohya no-bucket" if self.profile == "kohya-nobucket" else self.profile
        text = f"{name} {self.resolution}"
        if self.profile == "export" and self.error is None:
            w, h = self.crop_px
            text += ": no crop" if (w, h) == (0, 0) else f": no crop by kohya, export drops {w}x{h} px"
        return text


def profile_label(profile: str) -> str:
    """The label of a profile key. Raises KeyError for an unknown key."""
    return {k: label for k, label, _ in PREVIEW_PROFILES}[profile]


def _fraction(size: tuple[int, int], crop: Box) -> float:
    return max(0.0, 1.0 - (crop[2] - crop[0]) * (crop[3] - crop[1]) / (size[0] * size[1]))


def _export_window(size: tuple[int, int], bucket: tuple[int, int], faces: tuple[Box, ...],
                   image: Image.Image | None) -> Box:
    """The source window the export keeps: its size exactly as
    :func:`~fluxgym_coach.export.framing.choose_window` sizes it (the largest of the
    bucket's aspect), placed by the faces when there are some, else by gradient
    energy on ``image`` (any scale; only its start is taken), else centred."""
    from types import SimpleNamespace

    from ..export.framing import choose_window

    w, h = size
    s = max(bucket[0] / w, bucket[1] / h)
    cw, ch = min(w, bucket[0] / s), min(h, bucket[1] / s)
    x0, y0 = (w - cw) / 2, (h - ch) / 2
    if cw >= w - 1e-6 and ch >= h - 1e-6:
        return (0.0, 0.0, float(w), float(h))
    if faces:  # placed by the boxes alone: choose_window reads only the size then
        return choose_window(SimpleNamespace(size=size), bucket, faces).window
    if image is not None:
        frame = choose_window(image, bucket)
        if frame.reason == "saliency":
            fx, fy = image.width / w, image.height / h
            x0 = min(max(0.0, frame.window[0] / fx), w - cw) if cw < w else 0.0
            y0 = min(max(0.0, frame.window[1] / fy), h - ch) if ch < h else 0.0
    return (x0, y0, x0 + cw, y0 + ch)


def _export_view(size: tuple[int, int], resolution: int, faces: tuple[Box, ...],
                 image: Image.Image | None) -> TrainerView:
    from ..export.fluxgym import BUCKET_STEPS, bucket_settings
    from ..export.framing import zero_crop_bucket

    label = profile_label("export")
    bucket = zero_crop_bucket(size[0], size[1], resolution, BUCKET_STEPS)
    if bucket is None:
        return TrainerView("export", label, resolution, size, faces=len(faces),
                           error=f"a side below {BUCKET_STEPS} px: the export cannot bucket it")
    # what kohya then does with the exported file: nothing (select_bucket keeps it)
    after = place(bucket, bucket_settings(resolution, "zero"))
    assert after.unchanged, f"kohya would change our exported {bucket}"  # the export's own contract
    crop = _export_window(size, bucket, faces, image)
    return TrainerView("export", label, resolution, size, bucket, bucket[0] / (crop[2] - crop[0]), crop,
                       _fraction(size, crop), len(faces), False,
                       cut_boxes=tuple(f for f in faces if _cuts(crop, f)))


def trainer_view(size: tuple[int, int], resolution: int, profile: str = "kohya",
                 faces: tuple[Box, ...] | list[Box] = (), image: Image.Image | None = None) -> TrainerView:
    """What ``profile`` (a key of :data:`PREVIEW_PROFILES`) does to an upright image of
    ``size`` (w, h) at ``resolution`` (kohya's, px). ``faces``: boxes in source
    pixels (left, top, right, bottom). ``image``: the upright image at any scale,
    used only by ``export`` to choose its window by gradient energy when no face
    is known (without it: the centred window). A size the profile cannot bucket
    gives a view with ``error`` set. Raises KeyError for an unknown profile."""
    faces = tuple(faces)
    if profile == "export":
        return _export_view(size, resolution, faces, image)
    fields = {k: kw for k, _, kw in PREVIEW_PROFILES}
    if profile not in fields:
        raise KeyError(f"unknown preview profile {profile!r}: use one of {', '.join(PROFILE_KEYS)}")
    settings = BucketSettings(resolution=resolution, **fields[profile])
    label = profile_label(profile)
    try:
        p = place(size, settings)
    except BucketError as exc:
        return TrainerView(profile, label, resolution, size, faces=len(faces), error=str(exc))
    crop = p.crop
    clipped = (max(0.0, crop[0]), max(0.0, crop[1]), min(float(size[0]), crop[2]), min(float(size[1]), crop[3]))
    return TrainerView(profile, label, resolution, size, p.bucket, p.scale, clipped, _fraction(size, clipped),
                       len(faces), cut_boxes=tuple(f for f in faces if _cuts(clipped, f)))


def record_view(store, record, resolution: int, profile: str = "kohya",
                size: tuple[int, int] | None = None, image: Image.Image | None = None) -> TrainerView | None:
    """:func:`trainer_view` for a stored image: ``record`` an
    :class:`~fluxgym_coach.store.ImageRecord` (its display size, EXIF orientation
    applied, unless ``size`` gives the size of the variant shown), with the face
    boxes stored for its current digest scaled to that size. None for an
    unreadable record or one without a known size."""
    from .faces import stored_faces

    size = size or record.display_size
    if record.error and size is None or size is None or size[0] < 1 or size[1] < 1:
        return None
    found = stored_faces(store, record.relpath, record.digest) or []
    return trainer_view(size, resolution, profile, tuple(b.pixels(*size) for b in found), image)
