"""Protocols every enhancement backend implements, and the parameters they take.

A backend turns image bytes into result bytes. It knows nothing of datasets,
caches or journals: :mod:`fluxgym_coach.pipeline` plans the work, looks up the
cache, chunks the batch, calls the backend and records the results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from ..errors import FluxgymCoachError
from .. import imaging

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

    ``scale_factor`` multiplies both sides; when ``target_short_side`` (px) is
    set it wins: each image gets the smallest scale (rounded up to 0.25)
    that brings its shorter side to at least that many pixels, and images
    already that large are not upscaled. ``upscaler``, ``denoising_strength``
    (0..1), ``prompt``, ``negative_prompt``, ``steps``, ``cfg_scale`` and
    ``sampler_name`` are the Forge/A1111 fields of the same meaning;
    ``scheduler`` (``"Karras"``, ``"Align Your Steps"``...; None: the
    sampler's own or the one its name ends with) is sent with img2img.
    ``output_format`` is ``PNG``, ``JPEG`` or ``WEBP``. ``sharpen`` (0..1) is
    the embedded backend's light unsharp mask. ``colorize`` enables automatic
    colorization of black-and-white images with the ``colorize_*`` prompts.
    """

    scale_factor: float = 2.0
    target_short_side: int | None = None
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
        if not (self.scale_factor > 0):
            raise ValueError(f"scale factor must be > 0, got {self.scale_factor}")
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

    def scale_for(self, width: int, height: int) -> float:
        """The scale factor this image gets (1.0 = no upscaling needed)."""
        if self.target_short_side is None:
            return float(self.scale_factor)
        short = min(width, height)
        if short >= self.target_short_side:
            return 1.0
        return imaging.ceil_scale(self.target_short_side / short)


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


def get_enhance_backend(name: str, **options: Any) -> EnhanceBackend:
    """Build a backend by name: ``"local"`` (embedded default) or ``"forge"``.

    Raises ValueError for an unknown name.
    """
    if name == "local":
        from .local import LocalBackend

        return LocalBackend(**options)
    if name == "forge":
        from .forge import ForgeBackend  # type: ignore[import-not-found]

        return ForgeBackend(**options)
    raise ValueError(f"unknown enhancement backend {name!r}: use 'local' or 'forge'")


def round_scale(scale: float) -> float:
    """Scale factor as stored in cache keys (4 decimals)."""
    return math.floor(scale * 10000 + 0.5) / 10000
