"""Review decisions: recording them, the export selection they set, and their exchange.

Decisions
---------
Every accept, reject, reprocess and caption edit, from any front end (TUI,
CLI ``review``, plugins), is stored by :func:`record_decision` in the dataset
store (schema component ``feedback``, table ``decisions``) with the image
digest, the variant (cache key; None = the original), the parameters, the
backend, the source and the time. ``exclude`` leaves an image out of the
export (selection status ``excluded``), ``include`` puts it back (``pending``);
an unreadable image cannot be accepted (:func:`decision_refusal`). Plus:

* ``judged``: the enhancement parameters of the variant the user judged.
  For accept/reject that is the variant's own parameters; for a reprocess it
  is the parameters of the variant shown when the user asked for other
  settings (``params`` then holds the *new* settings).
* ``category``: the image's category for the learning loop,
  ``"<bw|colour>/<small|large>/<photo|drawing>"``
  (:func:`fluxgym_coach.audit.rules.category_of`), so decisions keep their meaning
  when exported to another machine.
* ``uid``: a content hash of the decision, so merging exports twice adds
  nothing twice; ``origin``: None for decisions made here, the file name for
  imported ones (imported decisions teach the learning loop but never touch
  this dataset's export selection).

Learning loop
-------------
:mod:`fluxgym_coach.learning` turns the judged decisions into acceptance
rates and suggested :class:`EnhanceParams` (Wilson score lower bound); its
names (``acceptance_rates``, ``learn_defaults``, ``suggest_defaults``,
``MIN_DECISIONS``...) are importable from here too.

Exchange
--------
:func:`export_decisions` writes JSON Lines (one decision per line, keys as in
:meth:`Decision.to_dict`); :func:`import_decisions` merges such files,
skipping decisions already present (same ``uid``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

import xxhash

from ._lazy import lazy_exports
from .statuses import DecisionKind, ReviewStatus
from .store import Store, register_schema

#: Decision names (members of :class:`~fluxgym_coach.statuses.DecisionKind`, equal to
#: ``"accept"``, ``"reject"``, ``"reprocess"``, ``"caption_edit"``).
ACCEPT, REJECT, REPROCESS, CAPTION_EDIT = (DecisionKind.ACCEPT, DecisionKind.REJECT, DecisionKind.REPROCESS,
                                           DecisionKind.CAPTION_EDIT)
#: Review decisions on the export selection: leave an image out of the export, or put it back.
EXCLUDE, INCLUDE = DecisionKind.EXCLUDE, DecisionKind.INCLUDE
DECISIONS = (ACCEPT, REJECT, REPROCESS, CAPTION_EDIT, EXCLUDE, INCLUDE)
#: The selection status of an image left out of the export (``Store.selection``).
EXCLUDED = ReviewStatus.EXCLUDED

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
        # v2: what the learning loop and the exchange need.
        """
        ALTER TABLE decisions ADD COLUMN judged TEXT;
        ALTER TABLE decisions ADD COLUMN category TEXT;
        ALTER TABLE decisions ADD COLUMN uid TEXT;
        ALTER TABLE decisions ADD COLUMN origin TEXT;
        CREATE UNIQUE INDEX decisions_uid ON decisions(uid);
        """,
    ],
)


@dataclass(slots=True)
class Decision:
    """One review decision.

    ``relpath`` of the image; ``decision`` one of :data:`DECISIONS`;
    ``digest`` the image's xxh3-128 (filled from the store when None);
    ``variant`` the cache key of the variant judged (None = the original);
    ``params`` the enhancement parameters of that variant (for a reprocess:
    the new parameters asked for; for a caption edit: ``{"caption": text}``);
    ``backend`` the backend identity; ``source`` the front end (``"tui"``,
    ``"cli"``, ``"plugin:<name>"``); ``at`` Unix time (s). ``judged``,
    ``category``, ``uid`` and ``origin`` are filled by :func:`record_decision`
    (see the module docstring).
    """

    relpath: str
    decision: str
    digest: str | None = None
    variant: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    backend: str | None = None
    source: str = "cli"
    at: float = field(default_factory=time.time)
    id: int | None = None
    judged: dict[str, Any] | None = None
    category: str | None = None
    uid: str | None = None
    origin: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without the local ``id`` (one JSON Lines record)."""
        d = asdict(self)
        d.pop("id")
        return d

    def compute_uid(self) -> str:
        """Content hash (xxh3-128 of the canonical JSON of every field but id/uid/origin)."""
        d = self.to_dict()
        for k in ("uid", "origin", "category", "judged"):
            d.pop(k)
        return xxhash.xxh3_128_hexdigest(json.dumps(d, sort_keys=True, separators=(",", ":"),
                                                    default=str).encode())


