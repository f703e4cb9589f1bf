"""The messages the review app's workers post to it (Textual messages as dataclasses).

Workers run the core's jobs off the UI; what they learn reaches the app as
one of these, handled on the UI thread by the ``on_<name>`` method of the
mixin that owns the concern (:mod:`.actions`). Textual initialises a
dataclass message through :meth:`textual.message.Message.__post_init__`,
so each class only lists its fields. ``eq=False`` keeps identity semantics
(two messages with the same fields are still two messages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from .widgets.jobs_panel import JobProgress


@dataclass(eq=False)
class ThumbReady(Message):
    """A thumbnail made by a worker is ready: ``key`` is the preview's memory key,
    ``image`` the PIL image (None when it failed, then ``error`` says why), ``title``
    the preview's title."""

    key: str
    image: Any
    title: str
    error: str = ""


@dataclass(eq=False)
class RowsChanged(Message):
    """Background work changed some images in the store (``relpaths``; None = all);
    ``show_latest``: the preview switches to each one's newest variant."""

    relpaths: list[str] | None
    show_latest: bool = False


@dataclass(eq=False)
class AuditDone(Message):
    """The audit finished: ``findings`` is ``{relpath: [audit Finding, ...]}``,
    ``categories`` the learning-loop category of each image."""

    findings: dict[str, list[Any]]
    categories: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.categories = self.categories or {}


@dataclass(eq=False)
class FilesChanged(Message):
    """Another program changed the dataset folder: images whose file or caption
    changed (``changed``), were ``added`` or ``removed`` (relpaths); ``reload``: an
    earlier look failed half-way, so every row is reloaded."""

    changed: list[str]
    added: list[str]
    removed: list[str]
    reload: bool = False


@dataclass(eq=False)
class DecisionFailed(Message):
    """Storing a review decision for ``relpath`` failed (``reason``)."""

    relpath: str
    reason: str


@dataclass(eq=False)
class JobUpdated(Message):
    """A throttled progress snapshot of one job (``progress``), with the ``problems``
    (``(image, reason, is_failure)``) reported since the previous one."""

    progress: JobProgress
    problems: list[tuple[str, str, bool]]


__all__ = ["AuditDone", "DecisionFailed", "FilesChanged", "JobUpdated", "RowsChanged", "ThumbReady"]


@dataclass(eq=False)
class RowsFound(Message):
    """The scan found images (``items``: relpath -> what is known so far: ``size``,
    ``mtime_ns``, later ``width``, ``height``, ``format``, ``orientation``)."""

    items: dict[str, dict[str, Any]]


@dataclass(eq=False)
class RowsStored(Message):
    """The scan committed the records of ``relpaths``."""

    relpaths: list[str]


@dataclass(eq=False)
class JobSummary(Message):
    """What an ended job did, for its row (``text``: ``"done: 6 unchanged"``)."""

    key: str
    text: str
