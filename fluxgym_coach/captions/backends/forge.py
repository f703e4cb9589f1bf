"""Caption backend on a Forge / A1111 server: ``POST /sdapi/v1/interrogate``.

Two models (reference/sdapi.md): ``clip`` gives a sentence from BLIP followed
by CLIP-ranked "flavours" (``"a man riding a horse, by Greg Rutkowski,
trending on artstation"``); ``deepdanbooru`` gives comma-separated booru tags
with parentheses escaped for prompts (``photo \\(medium\\)``).

Post-processing: for ``clip`` only the first clause (the BLIP sentence) is
kept unless ``keep_flavours``; a caption ending in ``<error>`` (the server's
way of saying CLIP failed, with HTTP 200) fails the image. For
``deepdanbooru`` the prompt escapes are removed, ``_`` becomes a space,
``(tag:1.2)`` weights are dropped and repeated tags removed; the tags are
also returned as proposals for the tag editor.

The HTTP work is :class:`fluxgym_coach.enhance.backends.forge.ForgeClient` (retries,
auth, both error dialects). The image is sent upright, RGB, downscaled so its
long side is at most ``image_size`` px (in a thread).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from .. import text as caption_rules
from ... import imaging
from ...enhance.backends.forge import DEFAULT_API_URL, ForgeClient, ForgeError, ForgeUnreachable
from .base import CaptionBackendError, CaptionRequest, CaptionResult

MODELS = ("clip", "deepdanbooru")


def clean_deepdanbooru(text: str) -> list[str]:
    """Tags from a deepdanbooru answer: escapes and weights removed, ``_`` as space, de-duplicated."""
    out = []
    for tag in caption_rules.split_tags(text):
        tag = tag.replace("\\(", "(").replace("\\)", ")")
        weighted = re.fullmatch(r"\((.+):[0-9.]+\)", tag)
        if weighted:
            tag = weighted.group(1)
        tag = " ".join(tag.replace("_", " ").split())
        if tag:
            out.append(tag)
    return caption_rules.split_tags(caption_rules.dedup_tags(", ".join(out)))


def clean_clip(text: str, keep_flavours: bool = False) -> str:
    """The CLIP interrogator's caption: the BLIP sentence (first clause) unless ``keep_flavours``."""
    text = caption_rules.clean_generated(text)
    if keep_flavours:
        return text
    return text.split(",")[0].strip()


def _image_bytes(path: Any, max_side: int) -> bytes:
    rgb = imaging.load_upright_rgb(path, max_side=max_side)
    return imaging.encode(rgb, "JPEG", quality=95)


class ForgeCaptioner:
    """Captions or tags from a Forge/A1111 server (see the module docstring).

    ``url``: the server (started with ``--api``); ``model``: ``"clip"`` or
    ``"deepdanbooru"``; ``api_auth``: ``"user:pass"`` (default
    ``$FLUXGYM_COACH_API_AUTH``); ``concurrency``: requests in flight (the
    server runs one job at a time; 2 overlaps the upload of the next);
    ``image_size``: long side in px sent; ``keep_flavours``: keep CLIP's
    artist/medium flavours; ``retries``/``backoff``: passed to the client.
    Raises ValueError for an unknown model.
    """

    name = "forge"
    is_draft = False

    def __init__(self, model: str = "clip", url: str = DEFAULT_API_URL, *, api_auth: str | None = None,
                 concurrency: int = 2, image_size: int = 1024, keep_flavours: bool = False,
                 retries: int = 3, backoff: float = 0.5, timeout: float = 600.0):
        if model not in MODELS:
            raise ValueError(f"Forge interrogate model must be one of {', '.join(MODELS)}, not {model!r}")
        self.model = model
        self.url = url
        self.style = "tags" if model == "deepdanbooru" else "prose"
        self.concurrency = max(1, int(concurrency))
        self.image_size = int(image_size)
        self.keep_flavours = bool(keep_flavours)
        self.identity = f"forge/{model}@1"
        self._client = ForgeClient(url, api_auth, retries=retries, backoff=backoff, timeout=timeout)

    def __repr__(self) -> str:
        return f"ForgeCaptioner(model={self.model!r}, url={self._client.url!r})"

    def cache_params(self, request: CaptionRequest) -> dict[str, Any]:
        """Model, image size and post-processing (not the URL or credentials)."""
        return {"model": self.model, "image_size": self.image_size,
                "keep_flavours": self.keep_flavours if self.model == "clip" else None}

    def _fatal(self, exc: ForgeError) -> CaptionBackendError:
        return CaptionBackendError(exc.reason, retryable=exc.retryable, fatal=True)

    async def check(self) -> None:
        """The server answers (``GET /sdapi/v1/options``) and accepts the credentials."""
        try:
            await self._client.options()
        except ForgeError as exc:
            raise self._fatal(exc) from exc

    async def prepare(self, request: CaptionRequest) -> None:
        """Nothing to prepare before :meth:`caption`."""
        return None

    async def caption(self, request: CaptionRequest) -> CaptionResult:
        """Interrogate one image; raises CaptionBackendError (fatal when the server is gone,
        refuses the credentials or lacks the model)."""
        try:
            data = await asyncio.to_thread(_image_bytes, request.path, self.image_size)
        except imaging.ImageReadError as exc:
            raise CaptionBackendError(f"{request.relpath}: {exc.reason}") from exc
        try:
            raw = await self._client.interrogate(data, self.model)
        except ForgeUnreachable as exc:
            raise self._fatal(exc) from exc
        except ForgeError as exc:
            if exc.status in (401, 403) or (exc.status == 404 and "model" in exc.detail.lower()):
                raise self._fatal(exc) from exc
            raise CaptionBackendError(exc.reason, retryable=exc.retryable) from exc
        if self.model == "deepdanbooru":
            tags = clean_deepdanbooru(raw)
            return CaptionResult(text=caption_rules.join_tags(tags), tags=tags, model=self.identity)
        return CaptionResult(text=clean_clip(raw, self.keep_flavours), model=self.identity)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()