def _ensure(store: Store) -> None:
    """Migrate the component and give rows written before schema v2 their uid."""
    store.ensure_schema("feedback")
    old = store.execute("SELECT * FROM decisions WHERE uid IS NULL")
    if old:
        store.executemany("UPDATE decisions SET uid = ? WHERE id = ?",
                          [(_row_to_decision(r).compute_uid(), r["id"]) for r in old])


def _variant_params(store: Store, relpath: str, cache_key: str | None) -> tuple[dict[str, Any], str | None] | None:
    if cache_key is None:
        return None
    for v in store.variants(relpath):
        if v.cache_key == cache_key:
            return dict(v.params), v.backend
    return None


def _category(store: Store, relpath: str) -> str | None:
    """The image's learning category from the store (measuring it once if the audit has not)."""
    from .audit import rules as audit  # lazy: audit imports the dataset layer

    rec = store.image(relpath)
    if rec is None or rec.error or not rec.width:
        return None
    extra = audit.stored_measures(store, [rec.digest]).get(rec.digest) if rec.digest else None
    if extra is None and rec.digest:
        path = store.path.parent.parent / relpath
        if path.is_file():
            extra = audit.measure_extra(path)
            audit.save_measures(store, [(rec.digest, extra)])
    return audit.category_of(rec, extra)


def record_decision(store: Store, d: Decision) -> int:
    """Store a decision; accept/reject also update the export selection.

    Accept selects ``d.variant`` (or the original) for export; reject keeps the
    original selected and marks the image rejected. Fills ``digest``,
    ``judged``, ``category`` and ``uid`` when they are None (from the store:
    the image record, the variant's parameters, the audit measures; an image
    the audit never measured is measured once here, a 256-px decode).
    Returns the decision id (the existing one when the same decision, by
    ``uid``, is already stored). Raises ValueError for an unknown decision name.
    """
    if d.decision not in DECISIONS:
        raise ValueError(f"unknown decision {d.decision!r}: use one of {', '.join(DECISIONS)}")
    refusal = decision_refusal(store.image(d.relpath), d.decision, d.variant)
    if refusal:
        raise ValueError(f"{d.relpath}: {refusal}")
    _ensure(store)
    if d.digest is None:
        rec = store.image(d.relpath)
        d.digest = rec.digest if rec else None
    if d.judged is None and d.decision in (ACCEPT, REJECT, REPROCESS):
        found = _variant_params(store, d.relpath, d.variant)
        if found is not None:
            d.judged = found[0]
            if d.backend is None and d.decision != REPROCESS:
                d.backend = found[1]
            if not d.params and d.decision != REPROCESS:
                d.params = dict(found[0])
        elif d.variant is not None and d.decision != REPROCESS:
            d.judged = dict(d.params)
    if d.category is None:
        d.category = _category(store, d.relpath)
    if d.uid is None:
        d.uid = d.compute_uid()
    new_id = _insert(store, d)
    if d.origin is None:
        if d.decision == ACCEPT:
            store.select_variant(d.relpath, d.variant, ReviewStatus.ACCEPTED)
        elif d.decision == REJECT:
            store.select_variant(d.relpath, None, ReviewStatus.REJECTED)
        elif d.decision == EXCLUDE:
            store.select_variant(d.relpath, None, EXCLUDED)
        elif d.decision == INCLUDE:
            store.select_variant(d.relpath, None, ReviewStatus.PENDING)
    return new_id


def decision_refusal(record: Any, decision: str, variant: str | None = None) -> str | None:
    """Why ``decision`` cannot be taken for the image ``record`` (an
    :class:`~fluxgym_coach.store.ImageRecord` or None), or None when it can.

    An unreadable image (``record.error`` set) cannot be accepted as the
    original: export could not read it either (it can still be excluded).
    """
    if decision == ACCEPT and variant is None and record is not None and record.error:
        return (f"cannot be accepted: the file is unreadable ({record.error}); "
                "replace the file or exclude it from the export")
    return None


def _insert(store: Store, d: Decision) -> int:
    with store.transaction() as conn:
        row = conn.execute("SELECT id FROM decisions WHERE uid = ?", (d.uid,)).fetchone()
        if row is not None:
            d.id = int(row[0])
            return d.id
        cur = conn.execute(
            "INSERT INTO decisions(relpath, digest, decision, variant, params, backend, source, at, "
            "judged, category, uid, origin) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (d.relpath, d.digest, d.decision, d.variant, json.dumps(d.params, sort_keys=True),
             d.backend, d.source, d.at, None if d.judged is None else json.dumps(d.judged, sort_keys=True),
             d.category, d.uid, d.origin))
        d.id = int(cur.lastrowid)
        return d.id


