"""Captioning as a job: choose images, look up the cache, call a caption backend, write sidecars.

:func:`run_caption` is the one implementation every front end uses (CLI
``caption``, the TUI's "caption current / filtered"). :func:`get_caption_backend`
builds a backend by name.

**Which images.** ``mode`` decides what happens to an image that already has a caption:

* ``"only-missing"`` (default): only images without a caption (no sidecar,
  or an empty one) are captioned; nothing existing is touched.
* ``"refresh"``: also replaces captions that a captioner wrote and nobody
  edited since (e.g. drafts, when a VLM is now available). A caption the
  user wrote or edited is never replaced in this mode.
* ``"overwrite"``: every image is captioned again; the old text stays in the
  caption history, so ``Dataset.undo_caption`` brings it back.
* ``"propose"``: nothing is written; results are only stored as proposals
  (see :func:`proposals`), e.g. deepdanbooru tags for the tag editor.

Just before writing, the sidecar is read again; if it changed while the
backend worked (an edit in the TUI), the new text is kept and the image is
reported as skipped.

**Cache.** A result is stored in the shared :class:`~fluxgym_coach.cache.ImageCache`
under the key of (image digest, the backend's :meth:`cache_params` for that
image: model, rendered prompt, sampling settings; backend identity), so the
same image captioned with the same settings is never sent twice, in any dataset.

**Resume.** The job has an id from its mode, trigger, backend settings and
the digests of the images asked for, and a journal in the dataset store (the
pattern of :mod:`fluxgym_coach.enhance.job`). Items finished before an
interruption are not redone when the same command runs again, even in
``overwrite`` mode.

Every result is also recorded in the table ``caption_results`` (schema
component ``"captions"``) with its proposed tags, for tag proposals.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .backends.base import CaptionBackend, CaptionRequest, CaptionResult
from ..dataset import Dataset, one_line
from ..events import EventSink, null_sink
from ..cache import ImageCache, canonical_json
from ..settings import load_settings, update_settings
from ..statuses import CaptionOrigin, CaptionStatus
from ..store import Store, register_schema

MODES = ("only-missing", "refresh", "overwrite", "propose")
BACKENDS = ("draft", "openai", "forge", "florence2")

register_schema(
    "captions",
    [
        """
        CREATE TABLE caption_results (
            relpath     TEXT NOT NULL,
            identity    TEXT NOT NULL,
            backend     TEXT NOT NULL,
            digest      TEXT NOT NULL,
            text        TEXT NOT NULL,
            tags        TEXT NOT NULL,
            draft       INTEGER NOT NULL,
            at          REAL NOT NULL,
            PRIMARY KEY (relpath, identity)
        );
        """,
    ],
)


def get_caption_backend(name: str, **options: Any) -> CaptionBackend:
    """Build a caption backend by name.

    * ``"draft"``: embedded offline draft (no options);
    * ``"openai"``: any OpenAI-compatible server with vision
      (:class:`~fluxgym_coach.captions.backends.openai.OpenAICaptioner`:
      ``base_url``, ``model``, ``api_key_env``, ``system_prompt``, ``prompt``,
      ``max_tokens``, ``temperature``, ``image_size``, ``concurrency``, ``retries``...);
    * ``"forge"``: Forge/A1111 ``/sdapi/v1/interrogate``
      (:class:`~fluxgym_coach.captions.backends.forge.ForgeCaptioner`:
      ``url``, ``model`` = ``"clip"`` or ``"deepdanbooru"``...);
    * ``"florence2"``: local Florence-2 (optional extra; ``model_path``...).

    Raises ValueError for an unknown name or option (the message lists the
    valid ones).
    """
    if name == "draft":
        from .backends.draft import DraftCaptioner
        if options:
            raise ValueError(f"the draft backend takes no options (got {', '.join(options)})")
        return DraftCaptioner()
    if name == "openai":
        from .backends.openai import OpenAICaptioner
        return OpenAICaptioner(**options)
    if name == "forge":
        from .backends.forge import ForgeCaptioner
        return ForgeCaptioner(**options)
    if name == "florence2":
        from .backends.florence2 import Florence2Captioner
        return Florence2Captioner(**options)
    raise ValueError(f"unknown caption backend {name!r}: use one of {', '.join(BACKENDS)}")


@dataclass(slots=True)
class CaptionOutcome:
    """What happened to one image.

    ``status``: ``"captioned"`` (backend called now), ``"cached"`` (result from
    the cache), ``"resumed"`` (done in an earlier run of this job),
    ``"skipped"`` (``reason`` says why: has a caption, edited by the user,
    cancelled...) or ``"failed"`` (``reason`` says why). ``text`` is the caption
    written (or proposed); ``previous`` the text it replaced; ``draft`` True for
    draft captions.
    """

    relpath: str
    status: str
    text: str = ""
    reason: str = ""
    previous: str | None = None
    draft: bool = False
    tags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CaptionReport:
    """Outcomes by relpath (in the order asked), the job id, and how the job ended.

    ``fatal`` holds the reason when the backend could not work at all (the
    remaining images are skipped); ``cancelled`` is True after ``cancel``.
    ``unreadable``: images of the dataset left out because they cannot be read
    (relpath -> reason, from the store; filled by :func:`fluxgym_coach.core.caption_images`).
    """

    job_id: str
    backend: str
    mode: str
    outcomes: dict[str, CaptionOutcome] = field(default_factory=dict)
    cancelled: bool = False
    fatal: str | None = None
    resumed: bool = False
    backend_requests: int = 0
    seconds: float = 0.0
    unreadable: dict[str, str] = field(default_factory=dict)

    def by_status(self, status: str) -> list[CaptionOutcome]:
        """Outcomes with ``status``, in order."""
        return [o for o in self.outcomes.values() if o.status == status]

    @property
    def failed(self) -> list[CaptionOutcome]:
        """Outcomes that failed."""
        return self.by_status(CaptionStatus.FAILED)

    def counts(self) -> dict[str, int]:
        """``{status: count}`` for every status that occurs."""
        out: dict[str, int] = {}
        for o in self.outcomes.values():
            out[o.status] = out.get(o.status, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the CLI's ``--json``)."""
        return {"job_id": self.job_id, "backend": self.backend, "mode": self.mode,
                "cancelled": self.cancelled, "fatal": self.fatal, "resumed": self.resumed,
                "backend_requests": self.backend_requests, "seconds": round(self.seconds, 3),
                "counts": self.counts(), "outcomes": [asdict(o) for o in self.outcomes.values()],
                "unreadable": dict(self.unreadable)}


