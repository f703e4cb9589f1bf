"""The Protocol every caption backend implements, and what it receives and returns.

A caption backend turns one image into text. It knows nothing of datasets,
sidecars, caches or journals: :func:`fluxgym_coach.captions.job.run_caption`
plans the work, looks results up in the cache, calls the backend with at most
``backend.concurrency`` requests in flight, applies the trigger word and writes
the sidecar.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ...enhance.backends.base import BackendError

#: Placeholders a prompt template may use.
PROMPT_PLACEHOLDERS = ("trigger", "tags", "filename", "folder")


class CaptionBackendError(BackendError):
    """A caption backend could not caption an image.

    ``reason`` is a sentence a user can act on. ``retryable``: the same
    request may succeed later. ``fatal``: every other image would fail the
    same way (server unreachable, no vision support, missing model), so the
    job stops instead of trying them all.
    """

    def __init__(self, reason: str, retryable: bool = False, fatal: bool = False):
        super().__init__(reason, retryable)
        self.fatal = fatal


@dataclass(slots=True)
class CaptionRequest:
    """One image to caption.

    ``relpath``: its name in the dataset; ``path``: the file to read;
    ``digest``: xxh3-128 of its bytes; ``trigger``: the trigger word or None;
    ``tags``: tags already known for it (its current caption's tags, or
    proposals); ``folder``: the concept name taken from its folder (kohya's
    ``N_`` repeat prefix removed), or ``""``; ``is_grayscale``, ``width``,
    ``height`` (upright px) when known; ``prepared``: the result of the
    backend's :meth:`~CaptionBackend.prepare` (None until then).
    """

    relpath: str
    path: Path
    digest: str
    trigger: str | None = None
    tags: list[str] = field(default_factory=list)
    folder: str = ""
    is_grayscale: bool | None = None
    width: int | None = None
    height: int | None = None
    prepared: Any = None  # what the backend's prepare() made of it (set by the job)

    @property
    def filename(self) -> str:
        """The image's file name without folder."""
        return Path(self.relpath).name

    def placeholders(self) -> dict[str, str]:
        """Values for the prompt placeholders (see :data:`PROMPT_PLACEHOLDERS`)."""
        return {"trigger": self.trigger or "", "tags": ", ".join(self.tags),
                "filename": Path(self.relpath).stem, "folder": self.folder}


@dataclass(slots=True)
class CaptionResult:
    """What a backend produced: ``text`` (cleaned, without the trigger word),
    ``tags`` it proposes (booru tags, or none), ``draft`` True when the text is
    only a starting point to edit, ``warnings`` (e.g. cut off at max tokens),
    ``model`` the model that answered when the server says."""

    text: str
    tags: list[str] = field(default_factory=list)
    draft: bool = False
    warnings: list[str] = field(default_factory=list)
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (what the cache stores)."""
        return {"text": self.text, "tags": list(self.tags), "draft": self.draft,
                "warnings": list(self.warnings), "model": self.model}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CaptionResult":
        """Inverse of :meth:`to_dict`."""
        return cls(text=data.get("text", ""), tags=list(data.get("tags") or []),
                   draft=bool(data.get("draft")), warnings=list(data.get("warnings") or []),
                   model=data.get("model", ""))


@runtime_checkable
class CaptionBackend(Protocol):
    """What :func:`~fluxgym_coach.captions.job.run_caption` needs from a captioner.

    ``name``: ``"draft"``, ``"openai"``, ``"forge"``, ``"florence2"``.
    ``identity``: engine identity for cache keys (changes when the same
    settings would give other text). ``style``: ``"prose"`` or ``"tags"``.
    ``concurrency``: most requests in flight. ``is_draft``: its captions are
    drafts to edit.
    """

    name: str
    identity: str
    style: str
    concurrency: int
    is_draft: bool

    def cache_params(self, request: CaptionRequest) -> dict[str, Any]:
        """Everything besides the image that decides the text (model, rendered
        prompt, sampling settings): what goes into the cache key."""
        ...

    async def check(self) -> None:
        """Fail fast (CaptionBackendError, usually fatal) when the backend cannot run."""
        ...

    async def prepare(self, request: CaptionRequest) -> Any:
        """The work done before the request, off the event loop (e.g. the encoded
        image); the job stores it in ``request.prepared`` and calls it for the next
        images while :meth:`caption` requests are in flight. None: nothing to do.
        Raises CaptionBackendError."""
        ...

    async def caption(self, request: CaptionRequest) -> CaptionResult:
        """Caption one image (using ``request.prepared`` when set); raises
        CaptionBackendError."""
        ...

    async def aclose(self) -> None:
        """Release connections and models."""
        ...


def validate_template(template: str, what: str = "prompt") -> str:
    """Check a prompt template's placeholders; returns it unchanged.

    Raises ValueError naming an unknown placeholder and the allowed ones
    (``{trigger}``, ``{tags}``, ``{filename}``, ``{folder}``). Literal braces
    are written ``{{`` and ``}}``.
    """
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"{what} template {template!r}: {exc} (write literal braces as {{{{ }}}})") from exc
    for f in fields:
        if f not in PROMPT_PLACEHOLDERS:
            raise ValueError(f"{what} template uses {{{f}}}; allowed placeholders: "
                             + ", ".join(f"{{{p}}}" for p in PROMPT_PLACEHOLDERS))
    return template


def render_template(template: str, request: CaptionRequest) -> str:
    """Fill a validated template for one image; empty values leave no dangling
    separators (``"tags: {tags}."`` with no tags keeps ``"tags: ."``, so write
    templates that read well either way)."""
    text = template.format_map(request.placeholders())
    return re.sub(r"[ \t]+", " ", text).strip()


def folder_concept(relpath: str, root_name: str = "") -> str:
    """The concept a folder name gives: the image's parent folder (the dataset
    folder's own name for top-level images), with kohya's ``N_`` repeat prefix
    removed and ``_``/``-`` read as spaces. Generic names (images, data,
    dataset, photos, raw, train, input...) give ``""``."""
    parts = relpath.replace("\\", "/").split("/")
    name = parts[-2] if len(parts) > 1 else root_name
    name = re.sub(r"^\d+_", "", name or "")
    name = " ".join(name.replace("_", " ").replace("-", " ").split())
    generic = {"images", "image", "img", "imgs", "data", "dataset", "datasets", "photos", "photo",
               "pictures", "pics", "raw", "train", "training", "input", "inputs", "src", "source",
               "tmp", "temp", "new folder", "untitled", "real", "all", "misc"}
    if not name or name.lower() in generic or name.isdigit():
        return ""
    return name
