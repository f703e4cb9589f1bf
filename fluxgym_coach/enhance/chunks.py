"""Chunks of work sent in plan order under a concurrency limit (for :mod:`fluxgym_coach.enhance.job`).

A :class:`Chunker` fills one open chunk per key (the scale factor: one
request takes images of one scale), bounded by ``max_batch`` items and
``max_request_bytes`` input bytes, and starts a task per full chunk. Chunks
leave in the order they were planned: each waits (without holding a slot)
until the one before it has been sent, so the small first chunk really is
the first request the server sees. With more than one request in flight
(``pipelined``), the first chunk and the last ones hold a quarter of
``max_batch``: the server starts early and little is left to store after its
last job; the others are full and queue while it works.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Chunker(Generic[T]):
    """See the module docstring. ``send(chunk, sent)`` sends one chunk and sets
    ``sent`` once the request has left (so the next one may go); it runs
    holding one of ``slots``. ``left`` is kept by the caller: items not planned
    yet (the last chunks are small once fewer than ``max_batch`` are left)."""

    def __init__(self, max_batch: int, max_request_bytes: int, slots: asyncio.Semaphore,
                 pipelined: bool, send: Callable[[list[T], asyncio.Event], Awaitable[None]]):
        self.max_batch, self.max_request_bytes = max_batch, max_request_bytes
        self.slots, self.pipelined, self._send = slots, pipelined, send
        self.small = max(1, -(-max_batch // 4))
        self.tasks: list[asyncio.Task[None]] = []
        self.left = 0
        self._open: dict[Hashable, tuple[list[T], int]] = {}
        self._last_sent: asyncio.Event | None = None

    def limit(self) -> int:
        """Items per chunk now (see the module docstring)."""
        if not self.pipelined:
            return self.max_batch
        return self.small if not self.tasks or self.left < self.max_batch else self.max_batch

    def add(self, key: Hashable, item: T, n_bytes: int) -> None:
        """Add ``item`` (``n_bytes`` of input) to the open chunk of ``key``; submit
        the chunk when it is full."""
        chunk, size = self._open.get(key, ([], 0))
        if chunk and (len(chunk) >= self.limit() or size + n_bytes > self.max_request_bytes):
            self.submit(chunk)
            chunk, size = [], 0
        chunk.append(item)
        self._open[key] = (chunk, size + n_bytes)
        if len(chunk) >= self.limit():
            self.submit(chunk)
            del self._open[key]

    def submit(self, chunk: list[T]) -> None:
        """Start the task that sends ``chunk`` after the previously submitted one has left."""
        sent = asyncio.Event()
        self.tasks.append(asyncio.create_task(self._in_order(chunk, self._last_sent, sent)))
        self._last_sent = sent

    def flush(self) -> None:
        """Submit every chunk still open."""
        for chunk, _ in list(self._open.values()):
            self.submit(chunk)
        self._open.clear()

    def busy(self) -> bool:
        """Whether a chunk task is still running."""
        return not all(t.done() for t in self.tasks)

    async def _in_order(self, chunk: list[T], after: asyncio.Event | None, sent: asyncio.Event) -> None:
        try:
            if after is not None:
                await after.wait()
            async with self.slots:
                await self._send(chunk, sent)
        finally:
            sent.set()