# -- caption status ----------------------------------------------------------------------
def caption_status(dataset: Dataset, relpath: str) -> str:
    """Who the current caption of an image comes from.

    ``"missing"`` (no sidecar, or empty), ``"draft"`` (written by the draft
    backend, unchanged since), ``"generated"`` (written by another captioner,
    unchanged since) or ``"edited"`` (written or changed by a person, a bulk
    edit, or a program other than fluxgym-coach). Reads the sidecar and the
    caption history.
    """
    current = dataset.read_caption(relpath)
    if current is None or not current.text.strip():
        return CaptionOrigin.MISSING
    return _status_from_history(dataset.store, relpath, current.text)


def _status_from_history(store: Store, relpath: str, text: str) -> str:
    rows = store.caption_history(relpath, include_undone=False)
    if not rows:
        return CaptionOrigin.EDITED
    last = rows[0]
    source = last["source"] or ""
    if source.startswith("caption:") and one_line(last["new_text"] or "") == one_line(text):
        return CaptionOrigin.DRAFT if source == "caption:draft" else CaptionOrigin.GENERATED
    return CaptionOrigin.EDITED


def draft_relpaths(dataset: Dataset) -> list[str]:
    """Images whose caption is still an unedited draft (see :func:`caption_status`)."""
    return [r.relpath for r in dataset.images()
            if r.caption and r.caption.strip()
            and _status_from_history(dataset.store, r.relpath, r.caption) == CaptionOrigin.DRAFT]


def dataset_trigger(dataset: Dataset) -> str | None:
    """The dataset's trigger word (:attr:`DatasetSettings.trigger`), or None."""
    return load_settings(dataset.store).trigger


