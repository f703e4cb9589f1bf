"""Cancelling a blocking stage the way an asyncio job is cancelled.

The core's blocking stages (the folder scan, the audit's measures, the
export's writes, bulk caption edits) report every item as an event. Run
through :func:`run_blocking`, they are cancelled like any asyncio job
(Ctrl-C under :func:`asyncio.run`, Textual's ``Worker.cancel()``): the
task's cancellation sets a cancel token that the stage's event sink checks
(:func:`cancellable_sink`), so the stage stops at its next item, keeping
what it stored, and the task ends once the thread has stopped.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import FluxgymCoachError
from .events import EventSink, JobFinished, null_sink

T = TypeVar("T")


class JobCancelled(FluxgymCoachError):
    """Raised inside a blocking stage (from its event sink) once its cancel token is set:
    the stage stops at its next event, keeping what it stored (see :func:`run_blocking`)."""


def cancellable_sink(on_event: EventSink, token: threading.Event) -> EventSink:
    """``on_event`` that raises :class:`JobCancelled` at the next event once ``token`` is
    set (a ``JobFinished`` still goes through): how a blocking stage, which reports
    every item as an event, checks the cancel token without a hook of its own."""
    def sink(event: Any) -> None:
        if token.is_set() and not isinstance(event, JobFinished):
            raise JobCancelled("the job was cancelled")
        on_event(event)
    return sink


async def run_blocking(stage: Callable[..., T], /, *args: Any, on_event: EventSink = null_sink,
                       **kwargs: Any) -> T:
    """Run the blocking ``stage(*args, on_event=..., **kwargs)`` in a thread, cancellable as
    an asyncio task: cancelling the awaiting task (Ctrl-C under :func:`asyncio.run`,
    Textual's ``Worker.cancel()``) sets the stage's cancel token, which its event sink
    checks (:func:`cancellable_sink`); the thread is waited for (what the stage stored is
    kept, so the same command resumes) and :class:`asyncio.CancelledError` is raised.
    Returns what ``stage`` returns; its exceptions propagate."""
    token = threading.Event()
    future = asyncio.ensure_future(asyncio.to_thread(stage, *args, on_event=cancellable_sink(on_event, token),
                                                     **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        token.set()
        while not future.done():  # the thread stops at its next event
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                continue
            except Exception:  # noqa: BLE001 - JobCancelled, or what stopped it: cancelled anyway
                break
        raise


__all__ = ["JobCancelled", "cancellable_sink", "run_blocking"]
