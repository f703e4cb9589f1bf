"""Background tasks of plugins: :class:`Task` and :class:`TaskQueue` (seed 000, "La file d'attente").

A task is a unit of work with a ``key``. The queue runs tasks on asyncio
workers, priority tasks first and otherwise in the order they were added. It
counts, per key, how many tasks were added, remain and are done (a
:class:`TaskState`, what a front end draws as one progress bar per key); when
the last task of a key finishes, that task's :meth:`Task.run_if_last` runs
(rebuild an index once after a batch of vector computations).

Errors are reported, never only logged: a task that raises is recorded as a
:class:`TaskError` with its traceback, listeners registered with
:meth:`TaskQueue.on_error` are called, and :meth:`TaskQueue.join` returns the
errors of the batch.

CPU work inside a task goes through :meth:`Task.run_async`, which runs a
blocking function in a thread pool so the event loop (and the TUI) stays
responsive.
"""

import asyncio
import heapq
import itertools
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass
class TaskState:
    """Progress of all tasks of one ``key``: ``total`` added, ``remain`` not yet
    finished, ``done`` finished (failed ones included), ``failed`` that raised.
    ``name`` is the label of the last task added with this key."""

    key: str
    name: str
    total: int = 0
    remain: int = 0
    done: int = 0
    failed: int = 0

    @property
    def fraction(self) -> float:
        """Done / total in [0, 1] (1.0 when nothing was added)."""
        return 1.0 if self.total == 0 else self.done / self.total


@dataclass
class TaskError:
    """A task (or its ``run_if_last``) raised: its ``key``, ``name``, the exception
    text and the formatted ``traceback``."""

    key: str
    name: str
    message: str
    traceback: str
    in_run_if_last: bool = False


class Task:
    """Base class of a background task; override :meth:`run` (and optionally
    :meth:`run_if_last`).

    ``priority=True`` puts the task before every non-priority task still
    waiting. Set ``self.name`` (label shown with the progress bar) and
    ``self.key`` (groups tasks for progress and ``run_if_last``; default: the
    class name) in your ``__init__``.
    """

    def __init__(self, priority: bool = False):
        self.priority = priority
        self.key: str = type(self).__name__
        self.name: str = type(self).__name__
        self.result: Any = None
        self._executor: Executor | None = None

    async def run(self) -> Any:
        """The work of the task. The return value is kept in ``self.result``."""
        raise NotImplementedError(f"{type(self).__name__}.run() is not implemented")

    async def run_if_last(self) -> None:
        """Called once the last queued task with this ``key`` has finished."""

    async def run_async(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking ``function(*args)`` in the queue's thread pool and await it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    # Panoptic spells it both ways in its documentation.
    _async = run_async


class TaskQueue:
    """Runs :class:`Task` objects on ``workers`` asyncio workers (see module docstring).

    ``add_task`` may be called from synchronous code; the workers start on the
    running event loop at the next ``add_task`` made inside a loop, or at
    :meth:`join`. ``executor`` is the thread pool used by ``run_async``
    (default: a pool of ``min(8, workers * 2)`` threads).
    """

    def __init__(self, workers: int = 4, executor: Executor | None = None):
        self.workers = max(1, workers)
        self.executor = executor or ThreadPoolExecutor(max_workers=min(8, self.workers * 2),
                                                       thread_name_prefix="plugin-task")
        self.states: dict[str, TaskState] = {}
        self.errors: list[TaskError] = []
        self._heap: list[tuple[int, int, Task]] = []
        self._seq = itertools.count()
        self._running = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._worker_tasks: list[asyncio.Task[None]] = []
        self._update_listeners: list[Callable[[TaskState], None]] = []
        self._error_listeners: list[Callable[[TaskError], None]] = []

    # -- listeners ------------------------------------------------------------
    def on_update(self, callback: Callable[[TaskState], None]) -> None:
        """Call ``callback(state)`` whenever the progress of a key changes."""
        self._update_listeners.append(callback)

    def on_error(self, callback: Callable[[TaskError], None]) -> None:
        """Call ``callback(error)`` whenever a task or a ``run_if_last`` raises."""
        self._error_listeners.append(callback)

    def _emit(self, state: TaskState) -> None:
        for cb in list(self._update_listeners):
            try:
                cb(state)
            except Exception as exc:  # a broken listener must not stop the queue
                self._record(TaskError(state.key, "on_update listener", repr(exc),
                                       traceback.format_exc()), notify=False)

    def _record(self, error: TaskError, notify: bool = True) -> None:
        self.errors.append(error)
        if notify:
            for cb in list(self._error_listeners):
                try:
                    cb(error)
                except Exception:
                    self.errors.append(TaskError(error.key, "on_error listener", repr(error),
                                                 traceback.format_exc()))

    # -- queue ----------------------------------------------------------------
    def add_task(self, task: Task) -> Task:
        """Queue ``task``; returns it. Safe to call without a running loop."""
        if not isinstance(task, Task):
            raise TypeError(f"add_task expects a Task, got {type(task).__name__}")
        task._executor = self.executor
        state = self.states.get(task.key)
        if state is None or state.remain == 0:
            state = self.states[task.key] = TaskState(task.key, task.name)
        state.name = task.name
        state.total += 1
        state.remain += 1
        heapq.heappush(self._heap, (0 if task.priority else 1, next(self._seq), task))
        self._emit(state)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return task
        self._ensure_workers()
        assert self._wakeup is not None
        self._wakeup.set()
        return task

    @property
    def pending(self) -> int:
        """Tasks waiting (not started)."""
        return len(self._heap)

    def _ensure_workers(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or not self._worker_tasks or all(t.done() for t in self._worker_tasks):
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._idle = asyncio.Event()
            self._worker_tasks = [loop.create_task(self._worker(), name=f"plugin-task-worker-{i}")
                                  for i in range(self.workers)]
        if self._heap:
            self._wakeup.set()

    async def _worker(self) -> None:
        assert self._wakeup is not None and self._idle is not None
        while True:
            if not self._heap:
                if self._running == 0:
                    self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            self._idle.clear()
            _, _, task = heapq.heappop(self._heap)
            self._running += 1
            try:
                await self._run_one(task)
            finally:
                self._running -= 1

    async def _run_one(self, task: Task) -> None:
        state = self.states[task.key]
        try:
            task.result = await task.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state.failed += 1
            self._record(TaskError(task.key, task.name, f"{type(exc).__name__}: {exc}",
                                   traceback.format_exc()))
        state.remain -= 1
        state.done += 1
        self._emit(state)
        if state.remain == 0:
            try:
                await task.run_if_last()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._record(TaskError(task.key, task.name, f"{type(exc).__name__}: {exc}",
                                       traceback.format_exc(), in_run_if_last=True))

    async def join(self) -> list[TaskError]:
        """Wait until no task is waiting or running; returns the errors recorded
        since the previous ``join`` (the list is then cleared)."""
        self._ensure_workers()
        assert self._idle is not None
        while self._heap or self._running:
            self._idle.clear()
            assert self._wakeup is not None
            self._wakeup.set()
            await self._idle.wait()
        errors, self.errors = self.errors, []
        return errors

    async def close(self) -> None:
        """Stop the workers (waiting tasks are dropped) and the thread pool."""
        for t in self._worker_tasks:
            t.cancel()
        for t in self._worker_tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._worker_tasks = []
        self.executor.shutdown(wait=False, cancel_futures=True)


__all__ = ["Task", "TaskError", "TaskQueue", "TaskState"]