def default_backend(dataset: Dataset) -> tuple[str, dict[str, Any]]:
    """The dataset's saved caption backend: ``(name, options)``; ``("draft", {})`` when none
    (:attr:`DatasetSettings.caption`)."""
    saved = load_settings(dataset.store).caption
    return saved.backend, dict(saved.options)


def save_default_backend(dataset: Dataset, name: str, options: dict[str, Any]) -> None:
    """Save ``name`` and its ``options`` as the dataset's caption backend (credentials
    are left out: ``api_auth``, ``api_key``, and any ``user:pass@`` in a URL; the
    OpenAI key is never an option, only the name of its environment variable;
    Basic credentials come from ``$FLUXGYM_COACH_OPENAI_AUTH`` on later runs).
    Raises ValueError for an unknown name."""
    from .backends.openai import redact_url

    if name not in BACKENDS:
        raise ValueError(f"unknown caption backend {name!r}: use one of {', '.join(BACKENDS)}")
    clean = {k: (redact_url(v) if k in ("base_url", "url") and isinstance(v, str) else v)
             for k, v in options.items() if k not in ("api_auth", "api_key")}
    update_settings(dataset.store, caption={"backend": name, "options": clean})


def proposals(store: Store, relpath: str) -> list[dict[str, Any]]:
    """Every backend result recorded for an image, newest first:
    ``{"backend", "identity", "text", "tags", "draft", "at"}``."""
    store.ensure_schema("captions")
    rows = store.execute("SELECT * FROM caption_results WHERE relpath = ? ORDER BY at DESC", (relpath,))
    return [{"backend": r["backend"], "identity": r["identity"], "text": r["text"],
             "tags": json.loads(r["tags"]), "draft": bool(r["draft"]), "at": r["at"]} for r in rows]


def _record_result(store: Store, relpath: str, backend: CaptionBackend, digest: str,
                   result: CaptionResult) -> None:
    store.execute(
        "INSERT INTO caption_results(relpath, identity, backend, digest, text, tags, draft, at) "
        "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(relpath, identity) DO UPDATE SET "
        "backend=excluded.backend, digest=excluded.digest, text=excluded.text, tags=excluded.tags, "
        "draft=excluded.draft, at=excluded.at",
        (relpath, backend.identity, backend.name, digest, result.text, json.dumps(result.tags),
         int(result.draft), time.time()))


def backend_settings(backend: CaptionBackend) -> dict[str, Any]:
    """The backend's settings that do not depend on the image (for job ids and reports)."""
    return backend.cache_params(CaptionRequest(relpath="", path=Path(""), digest=""))


# -- the job ------------------------------------------------------------------------------
async def run_caption(
    dataset: Dataset,
    backend: CaptionBackend,
    relpaths: Sequence[str] | None = None,
    *,
    mode: str = "only-missing",
    trigger: str | None = None,
    cache: ImageCache | None = None,
    on_event: EventSink = null_sink,
    cancel: asyncio.Event | None = None,
) -> CaptionReport:
    """Caption images of ``dataset`` with ``backend`` (see the module docstring
    and :class:`fluxgym_coach.captions.runner.CaptionJob`).

    ``relpaths``: the images to consider (default: every readable image in the
    store; scan the dataset first). ``mode``: one of :data:`MODES`.
    ``trigger``: put first in every caption written (``"<trigger>, <text>"``).
    ``cache``: result cache (default: the user's :class:`ImageCache`).
    ``on_event``: receives JobStarted / ItemDone (``detail``: status, text,
    draft) / ItemFailed / ItemWarning / JobFinished. ``cancel``: set it to stop
    after the requests in flight (report ``cancelled=True``; the job resumes
    next time).

    Never raises for one image: failures are outcomes. Raises ValueError for
    an unknown mode and CaptionBackendError when the backend's pre-flight
    :meth:`check` fails. A fatal error during the job (no vision support,
    server gone) ends it with ``report.fatal`` set.
    """
    from .runner import CaptionJob

    job = CaptionJob(dataset, backend, relpaths, mode=mode, trigger=trigger, cache=cache,
                     on_event=on_event, cancel=cancel)
    return await job.run()


def describe_settings(backend: CaptionBackend) -> str:
    """One line naming the backend and its settings (never the API key)."""
    return f"{backend.name} ({backend.identity}) {canonical_json(backend_settings(backend))}"
