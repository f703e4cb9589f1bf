"""Review decisions: every accept, reject, reprocess and caption edit, from any front end.

Each decision is stored in the dataset store (schema component ``feedback``)
with the image digest, the variant, the parameters, the backend and the
time, so the TUI restores its state on reopen and the learning loop can
suggest defaults from what users accepted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from .store import Store, register_schema

#: Decision names.
ACCEPT, REJECT, REPROCESS, CAPTION_EDIT = "accept", "reject", "reprocess", "caption_edit"
DECISIONS = (ACCEPT, REJECT, REPROCESS, CAPTION_EDIT)

register_schema(
    "feedback",
    [
        """
        CREATE TABLE decisions (
            id          INTEGER PRIMARY KEY,
            relpath     TEXT NOT NULL,
            digest      TEXT,
            decision    TEXT NOT NULL,
            variant     TEXT,
            params      TEXT NOT NULL,
            backend     TEXT,
            source      TEXT NOT NULL,
            at          REAL NOT NULL
        );
        CREATE INDEX decisions_relpath ON decisions(relpath);
        """,
    ],
)


@dataclass(slots=True)
class Decision:
    """One review decision. ``variant`` is the cache key of the variant judged
    (None = the original); ``params`` the enhancement parameters of that
    variant; ``source`` the front end (``"tui"``, ``"cli"``, ``"plugin:<name>"``)."""

    relpath: str
    decision: str
    digest: str | None = None
    variant: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    backend: str | None = None
    source: str = "cli"
    at: float = field(default_factory=time.time)
    id: int | None = None


def record_decision(store: Store, d: Decision) -> int:
    """Store a decision; accept/reject also update the export selection.

    Accept selects ``d.variant`` (or the original) for export; reject keeps the
    original selected and marks the image rejected. Returns the decision id.
    Raises ValueError for an unknown decision name.
    """
    if d.decision not in DECISIONS:
        raise ValueError(f"unknown decision {d.decision!r}: use one of {', '.join(DECISIONS)}")
    store.ensure_schema("feedback")
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO decisions(relpath, digest, decision, variant, params, backend, source, at) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (d.relpath, d.digest, d.decision, d.variant, json.dumps(d.params, sort_keys=True),
             d.backend, d.source, d.at))
        new_id = int(cur.lastrowid)
    if d.decision == ACCEPT:
        store.select_variant(d.relpath, d.variant, "accepted")
    elif d.decision == REJECT:
        store.select_variant(d.relpath, None, "rejected")
    return new_id


def decisions(store: Store, relpath: str | None = None) -> list[Decision]:
    """Stored decisions, oldest first; of one image when ``relpath`` is given."""
    store.ensure_schema("feedback")
    sql, params = "SELECT * FROM decisions", ()
    if relpath is not None:
        sql, params = sql + " WHERE relpath = ?", (relpath,)
    return [Decision(relpath=r["relpath"], decision=r["decision"], digest=r["digest"],
                     variant=r["variant"], params=json.loads(r["params"]), backend=r["backend"],
                     source=r["source"], at=r["at"], id=r["id"])
            for r in store.execute(sql + " ORDER BY id", params)]
