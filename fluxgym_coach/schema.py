"""The migration scripts of the store's own schema components, ``core`` (images,
caption sidecars and history, variants, the export selection) and ``jobs`` (resumable
job journals). Registered by :mod:`fluxgym_coach.store` (see its "Schema versioning":
scripts are append-only, never edit one that has shipped)."""

from __future__ import annotations

CORE_MIGRATIONS: list[str] = [
    # v1: images and their caption sidecars, caption history.
    """
    CREATE TABLE images (
        id              INTEGER PRIMARY KEY,
        relpath         TEXT NOT NULL UNIQUE,
        size            INTEGER NOT NULL,
        mtime_ns        INTEGER NOT NULL,
        digest          TEXT,
        width           INTEGER,
        height          INTEGER,
        format          TEXT,
        mode            TEXT,
        orientation     INTEGER,
        n_frames        INTEGER,
        phash           TEXT,
        is_grayscale    INTEGER,
        sharpness       REAL,
        error           TEXT,
        caption         TEXT,
        caption_encoding TEXT,
        caption_size    INTEGER,
        caption_mtime_ns INTEGER,
        scanned_at      REAL NOT NULL
    );
    CREATE INDEX images_digest ON images(digest);
    CREATE TABLE caption_history (
        id          INTEGER PRIMARY KEY,
        relpath     TEXT NOT NULL,
        old_text    TEXT,
        new_text    TEXT,
        source      TEXT NOT NULL,
        at          REAL NOT NULL,
        undone      INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX caption_history_relpath ON caption_history(relpath);
    CREATE TABLE settings (
        key     TEXT PRIMARY KEY,
        value   TEXT NOT NULL
    );
    """,
    # v2: which variant of each image is selected for export, plus the
    # enhanced results known for each image.
    """
    CREATE TABLE variants (
        relpath     TEXT NOT NULL,
        cache_key   TEXT NOT NULL,
        digest      TEXT NOT NULL,
        kind        TEXT NOT NULL,
        params      TEXT NOT NULL,
        backend     TEXT NOT NULL,
        path        TEXT NOT NULL,
        width       INTEGER,
        height      INTEGER,
        created_at  REAL NOT NULL,
        PRIMARY KEY (relpath, cache_key)
    );
    CREATE TABLE selection (
        relpath     TEXT PRIMARY KEY,
        cache_key   TEXT,
        status      TEXT NOT NULL,
        at          REAL NOT NULL
    );
    """,
]

JOBS_MIGRATIONS: list[str] = [
    """
    CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        params      TEXT NOT NULL,
        status      TEXT NOT NULL,
        total       INTEGER NOT NULL,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE TABLE job_items (
        job_id      TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        item        TEXT NOT NULL,
        status      TEXT NOT NULL,
        result      TEXT,
        error       TEXT,
        updated_at  REAL NOT NULL,
        PRIMARY KEY (job_id, item)
    );
    """,
]
