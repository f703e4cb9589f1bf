"""ImageCache: content-addressed store of processing results, shared across datasets.

Layout under the cache root (``platformdirs.user_cache_dir("fluxgym-coach")``
unless ``cache_dir``/``--cache-dir``/``FLUXGYM_COACH_CACHE_DIR`` says otherwise)::

    results/<k[:2]>/<k>.<ext>   the result bytes, named by cache key
    index.sqlite                key -> file, size, times, metadata (for LRU)

The **cache key** is the xxh3-128 of three parts joined by NUL bytes: the
input image digest (xxh3-128 of its bytes), the canonical JSON of the
processing parameters (sorted keys, no spaces, floats as JSON writes them)
and the backend identity (e.g. ``"local/pillow-lanczos@1"``). The parameters
are the backend's ``cache_params``: everything that changes pixels, which for
a model-based backend includes the model's name and the digest of its weight
files (docs/enhance.md), so another model, or the same file name with other
weights, never returns a stale result. The same image processed with the same
settings by the same engine is found again wherever the file lives and
whatever it is called.

Two processes may use one cache: result files are written to a temporary
name and renamed into place, and the index is SQLite in WAL mode. When the
total size passes ``max_bytes`` the least recently used entries are removed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import xxhash
from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential

from .fsutil import atomic_write_bytes

DEFAULT_MAX_BYTES = 10 * 1024**3
CACHE_DIR_ENV = "FLUXGYM_COACH_CACHE_DIR"
CACHE_MAX_ENV = "FLUXGYM_COACH_CACHE_MAX_MB"


def default_cache_dir() -> Path:
    """The cache root: ``$FLUXGYM_COACH_CACHE_DIR`` or the platform's user cache dir."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env) if env else Path(platformdirs.user_cache_dir("fluxgym-coach"))


def canonical_json(params: dict[str, Any]) -> str:
    """Canonical JSON of a parameter dict: sorted keys, compact separators, UTF-8 kept."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def make_key(digest: str, params: dict[str, Any], backend: str) -> str:
    """Cache key (32 hex digits) of an input digest, parameters and backend identity."""
    h = xxhash.xxh3_128()
    for part in (digest, canonical_json(params), backend):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


@dataclass(slots=True)
class CacheStats:
    """``entries`` count, ``bytes`` used, ``max_bytes`` limit and the cache ``root``."""

    root: Path
    entries: int
    bytes: int
    max_bytes: int


@dataclass(slots=True)
class CacheEntry:
    """One cached result: its ``key``, file ``path``, ``size`` in bytes and ``meta`` dict."""

    key: str
    path: Path
    size: int
    meta: dict[str, Any]


class ImageCache:
    """Content-addressed result cache (see the module docstring).

    ``cache_dir``: root folder (default :func:`default_cache_dir`).
    ``max_bytes``: size limit for LRU eviction (default 10 GiB, or
    ``$FLUXGYM_COACH_CACHE_MAX_MB``).
    """

    def __init__(self, cache_dir: str | Path | None = None, max_bytes: int | None = None):
        self.root = Path(cache_dir) if cache_dir else default_cache_dir()
        if max_bytes is None:
            env = os.environ.get(CACHE_MAX_ENV)
            max_bytes = int(float(env) * 1024**2) if env else DEFAULT_MAX_BYTES
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    # -- index ------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        with self._lock:
            if self._conn is None:
                self.root.mkdir(parents=True, exist_ok=True)
                self._conn = self._open_index()
            return self._conn

    @retry(retry=retry_if_exception(lambda e: isinstance(e, sqlite3.OperationalError)
                                    and "locked" in str(e)),
           wait=wait_random_exponential(multiplier=0.05, max=2.0), stop=stop_after_delay(60),
           reraise=True)
    def _open_index(self) -> sqlite3.Connection:
        # Switching to WAL and creating the table take a write lock that SQLite's
        # busy handler does not always wait for when two processes open a new
        # cache at the same moment; retrying the whole opening is the fix.
        conn = sqlite3.connect(self.root / "index.sqlite", timeout=30.0,
                               check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, relfile TEXT NOT NULL, "
                "size INTEGER NOT NULL, created REAL NOT NULL, last_access REAL NOT NULL, "
                "meta TEXT NOT NULL)")
            conn.execute("CREATE INDEX IF NOT EXISTS entries_lru ON entries(last_access)")
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Close the index connection (the cache stays usable; it reopens on demand)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @staticmethod
    def make_key(digest: str, params: dict[str, Any], backend: str) -> str:
        """See :func:`make_key`."""
        return make_key(digest, params, backend)

    # -- lookups ----------------------------------------------------------------
    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` if its file is present (marks it recently used), else None."""
        with self._lock:
            row = self._db().execute(
                "SELECT relfile, size, meta FROM entries WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            path = self.root / row[0]
            if not path.is_file():
                self._db().execute("DELETE FROM entries WHERE key = ?", (key,))
                return None
            self._db().execute("UPDATE entries SET last_access = ? WHERE key = ?", (time.time(), key))
            return CacheEntry(key, path, row[1], json.loads(row[2]))

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, key: str, data: bytes, ext: str, meta: dict[str, Any] | None = None) -> CacheEntry:
        """Store ``data`` under ``key`` with file extension ``ext`` (e.g. ``".png"``).

        Atomic; an existing entry is replaced. May evict old entries to stay
        under the size limit (never the one just written). Returns the entry.
        """
        ext = ext if ext.startswith(".") else f".{ext}"
        rel = f"results/{key[:2]}/{key}{ext.lower()}"
        path = atomic_write_bytes(self.root / rel, data, fsync=False)
        now = time.time()
        with self._lock:
            self._db().execute(
                "INSERT INTO entries(key, relfile, size, created, last_access, meta) "
                "VALUES (?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET relfile=excluded.relfile, "
                "size=excluded.size, created=excluded.created, last_access=excluded.last_access, "
                "meta=excluded.meta",
                (key, rel, len(data), now, now, json.dumps(meta or {}, sort_keys=True)))
        self.evict(keep=key)
        return CacheEntry(key, path, len(data), meta or {})

    # -- maintenance ---------------------------------------------------------------
    def stats(self) -> CacheStats:
        """Entry count and bytes used."""
        with self._lock:
            n, total = self._db().execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries").fetchone()
        return CacheStats(self.root, int(n), int(total), self.max_bytes)

    def evict(self, target_bytes: int | None = None, keep: str | None = None) -> int:
        """Remove least recently used entries until the total is at most
        ``target_bytes`` (default ``max_bytes``). Returns how many were removed."""
        limit = self.max_bytes if target_bytes is None else target_bytes
        removed = 0
        with self._lock:
            db = self._db()
            total = db.execute("SELECT COALESCE(SUM(size), 0) FROM entries").fetchone()[0]
            if total <= limit:
                return 0
            for key, rel, size in db.execute(
                    "SELECT key, relfile, size FROM entries ORDER BY last_access").fetchall():
                if total <= limit:
                    break
                if key == keep:
                    continue
                (self.root / rel).unlink(missing_ok=True)
                db.execute("DELETE FROM entries WHERE key = ?", (key,))
                total -= size
                removed += 1
        return removed

    def clear(self) -> int:
        """Remove every entry and its file. Returns how many entries were removed."""
        with self._lock:
            db = self._db()
            rows = db.execute("SELECT relfile FROM entries").fetchall()
            for (rel,) in rows:
                (self.root / rel).unlink(missing_ok=True)
            db.execute("DELETE FROM entries")
        return len(rows)
