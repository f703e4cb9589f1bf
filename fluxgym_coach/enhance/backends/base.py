"""Protocols every enhancement backend implements, and the parameters they take.

A backend turns image bytes into result bytes. It knows nothing of datasets,
caches or journals: :mod:`fluxgym_coach.enhance.job` plans the work, looks up the
cache, chunks the batch, calls the backend and records the results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ...errors import FluxgymCoachError
from ... import imaging

if TYPE_CHECKING:  # pragma: no cover
    from ..sizing import ScaleDecision

#: Shipped defaults (seed 002, "Paramètres recommandés").
DEFAULT_UPSCALER = "R-ESRGAN 4x+"
DEFAULT_PROMPT = "high quality, high resolution, detailed"
DEFAULT_NEGATIVE_PROMPT = "blurry, lowres, low quality, artifacts, jpeg artifacts"
DEFAULT_COLORIZE_PROMPT = "colorized photo, natural colors, realistic skin tones, high quality"
DEFAULT_COLORIZE_NEGATIVE_PROMPT = "black and white, monochrome, grayscale, sepia, desaturated"


class BackendError(FluxgymCoachError):
    """A backend could not do the work. ``reason`` is a sentence a user can act on;
    ``retryable`` says whether the same request may succeed later; ``fatal``
    that no other request of the job can succeed either (an unknown upscaler,
    parameters the server rejects): the job stops sending."""

    def __init__(self, reason: str, retryable: bool = False, fatal: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.fatal = fatal


@dataclass(frozen=True, slots=True)
class EnhanceParams:
    """Everything that decides how an image is enhanced.

    How much each image is enlarged (:meth:`decide`, see
    :mod:`fluxgym_coach.enhance.sizing`): by default (``scale_factor`` and
    ``target_short_side`` None) **to the training resolution** ``resolution``
    (px; None: the dataset's ``resolution`` setting, filled in by
    :func:`fluxgym_coach.core.enhance_images`, else 1024): the scale each
    image's kohya bucket needs, capped at x8, and images already large enough
    are kept. ``scale_factor`` multiplies both sides of every image (an
    explicit ``--scale``); ``target_short_side`` (px), when set, wins over
    both: the smallest scale (rounded up to 0.25) that brings the shorter side
    to that many pixels. ``upscaler``, ``denoising_strength``
    (0..1), ``prompt``, ``negative_prompt``, ``steps``, ``cfg_scale`` and
    ``sampler_name`` are the Forge/A1111 fields of the same meaning;
    ``scheduler`` (``"Karras"``, ``"Align Your Steps"``...; None: the
    sampler's own or the one its name ends with) is sent with img2img.
    ``output_format`` is ``PNG``, ``JPEG`` or ``WEBP``. ``sharpen`` (0..1) is
    the embedded backend's light unsharp mask. ``colorize`` enables automatic
    colorization of black-and-white images with the ``colorize_*`` prompts.
    """

    scale_factor: float | None = None
    target_short_side: int | None = None
    resolution: int | None = None
    upscaler: str = DEFAULT_UPSCALER
    denoising_strength: float = 0.5
    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    steps: int = 20
    cfg_scale: float = 7.0
    sampler_name: str = "Euler a"
    scheduler: str | None = None
    output_format: str = "PNG"
    sharpen: float = 0.0
    colorize: bool = True
    colorize_prompt: str = DEFAULT_COLORIZE_PROMPT
    colorize_negative_prompt: str = DEFAULT_COLORIZE_NEGATIVE_PROMPT

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_format", imaging.normalise_format(self.output_format))
        if self.scale_factor is not None and not (self.scale_factor > 0):
            raise ValueError(f"scale factor must be > 0, got {self.scale_factor}")
        if self.resolution is not None and self.resolution < 64:
            raise ValueError(f"resolution must be at least 64 px, got {self.resolution}")
        if not 0.0 <= self.denoising_strength <= 1.0:
            raise ValueError(f"denoising strength must be within 0..1, got {self.denoising_strength}")
        if self.target_short_side is not None and self.target_short_side < 8:
            raise ValueError(f"target short side must be at least 8 px, got {self.target_short_side}")

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (JSON-serialisable)."""
        return asdict(self)

    def with_(self, **changes: Any) -> "EnhanceParams":
        """A copy with some fields changed."""
        return replace(self, **changes)

    def decide(self, width: int, height: int) -> "ScaleDecision":
        """How a ``width`` x ``height`` (upright px) image is enlarged: scale, output
        size, and why it is kept, flagged or refused
        (:func:`~fluxgym_coach.enhance.sizing.decide_scale`)."""
        from ..sizing import decide_scale

        return decide_scale(width, height, scale_factor=self.scale_factor,
                            target_short_side=self.target_short_side, resolution=self.resolution)

    def scale_for(self, width: int, height: int) -> float:
        """The scale factor this image gets (1.0 = no upscaling needed; see :meth:`decide`)."""
        return self.decide(width, height).scale

    def size_label(self) -> str:
        """How images are enlarged, in words for a confirmation (``"x2"``,
        ``"short side 640 px"``, ``"to resolution 1024 (the scale each image needs, at most x8)"``)."""
        if self.target_short_side is not None:
            return f"short side {self.target_short_side} px"
        if self.scale_factor is not None:
            return f"x{self.scale_factor:g}"
        from ..sizing import DEFAULT_RESOLUTION

        return (f"to resolution {self.resolution or DEFAULT_RESOLUTION} (the scale each image needs, "
                f"at most x{imaging.MAX_UPSCALE:g})")


@dataclass(slots=True)
class EnhanceItem:
    """One image to process: a ``name`` for messages, its ``data`` (file bytes),
    ``digest`` (xxh3-128 of ``data``), upright ``width``/``height`` in px and the
    ``scale`` it gets."""

    name: str
    data: bytes
    digest: str
    width: int
    height: int
    scale: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def target_size(self) -> tuple[int, int]:
        """Output size for ``scale`` with plain rounding (backends may round differently)."""
        return max(1, round(self.width * self.scale)), max(1, round(self.height * self.scale))


@runtime_checkable
class EnhanceBackend(Protocol):
    """What the pipeline needs from an engine.

    ``name``: short name (``"local"``, ``"forge"``). ``identity``: goes into
    cache keys; changes whenever the same parameters would give other pixels.
    ``can_colorize``: whether :meth:`colorize` works. ``max_batch``: most
    images per :meth:`upscale` call; ``max_request_bytes``: most input bytes
    per call. ``concurrency``: :meth:`upscale`/:meth:`colorize` calls the
    pipeline keeps in flight (1: one at a time; a value may change after
    :meth:`check`). ``warnings``: notes for the user collected while working
    (a server dropped, a name corrected), in order.
    """

    name: str
    identity: str
    can_colorize: bool
    max_batch: int
    max_request_bytes: int
    concurrency: int
    warnings: list[str]

    async def check(self, params: EnhanceParams) -> None:
        """Fail fast (BackendError) when the backend cannot run with ``params``."""
        ...

    def cache_params(self, op: str, params: EnhanceParams, item: EnhanceItem) -> dict[str, Any]:
        """The parameters that decide the result of ``op`` (``"upscale"`` or
        ``"colorize"``) on ``item``: what goes into the cache key."""
        ...

    async def upscale(self, items: Sequence[EnhanceItem], params: EnhanceParams) -> list[bytes | BackendError]:
        """Upscale every item by its ``scale``; one result per item, in order.
        A failed item is a BackendError in its slot; a failure of the whole
        call raises BackendError."""
        ...

    async def colorize(self, item: EnhanceItem, params: EnhanceParams) -> bytes:
        """Colorize one black-and-white image; raises BackendError."""
        ...

    async def interrupt(self) -> None:
        """Ask the engine to stop the running job (best effort)."""
        ...

    async def progress_in_flight(self) -> float | None:
        """How many images of the calls in flight are already done (>= 0), or
        None when this backend cannot tell (the pipeline then stops asking)."""
        ...

    async def aclose(self) -> None:
        """Release connections and pools."""
        ...


#: Names :func:`get_enhance_backend` accepts.
BACKEND_NAMES = ("auto", "local", "realesrgan", "spandrel", "forge")


def get_enhance_backend(name: str, **options: Any) -> EnhanceBackend:
    """Build a backend by name (one of :data:`BACKEND_NAMES`).

    ``"local"``: Pillow Lanczos (options: ``workers``). ``"realesrgan"``: the
    bundled Real-ESRGAN models through ncnn (``gpu``, ``tile``, ``auto_model``).
    ``"spandrel"``: the user's own ``.pth`` / ``.safetensors`` upscalers
    (``models_dir``, ``device``, ``tile``, ``half``). ``"forge"``: a Forge /
    A1111 server (``api_url``, ``api_auth``, ...). ``"auto"``: see
    :func:`auto_enhance_backend`.

    Raises ValueError for an unknown name, BackendError when the engine cannot
    start (the reason names the fix, e.g. the package to install).
    """
    if name == "auto":
        return auto_enhance_backend(**options)
    if name == "local":
        from .local import LocalBackend

        return LocalBackend(**options)
    if name == "realesrgan":
        from .realesrgan import RealesrganBackend

        return RealesrganBackend(**options)
    if name == "spandrel":
        from .spandrel_backend import SpandrelBackend

        return SpandrelBackend(**options)
    if name == "forge":
        from .forge import ForgeBackend  # type: ignore[import-not-found]

        return ForgeBackend(**options)
    raise ValueError(f"unknown enhancement backend {name!r}: use {', '.join(BACKEND_NAMES)}")


def auto_enhance_backend(api_url: Any = None, api_auth: str | None = None, gpu: int | str | None = None,
                         upscaler: str | None = None, models_dir: Any = None,
                         **forge_options: Any) -> EnhanceBackend:
    """What ``--backend auto`` runs.

    1. ``forge`` when ``api_url`` is given;
    2. ``spandrel`` when ``upscaler`` names a model file (``.pth``, ``.safetensors``,
       ``.ckpt``, ``.pt``) or a model found in ``models_dir`` (a BackendError
       when PyTorch / spandrel are missing: never another model instead);
    3. else ``realesrgan`` when its engine starts (a Vulkan GPU, else ncnn's CPU
       path), with ``auto_model`` on: on the CPU the default upscaler name runs
       the fast compact model (see docs/enhance.md);
    4. else ``local`` (Pillow), whose ``label`` and ``warnings`` say it is a
       fallback and why (e.g. the system package to install).
    """
    if api_url:
        from .forge import ForgeBackend  # type: ignore[import-not-found]

        auth = {"api_auth": api_auth} if api_auth else {}
        return ForgeBackend(api_url=api_url, **auth, **forge_options)
    if upscaler:
        from .spandrel_backend import find_model

        if find_model(upscaler, models_dir) is not None:  # the user's model: no silent substitute
            return get_enhance_backend("spandrel", models_dir=models_dir)
    reasons: list[str] = []
    try:
        return get_enhance_backend("realesrgan", gpu=gpu, auto_model=True)
    except BackendError as exc:
        reasons.append(exc.reason)
    from .local import LocalBackend

    local = LocalBackend()
    local.label = f"Pillow Lanczos resize (fallback: {'; '.join(reasons)})"
    local.warnings.append(f"no super-resolution model ran, only a Lanczos resize: {'; '.join(reasons)}")
    return local


def round_scale(scale: float) -> float:
    """Scale factor as stored in cache keys (4 decimals)."""
    return math.floor(scale * 10000 + 0.5) / 10000
