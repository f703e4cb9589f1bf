"""Job journals and remembered file facts, in a dataset (or cache) store.

* :class:`Journal`: the resumable record of one job (tables ``jobs`` and
  ``job_items``): each finished item is journaled with its result at once, so
  a stopped job (Ctrl-C, crash, lost SSH session) resumes where it stopped.
* :func:`job_id_for`: a job's stable id from its kind, parameters, backend and
  input digests.
* :class:`SourceFacts`: what was measured of an input file (digest, upright
  size, grayscale flag), keyed by its absolute path, size and modification
  time (``st_mtime_ns``), as make and rsync decide "unchanged": a re-run
  learns them from one ``stat`` and one query instead of reading the file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash

from .cache import canonical_json
from .statuses import JobStatus
from .store import Store, register_schema

if TYPE_CHECKING:
    from .enhance.job import Source


class Journal:
    """The resumable record of one job in a dataset store (see the module docstring)."""

    def __init__(self, store: Store, job_id: str, kind: str, params: dict[str, Any], total: int):
        self.store = store
        self.job_id = job_id
        now = time.time()
        rows = store.execute("SELECT status FROM jobs WHERE id = ?", (job_id,))
        if rows and rows[0]["status"] == JobStatus.DONE:
            store.execute("DELETE FROM job_items WHERE job_id = ?", (job_id,))
        if rows:
            store.execute("UPDATE jobs SET status = ?, total = ?, updated_at = ? WHERE id = ?",
                          (JobStatus.RUNNING, total, now, job_id))
        else:
            store.execute(
                "INSERT INTO jobs(id, kind, params, status, total, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (job_id, kind, canonical_json(params), JobStatus.RUNNING, total, now, now))
        self.resumed = bool(rows) and rows[0]["status"] != JobStatus.DONE

    def done_items(self) -> dict[str, dict[str, Any]]:
        """``{item: result dict}`` for items finished in an earlier run of this job."""
        rows = self.store.execute(
            "SELECT item, result FROM job_items WHERE job_id = ? AND status = ?", (self.job_id, JobStatus.DONE))
        return {r["item"]: json.loads(r["result"]) for r in rows}

    def mark(self, item: str, status: JobStatus, result: dict[str, Any] | None = None,
             error: str | None = None) -> None:
        """Record one item's status (:attr:`JobStatus.DONE` or :attr:`JobStatus.FAILED`;
        the plain strings ``"done"`` / ``"failed"`` are the same values)."""
        self.store.execute(
            "INSERT INTO job_items(job_id, item, status, result, error, updated_at) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(job_id, item) DO UPDATE SET status=excluded.status, result=excluded.result, "
            "error=excluded.error, updated_at=excluded.updated_at",
            (self.job_id, item, status, json.dumps(result) if result is not None else None, error,
             time.time()))

    def close(self, status: JobStatus) -> None:
        """Mark the job :attr:`JobStatus.DONE` (closed) or ``CANCELLED`` / ``FAILED`` (resumable)."""
        self.store.execute("UPDATE jobs SET status = ?, updated_at = ? WHERE id = ?",
                           (status, time.time(), self.job_id))


def job_id_for(kind: str, params: dict[str, Any], backend_identity: str,
               digests: Sequence[str]) -> str:
    """Stable id of a job: xxh3-64 of its kind, parameters, backend and sorted input digests."""
    h = xxhash.xxh3_64()
    h.update(f"{kind}\0{canonical_json(params)}\0{backend_identity}\0".encode())
    for d in sorted(digests):
        h.update(d.encode())
    return f"{kind}-{h.hexdigest()}"


register_schema("source_facts", [
    "CREATE TABLE source_facts (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
    "mtime_ns INTEGER NOT NULL, digest TEXT NOT NULL, width INTEGER NOT NULL, "
    "height INTEGER NOT NULL, is_grayscale INTEGER NOT NULL)",
])


class SourceFacts:
    """Remembered facts of input files in ``store`` (schema component
    ``"source_facts"``, made on first use). ``lookup`` and ``remember`` are blocking (call them in a thread)."""

    def __init__(self, store: Store):
        self.store = store
        store.ensure_schema("source_facts")

    @staticmethod
    def _stat(path: Path) -> tuple[str, int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return os.path.abspath(path), st.st_size, st.st_mtime_ns

    def lookup(self, sources: Iterable["Source"]) -> list["Source"]:
        """The sources (among those with no digest yet) whose file is unchanged since
        it was remembered, with digest, size and grayscale flag filled in."""
        from .enhance.job import Source

        wanted = {}
        for src in sources:
            if not src.digest:
                st = self._stat(src.path)
                if st is not None:
                    wanted[st[0]] = (src, st)
        rows: dict[str, Any] = {}
        keys = list(wanted)
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            for r in self.store.execute(f"SELECT * FROM source_facts WHERE path IN "
                                        f"({','.join('?' * len(part))})", part):
                rows[r["path"]] = r
        found = []
        for key, (src, (_, size, mtime)) in wanted.items():
            r = rows.get(key)
            if r is not None and r["size"] == size and r["mtime_ns"] == mtime:
                found.append(Source(src.name, src.path, r["digest"], r["width"], r["height"],
                                    bool(r["is_grayscale"])))
        return found

    def remember(self, sources: Iterable["Source"]) -> None:
        """Record the facts of fully described sources (one transaction)."""
        rows = []
        for src in sources:
            st = self._stat(src.path)
            if st is not None and src.digest and src.width and src.height and src.is_grayscale is not None:
                rows.append((*st, src.digest, src.width, src.height, int(src.is_grayscale)))
        if rows:
            self.store.executemany(
                "INSERT INTO source_facts(path, size, mtime_ns, digest, width, height, is_grayscale) "
                "VALUES (?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET size=excluded.size, "
                "mtime_ns=excluded.mtime_ns, digest=excluded.digest, width=excluded.width, "
                "height=excluded.height, is_grayscale=excluded.is_grayscale", rows)


@dataclass(slots=True)
class InterruptedJob:
    """A job whose journal is not closed ``done``: stopped by Ctrl-C, a crash, a
    lost SSH session or a cancel. ``status`` is ``"running"`` (it never closed:
    killed), ``"cancelled"`` or ``"failed"``; ``done`` items are journaled and are
    skipped when the same job runs again; ``updated_at`` is a Unix time."""

    job_id: str
    kind: str
    params: dict[str, Any]
    status: str
    total: int
    done: int
    updated_at: float


def interrupted_jobs(store: Store, kinds: Sequence[str] = ("enhance", "caption")) -> list[InterruptedJob]:
    """The jobs of ``kinds`` in ``store`` that did not finish, newest first (what a
    front end offers to resume: running the same job again resumes it)."""
    marks = ",".join("?" * len(kinds))
    rows = store.execute(
        f"SELECT j.id, j.kind, j.params, j.status, j.total, j.updated_at, "
        f"(SELECT COUNT(*) FROM job_items i WHERE i.job_id = j.id AND i.status = ?) AS n "
        f"FROM jobs j WHERE j.status != ? AND j.kind IN ({marks}) ORDER BY j.updated_at DESC",
        (JobStatus.DONE, JobStatus.DONE, *kinds))
    return [InterruptedJob(r["id"], r["kind"], json.loads(r["params"]), r["status"], r["total"], r["n"],
                           r["updated_at"]) for r in rows]
