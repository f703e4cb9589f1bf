"""Events that long-running core work emits, so front ends can draw progress.

The core never prints. A job takes an optional ``on_event`` callable
(:data:`EventSink`) and calls it from whatever thread does the work; front ends
must be thread-safe in their sink (the TUI posts a message, the CLI updates a
Rich progress bar, which is thread-safe).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .statuses import JobStatus  # noqa: F401  (re-exported: the values of JobFinished.status)


@dataclass(slots=True)
class JobStarted:
    """A job of ``kind`` (``"scan"``, ``"enhance"``, ``"export"``, ...) begins with ``total`` items."""

    job: str
    kind: str
    total: int
    at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class ItemDone:
    """One item finished. ``cached`` is True when the result came from the cache
    (or, for a scan, the file was unchanged). ``detail`` carries item-specific data."""

    job: str
    item: str
    cached: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ItemFailed:
    """One item failed; ``reason`` is a sentence naming what to do."""

    job: str
    item: str
    reason: str


@dataclass(slots=True)
class ItemWarning:
    """One item succeeded with a warning (e.g. a caption read as cp1252)."""

    job: str
    item: str
    reason: str


@dataclass(slots=True)
class JobFinished:
    """The job ended: ``status`` is :attr:`JobStatus.DONE`, ``FAILED`` or ``CANCELLED``
    (:class:`~fluxgym_coach.statuses.JobStatus`, equal to ``"done"``, ``"failed"``,
    ``"cancelled"``)."""

    job: str
    kind: str
    status: str
    done: int
    failed: int
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class InFlightProgress:
    """Work done on items that have not finished yet: ``items`` (>= 0, may be
    fractional) is how many items' worth the engine reports done inside its
    running requests (for Forge, images of a batch already upscaled). Front
    ends show finished items + ``items``; each new one replaces the last."""

    job: str
    items: float


@dataclass(slots=True)
class ItemsFound:
    """Items a job found before working on them, so a front end can list them at
    once (the scan's new images, named by its folder walk, long before each is
    read). ``items`` maps each item to what is known of it so far: for the scan
    ``{"size": bytes, "mtime_ns": int}``, then, from a second event per chunk
    read by the header pass, ``"width"``, ``"height"`` (pixels as stored),
    ``"format"``, ``"orientation"`` (EXIF). A later event for the same item adds
    to the earlier one."""

    job: str
    items: dict[str, dict[str, Any]]


@dataclass(slots=True)
class ItemsStored:
    """The records of ``items`` are committed to the store: readers see them now
    (the scan emits one per batch)."""

    job: str
    items: list[str]


Event = (JobStarted | ItemDone | ItemFailed | ItemWarning | JobFinished | InFlightProgress
         | ItemsFound | ItemsStored)
EventSink = Callable[[Event], None]


def null_sink(event: Event) -> None:
    """An :data:`EventSink` that ignores everything."""
