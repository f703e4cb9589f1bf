"""SQLite project store: one file per dataset, at ``<dataset>/.fluxgym-coach/store.sqlite``.

The store mirrors what is on disk (images and their caption sidecars) and keeps
what is not on disk: caption history, job journals, review decisions, plugin
data. It is plain :mod:`sqlite3` in WAL mode, so a CLI command and the TUI can
have the same dataset open at once.

Schema versioning
-----------------
Each feature owns a *schema component* (``"core"``, ``"jobs"``, ``"feedback"``,
``"plugins"``, ...) with an ordered list of migration scripts. The table
``schema_versions(component, version)`` records how many scripts of each
component have run. :meth:`Store.migrate` applies the missing ones inside one
transaction per script, so features can add tables without editing each other's
migration lists. Register a component with :func:`register_schema` at import
time of the module that owns it; the ``core`` and ``jobs`` components are
registered here, their scripts are in :mod:`fluxgym_coach.schema`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import FluxgymCoachError
from .schema import CORE_MIGRATIONS, JOBS_MIGRATIONS
from .statuses import ReviewStatus

STORE_DIRNAME = ".fluxgym-coach"
STORE_FILENAME = "store.sqlite"

_SCHEMAS: dict[str, list[str]] = {}


def register_schema(component: str, migrations: Sequence[str]) -> None:
    """Declare the ordered migration scripts of one schema component.

    ``migrations[i]`` is an SQL script (several statements allowed) that moves
    the component from version ``i`` to ``i + 1``. Scripts are append-only:
    never edit one that has shipped, add a new one. Registering the same
    component twice replaces the list (handy for tests).
    """
    _SCHEMAS[component] = list(migrations)


register_schema("core", CORE_MIGRATIONS)
register_schema("jobs", JOBS_MIGRATIONS)



class StoreError(FluxgymCoachError, RuntimeError):
    """The store file cannot be opened or migrated (path and reason in the message)."""


@dataclass(slots=True)
class ImageRecord:
    """One image as the store knows it.

    ``relpath`` uses forward slashes and is relative to the dataset root.
    ``width``/``height`` are pixels as stored in the file (before EXIF
    rotation); ``orientation`` is the EXIF tag value (1 = upright, 6/8 =
    rotated 90°). ``phash`` is the 64-bit perceptual hash as 16 hex digits.
    ``sharpness`` is the variance of the Laplacian (see
    :func:`fluxgym_coach.imaging.sharpness`). ``error`` is set, and the
    measurements left empty, when the file could not be read as an image.
    ``caption`` is ``None`` when no sidecar exists.
    """

    relpath: str
    size: int
    mtime_ns: int
    digest: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    mode: str | None = None
    orientation: int | None = None
    n_frames: int | None = None
    phash: str | None = None
    is_grayscale: bool | None = None
    sharpness: float | None = None
    error: str | None = None
    caption: str | None = None
    caption_encoding: str | None = None
    caption_size: int | None = None
    caption_mtime_ns: int | None = None
    scanned_at: float = field(default_factory=time.time)
    id: int | None = None

    @property
    def display_size(self) -> tuple[int, int] | None:
        """(width, height) after EXIF orientation is applied, or None if unknown."""
        if self.width is None or self.height is None:
            return None
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height

    @property
    def short_side(self) -> int | None:
        """The shorter displayed side in pixels, or None if unknown."""
        size = self.display_size
        return None if size is None else min(size)


_IMAGE_COLUMNS = [
    "relpath", "size", "mtime_ns", "digest", "width", "height", "format", "mode",
    "orientation", "n_frames", "phash", "is_grayscale", "sharpness", "error",
    "caption", "caption_encoding", "caption_size", "caption_mtime_ns", "scanned_at",
]


_UPSERT_SQL = (f"INSERT INTO images ({', '.join(_IMAGE_COLUMNS)}) "
               f"VALUES ({', '.join('?' for _ in _IMAGE_COLUMNS)}) ON CONFLICT(relpath) DO UPDATE SET "
               + ", ".join(f"{c} = excluded.{c}" for c in _IMAGE_COLUMNS if c != "relpath"))


#: The columns of :class:`ImageRecord`, in its fields' order (plain tuples of a SELECT of
#: these make records positionally: the TUI loads 10,000 of them before its first paint).
_RECORD_SELECT = "SELECT " + ", ".join(f.name for f in fields(ImageRecord)) + " FROM images"
_GRAY_INDEX = [f.name for f in fields(ImageRecord)].index("is_grayscale")


def _row_to_image(row: sqlite3.Row) -> ImageRecord:
    data = {k: row[k] for k in _IMAGE_COLUMNS}
    if data["is_grayscale"] is not None:
        data["is_grayscale"] = bool(data["is_grayscale"])
    return ImageRecord(id=row["id"], **data)


@dataclass(slots=True)
class VariantRecord:
    """An enhanced result of one image: where it is in the cache and how it was made.

    ``kind`` is ``"upscale"`` or ``"colorize"`` (or ``"colorize+upscale"``);
    ``params`` is the parameter dict used (the same one that went into the
    cache key); ``path`` is the cached file.
    """

    relpath: str
    cache_key: str
    digest: str
    kind: str
    params: dict[str, Any]
    backend: str
    path: str
    width: int | None = None
    height: int | None = None
    created_at: float = field(default_factory=time.time)


class Store:
    """The SQLite store of one dataset.

    Thread-safe: one connection guarded by a re-entrant lock (calls are short;
    long work happens outside the store). Use as a context manager or call
    :meth:`close`.

    Raises :class:`StoreError` when the file cannot be opened or is not a
    store of ours.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=30.0, check_same_thread=False, isolation_level=None
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}. "
                             f"Move the file away and run `fluxgym-coach scan` again.") from exc
        self.migrate()

    @classmethod
    def for_dataset(cls, root: str | Path) -> "Store":
        """Open (creating if needed) the store of the dataset folder ``root``."""
        return cls(Path(root) / STORE_DIRNAME / STORE_FILENAME)

    # -- plumbing -----------------------------------------------------------
    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``/``ROLLBACK``)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run one statement and return all rows (autocommit outside a transaction)."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows, in one transaction."""
        with self.transaction() as conn:
            conn.executemany(sql, rows)

    def schema_versions(self) -> dict[str, int]:
        """``{component: version}`` as recorded in the file."""
        return {r["component"]: r["version"] for r in self.execute("SELECT * FROM schema_versions")}

    def migrate(self) -> None:
        """Apply every registered migration script not yet applied (see module doc)."""
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions ("
                "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            for component, scripts in _SCHEMAS.items():
                self._migrate_component(component, scripts)

    def ensure_schema(self, component: str) -> None:
        """Apply the migrations of ``component`` (for modules imported after open)."""
        with self._lock:
            self._migrate_component(component, _SCHEMAS[component])

    def _migrate_component(self, component: str, scripts: list[str]) -> None:
        row = self._conn.execute(
            "SELECT version FROM schema_versions WHERE component = ?", (component,)
        ).fetchone()
        current = row[0] if row else 0
        if current > len(scripts):
            raise StoreError(
                f"{self.path}: schema component {component!r} is at version {current}, "
                f"newer than this fluxgym-coach knows ({len(scripts)}). Upgrade fluxgym-coach."
            )
        for version in range(current, len(scripts)):
            statements = [s for s in scripts[version].split(";") if s.strip()]
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in statements:
                    self._conn.execute(statement)
                self._conn.execute(
                    "INSERT INTO schema_versions(component, version) VALUES (?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                    (component, version + 1),
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- settings -----------------------------------------------------------
    def get_setting(self, key: str, default: Any = None) -> Any:
        """A JSON value stored under ``key``, or ``default``."""
        rows = self.execute("SELECT value FROM settings WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable ``value`` under ``key``."""
        self.execute(
            "INSERT INTO settings(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, sort_keys=True)),
        )

    # -- images -------------------------------------------------------------
    def images(self, where: str = "", params: Sequence[Any] = ()) -> list[ImageRecord]:
        """All image records, ordered by relpath; ``where`` is an optional SQL filter."""
        sql = _RECORD_SELECT
        if where:
            sql += f" WHERE {where}"
        sql += " ORDER BY relpath"
        with self._lock:
            cursor = self._conn.cursor()
            cursor.row_factory = None  # tuples in the fields' order (a third of the time of Rows)
            rows = cursor.execute(sql, params).fetchall()
        records = [ImageRecord(*r) for r in rows]
        for rec in records:
            if rec.is_grayscale is not None:
                rec.is_grayscale = bool(rec.is_grayscale)
        return records

    def image(self, relpath: str) -> ImageRecord | None:
        """The record of one image, or None."""
        rows = self.execute("SELECT * FROM images WHERE relpath = ?", (relpath,))
        return _row_to_image(rows[0]) if rows else None

    def stat_index(self) -> dict[str, tuple[int, int, int | None, int | None]]:
        """``{relpath: (size, mtime_ns, caption_size, caption_mtime_ns)}`` for the re-scan."""
        rows = self.execute(
            "SELECT relpath, size, mtime_ns, caption_size, caption_mtime_ns FROM images"
        )
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def upsert_images(self, records: Iterable[ImageRecord]) -> None:
        """Insert or replace image records (keyed by relpath), in one transaction."""
        self.write_batch(records)

    @staticmethod
    def _image_rows(records: Iterable[ImageRecord]) -> list[list[Any]]:
        idx = _IMAGE_COLUMNS.index("is_grayscale")
        rows = []
        for rec in records:
            values = [getattr(rec, c) for c in _IMAGE_COLUMNS]
            if values[idx] is not None:
                values[idx] = int(values[idx])
            rows.append(values)
        return rows

    def write_batch(self, records: Iterable[ImageRecord],
                    more: Sequence[tuple[str, Sequence[Sequence[Any]]]] = ()) -> None:
        """Upsert image records and run ``more`` statements ``[(sql, rows)]`` in ONE
        transaction (one fsync for a whole batch of a scan: rows and their measures)."""
        rows = self._image_rows(records)
        more = [(sql, r) for sql, r in more if r]
        if not rows and not more:
            return
        with self.transaction() as conn:
            if rows:
                conn.executemany(_UPSERT_SQL, rows)
            for sql, r in more:
                conn.executemany(sql, r)

    def update_caption_mirror(self, relpath: str, caption: str | None, encoding: str | None,
                              size: int | None, mtime_ns: int | None) -> None:
        """Record the sidecar's current text and stat in the image row."""
        self.execute(
            "UPDATE images SET caption = ?, caption_encoding = ?, caption_size = ?, "
            "caption_mtime_ns = ? WHERE relpath = ?",
            (caption, encoding, size, mtime_ns, relpath),
        )

    def delete_images(self, relpaths: Iterable[str]) -> int:
        """Remove images (and their selection) from the store; returns how many."""
        rels = [(r,) for r in relpaths]
        if not rels:
            return 0
        with self.transaction() as conn:
            conn.executemany("DELETE FROM images WHERE relpath = ?", rels)
            conn.executemany("DELETE FROM selection WHERE relpath = ?", rels)
        return len(rels)

    # -- caption history ----------------------------------------------------
    def add_caption_history(self, relpath: str, old_text: str | None, new_text: str | None,
                            source: str) -> int:
        """Append one caption change; returns its id. ``source`` says who made it."""
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO caption_history(relpath, old_text, new_text, source, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (relpath, old_text, new_text, source, time.time()),
            )
            return int(cur.lastrowid)

    def caption_history(self, relpath: str, include_undone: bool = True) -> list[sqlite3.Row]:
        """The changes of one caption, newest first (rows: id, old_text, new_text, source, at, undone)."""
        sql = "SELECT * FROM caption_history WHERE relpath = ?"
        if not include_undone:
            sql += " AND undone = 0"
        return self.execute(sql + " ORDER BY id DESC", (relpath,))

    def mark_caption_undone(self, history_id: int) -> None:
        """Flag one caption change as undone (it stays in the history)."""
        self.execute("UPDATE caption_history SET undone = 1 WHERE id = ?", (history_id,))

    # -- variants and selection ---------------------------------------------
    def add_variant(self, v: VariantRecord) -> None:
        """Record an enhanced result of an image (replaces the same cache key)."""
        self.execute(
            "INSERT OR REPLACE INTO variants(relpath, cache_key, digest, kind, params, backend, "
            "path, width, height, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (v.relpath, v.cache_key, v.digest, v.kind, json.dumps(v.params, sort_keys=True),
             v.backend, v.path, v.width, v.height, v.created_at),
        )

    def variants(self, relpath: str | None = None) -> list[VariantRecord]:
        """Enhanced results, newest first; of one image when ``relpath`` is given."""
        sql = "SELECT * FROM variants"
        params: tuple[Any, ...] = ()
        if relpath is not None:
            sql += " WHERE relpath = ?"
            params = (relpath,)
        sql += " ORDER BY created_at DESC"
        return [
            VariantRecord(relpath=r["relpath"], cache_key=r["cache_key"], digest=r["digest"],
                          kind=r["kind"], params=json.loads(r["params"]), backend=r["backend"],
                          path=r["path"], width=r["width"], height=r["height"],
                          created_at=r["created_at"])
            for r in self.execute(sql, params)
        ]

    def select_variant(self, relpath: str, cache_key: str | None, status: ReviewStatus) -> None:
        """Record the review status of an image and which variant export uses.

        ``cache_key`` None means the original. ``status`` is a stored
        :class:`ReviewStatus`: ``ACCEPTED``, ``REJECTED``, ``PENDING`` or ``EXCLUDED``
        (never ``UNREVIEWED``).
        """
        self.execute(
            "INSERT INTO selection(relpath, cache_key, status, at) VALUES (?,?,?,?) "
            "ON CONFLICT(relpath) DO UPDATE SET cache_key = excluded.cache_key, "
            "status = excluded.status, at = excluded.at",
            (relpath, cache_key, status, time.time()),
        )

    def selection(self) -> dict[str, tuple[str | None, str]]:
        """``{relpath: (cache_key or None, status)}`` for every image with a decision."""
        return {r["relpath"]: (r["cache_key"], r["status"])
                for r in self.execute("SELECT * FROM selection")}