def _row_to_decision(r: Any) -> Decision:
    return Decision(relpath=r["relpath"], decision=r["decision"], digest=r["digest"],
                    variant=r["variant"], params=json.loads(r["params"]), backend=r["backend"],
                    source=r["source"], at=r["at"], id=r["id"],
                    judged=None if r["judged"] is None else json.loads(r["judged"]),
                    category=r["category"], uid=r["uid"], origin=r["origin"])


def decisions(store: Store, relpath: str | None = None, *, include_imported: bool = False) -> list[Decision]:
    """Stored decisions, oldest first; of one image when ``relpath`` is given.

    Imported decisions (from other machines or datasets) are left out unless
    ``include_imported``.
    """
    _ensure(store)
    sql, params = "SELECT * FROM decisions WHERE 1=1", []
    if relpath is not None:
        sql += " AND relpath = ?"
        params.append(relpath)
    if not include_imported:
        sql += " AND origin IS NULL"
    return [_row_to_decision(r) for r in store.execute(sql + " ORDER BY at, id", params)]


# ---------------------------------------------------------------------------
# exchange
# ---------------------------------------------------------------------------
def export_decisions(store: Store, out: IO[str] | str | Path, include_imported: bool = True) -> int:
    """Write decisions as JSON Lines to ``out`` (a path or a text stream); returns how many.

    Each line is :meth:`Decision.to_dict`. Imported decisions are included by
    default, so a merged file can be passed on.
    """
    items = decisions(store, include_imported=include_imported)
    for d in items:
        if d.uid is None:  # rows written before schema v2
            d.uid = d.compute_uid()
    lines = "".join(json.dumps(d.to_dict(), sort_keys=True, ensure_ascii=False) + "\n" for d in items)
    if isinstance(out, str | Path):
        from .fsutil import atomic_write_text

        atomic_write_text(Path(out), lines)
    else:
        out.write(lines)
    return len(items)


@dataclass(slots=True)
class ImportReport:
    """What :func:`import_decisions` did: ``added`` new decisions, ``skipped``
    already present, ``invalid`` lines ``{"<file>:<line>": reason}``."""

    added: int = 0
    skipped: int = 0
    invalid: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


_DECISION_FIELDS = {f.name for f in fields(Decision)} - {"id"}


def import_decisions(store: Store, path: str | Path, origin: str | None = None) -> ImportReport:
    """Merge a JSON Lines file of decisions into ``store`` (learning data only).

    Each line needs at least ``relpath``, ``decision`` and ``at``. Decisions
    already present (same ``uid``, or same content) are skipped.
    Imported decisions keep their category and judged parameters; they do
    not change this dataset's export selection. ``origin`` labels them
    (default: the file name). Bad lines are reported, not raised; raises
    OSError when the file cannot be read.
    """
    _ensure(store)
    path = Path(path)
    label = origin or path.name
    report = ImportReport()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            missing = [k for k in ("relpath", "decision", "at") if k not in raw]
            if missing:  # without its time a decision has no stable identity
                raise ValueError(f"missing {', '.join(missing)}")
            data = {k: v for k, v in raw.items() if k in _DECISION_FIELDS}
            d = Decision(**data)
            if d.decision not in DECISIONS:
                raise ValueError(f"unknown decision {d.decision!r}")
            if not isinstance(d.params, dict) or not (d.judged is None or isinstance(d.judged, dict)):
                raise ValueError("params and judged must be objects")
            d.at = float(d.at)
        except (ValueError, TypeError) as exc:
            report.invalid[where] = str(exc)
            continue
        d.uid = d.uid or d.compute_uid()
        d.origin = d.origin or label
        if store.execute("SELECT 1 FROM decisions WHERE uid = ?", (d.uid,)):
            report.skipped += 1
            continue
        _insert(store, d)
        report.added += 1
    return report


# The learning loop lived here before it moved to fluxgym_coach.learning; its names stay importable.
_LEARNING = dict.fromkeys(["LEARNED_FIELDS", "MIN_DECISIONS", "MIN_RATE", "PARAM_ALIASES", "WILSON_Z",
                           "SettingStats", "SuggestedDefaults", "acceptance_rates", "category_matches",
                           "learn_defaults", "normalise_params", "suggest_defaults", "wilson_lower_bound"],
                          "learning")
__getattr__ = lazy_exports(__package__, _LEARNING, globals())
