"""Shared presentation helpers for CLI commands: consoles, progress from events, exit codes."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from ..events import Event, InFlightProgress, ItemDone, ItemFailed, ItemWarning, JobStarted

T = TypeVar("T")

#: Exit codes shared by every command.
EXIT_OK = 0
EXIT_FAILED = 1      # some item failed (or, with --strict, warned)
EXIT_USAGE = 2       # bad arguments or input the command cannot start with
EXIT_BACKEND = 3     # the configured server is unreachable or refused the settings

out = Console(soft_wrap=True)
err = Console(stderr=True)


def esc(value: Any) -> str:
    """``str(value)`` with Rich markup escaped, for every file name, path, caption,
    message or server text the CLI prints: a file named ``[bold red]m[blink] x.png``
    must print as itself, not as a styled ``m x.png`` (``rich.markup.escape``)."""
    return escape(str(value))


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (for ``--json``)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def exit_code_for(exc: BaseException) -> int:
    """The exit code of a command stopped by ``exc`` (the one place errors map to codes;
    the table is in :mod:`fluxgym_coach.errors`): EXIT_BACKEND for a backend that refused
    the job or cannot be reached, EXIT_FAILED for images that could not be read or
    enhanced, EXIT_USAGE for unusable input (dataset, export target, store, plugin, bad
    value), EXIT_FAILED for anything else."""
    from ..enhance.backends.base import BackendError
    from ..enhance.enhancer import EnhancementError
    from ..errors import FluxgymCoachError
    from ..imaging import ImageReadError

    if isinstance(exc, BackendError):
        return EXIT_BACKEND
    if isinstance(exc, ImageReadError | EnhancementError):
        return EXIT_FAILED
    if isinstance(exc, FluxgymCoachError | ValueError):
        return EXIT_USAGE
    return EXIT_FAILED


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``message`` (plain text: markup in it is shown as typed) as an error on
    stderr and return the Exit to raise."""
    err.print(f"[bold red]error:[/] {esc(message)}")
    return typer.Exit(code)


@dataclass
class Problems:
    """Failures and warnings collected from events, by item name."""

    failures: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)

    def exit_code(self, strict: bool) -> int:
        """EXIT_FAILED when anything failed, or warned under ``strict``; else EXIT_OK."""
        if self.failures or (strict and self.warnings):
            return EXIT_FAILED
        return EXIT_OK


_LABELS = {"scan": "Scanning", "enhance": "Enhancing", "export": "Exporting",
           "caption": "Captioning", "audit": "Auditing"}


class EventProgress:
    """An :data:`~fluxgym_coach.events.EventSink` that draws one Rich progress bar per
    job on stderr (hidden for jobs shorter than ``min_seconds``) and collects problems.

    Thread-safe: events may come from worker threads.
    """

    def __init__(self, quiet: bool = False, min_seconds: float = 1.0):
        self.problems = Problems()
        self._lock = threading.Lock()
        self._tasks: dict[str, Any] = {}
        self._starts: dict[str, float] = {}
        self._done: dict[str, int] = {}
        self._shown: dict[str, float] = {}
        self._min = min_seconds
        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), console=err, transient=False,
            disable=quiet or not err.is_terminal, refresh_per_second=8)

    def __enter__(self) -> "EventProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, JobStarted):
                label = _LABELS.get(event.kind, event.kind.capitalize())
                self._tasks[event.job] = self.progress.add_task(label, total=event.total, rate="",
                                                                visible=False)
                self._starts[event.job] = time.monotonic()
                return
            task = self._tasks.get(event.job)
            if isinstance(event, ItemFailed):
                self.problems.failures[event.item] = event.reason
            elif isinstance(event, ItemWarning):
                self.problems.warnings.setdefault(event.item, []).append(event.reason)
            if task is None:
                return
            if isinstance(event, ItemDone | ItemFailed):
                self._done[event.job] = done = self._done.get(event.job, 0) + 1
                elapsed = time.monotonic() - self._starts[event.job]
                rate = f"{done / elapsed:.1f}/s" if elapsed > 0 else ""
                self._show(event.job, task, done, rate=rate,
                           visible=True if elapsed >= self._min else None)
            elif isinstance(event, InFlightProgress):
                # finished items plus what the server has done inside running requests
                elapsed = time.monotonic() - self._starts[event.job]
                self._show(event.job, task, self._done.get(event.job, 0) + event.items,
                           visible=True if elapsed >= self._min else None)

    def _show(self, job: str, task: Any, completed: float, **fields: Any) -> None:
        # Never move backwards: an in-flight figure can be stale by one poll.
        shown = max(self._shown.get(job, 0.0), completed)
        self._shown[job] = shown
        self.progress.update(task, completed=shown, **fields)


@contextmanager
def progress_sink(quiet: bool = False) -> Iterator[EventProgress]:
    """``with progress_sink() as sink:`` pass ``sink`` as ``on_event``; read ``sink.problems``."""
    with EventProgress(quiet=quiet) as sink:
        yield sink


def run_resumable(job: Coroutine[Any, Any, T], sink: "EventProgress | None" = None) -> T:
    """``asyncio.run(job)`` for a job that resumes from its journal: on Ctrl-C the progress
    bars of ``sink`` stop (their last frame first), then ``interrupted: finished work is
    kept; run the same command again to resume`` on stderr, and the command exits 130."""
    try:
        return asyncio.run(job)
    except KeyboardInterrupt:
        if sink is not None:
            sink.progress.stop()
        err.print("[yellow]interrupted[/]: finished work is kept; run the same command again "
                  "to resume")
        raise typer.Exit(130) from None


def report_problems(problems: Problems, limit: int = 50, group_from: int = 3) -> None:
    """Print failures, then warnings, on stderr, naming the file and the reason.

    A reason shared by ``group_from`` files or more is printed once with the
    file names after it (the first eight), so 150 uncaptioned images give one
    line, not 150; other problems get a line each, up to ``limit`` lines of
    each kind. ``--json`` output has every file."""
    def lines(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        by_reason: dict[str, list[str]] = {}
        for name, reason in pairs:
            by_reason.setdefault(reason, []).append(name)
        out: list[tuple[str, str]] = []
        done: set[str] = set()
        for name, reason in pairs:  # first-seen order
            names = by_reason[reason]
            if len(names) < group_from:
                out.append((name, reason))
            elif reason not in done:
                done.add(reason)
                shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
                out.append((f"{len(names)} images", f"{reason} ({shown})"))
        return out

    for label, style, pairs in (
            ("failures", "[red]failed[/] ", list(problems.failures.items())),
            ("warnings", "[yellow]warning[/]", [(n, r) for n, rs in problems.warnings.items() for r in rs])):
        grouped = lines(pairs)
        for name, reason in grouped[:limit]:
            err.print(f"{style} {esc(name)}: {esc(reason)}", highlight=False)
        if len(grouped) > limit:
            err.print(f"... and {len(grouped) - limit} more {label} (--json lists them all)")
