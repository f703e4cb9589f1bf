"""The plugin-side project: a dataset's data as Panoptic's plugin API sees it.

:class:`Project` wraps a :class:`~fluxgym_coach.dataset.Dataset` and owns what
plugins share: the action registry, the task queue, event listeners, the
undo/redo stacks, notifications and the loaded plugins. Each plugin talks to
it through its own :class:`~fluxgym_coach.plugins.interface.PluginProjectInterface`.

Storage (schema component ``"plugins"`` of the dataset's store): folders,
property groups, properties, tags, instance and image property values, vector
types, vectors (raw float32 bytes) and per-plugin data such as params. The
instances are the store's ``images`` rows that could be read (``error IS
NULL``).

Ids: objects created through a :class:`~fluxgym_coach.plugins.models.DbCommit`
carry negative ids; on insert each gets the next free id of its table
(SQLite's ``max(id) + 1``), and every reference inside the commit (tag
property, tag parents, value property and instance, tag ids inside tag
values, folder parents, instance folder) is rewritten to the real id.
"""

import asyncio
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import FluxgymCoachError
from ..dataset import Dataset
from ..store import Store, register_schema
from .actions import ActionRegistry
from .models import (ActionContext, ActionResult, DbCommit, DeleteFolderConfirm, Folder,
                     FolderDeleteCallback, FunctionDescription, ImageProperty, ImagePropertyKey,
                     Instance, InstanceCallback, InstanceProperty, InstancePropertyKey, Notif,
                     NotifType, Property, PropertyGroup, PropertyMode, PropertyType, Tag, Vector,
                     VectorType)
from .tasks import TaskError, TaskQueue

register_schema(
    "plugins",
    [
        """
        CREATE TABLE plugin_data (
            key     TEXT PRIMARY KEY,
            value   TEXT NOT NULL
        );
        CREATE TABLE plugin_folders (
            id      INTEGER PRIMARY KEY,
            path    TEXT NOT NULL UNIQUE,
            name    TEXT NOT NULL,
            parent  INTEGER
        );
        CREATE TABLE plugin_property_groups (
            id      INTEGER PRIMARY KEY,
            name    TEXT NOT NULL
        );
        CREATE TABLE plugin_properties (
            id      INTEGER PRIMARY KEY,
            name    TEXT NOT NULL,
            type    TEXT NOT NULL,
            mode    TEXT NOT NULL,
            property_group_id INTEGER
        );
        CREATE TABLE plugin_tags (
            id          INTEGER PRIMARY KEY,
            property_id INTEGER NOT NULL,
            value       TEXT NOT NULL,
            parents     TEXT NOT NULL,
            color       INTEGER NOT NULL
        );
        CREATE TABLE plugin_instance_values (
            property_id INTEGER NOT NULL,
            instance_id INTEGER NOT NULL,
            value       TEXT NOT NULL,
            PRIMARY KEY (property_id, instance_id)
        );
        CREATE TABLE plugin_image_values (
            property_id INTEGER NOT NULL,
            sha1        TEXT NOT NULL,
            value       TEXT NOT NULL,
            PRIMARY KEY (property_id, sha1)
        );
        CREATE TABLE plugin_vector_types (
            id      INTEGER PRIMARY KEY,
            source  TEXT NOT NULL,
            params  TEXT NOT NULL
        );
        CREATE TABLE plugin_vectors (
            type_id INTEGER NOT NULL,
            sha1    TEXT NOT NULL,
            data    BLOB NOT NULL,
            PRIMARY KEY (type_id, sha1)
        );
        """,
        # v2: which file each instance id was, so values never move to another image when
        # the store reuses the id of a removed image (see Project.reconcile_instances).
        """
        CREATE TABLE plugin_instance_paths (
            id      INTEGER PRIMARY KEY,
            relpath TEXT NOT NULL
        );
        """,
        # v3: which image (relpath, digest) the on_instance_import listeners were told of, so
        # an image first indexed by another command (export, audit, caption, the TUI) is
        # announced at the next scan with plugins (see loader.notify_scan).
        """
        CREATE TABLE plugin_imported (
            relpath TEXT PRIMARY KEY,
            digest  TEXT NOT NULL
        );
        """,
    ],
)

#: Read-only properties computed from the store (``get_properties(computed=True)``).
COMPUTED_PROPERTIES: list[Property] = [
    Property(-1, "relpath", PropertyType.path, PropertyMode.id),
    Property(-2, "sha1", PropertyType.string, PropertyMode.sha1),
    Property(-3, "ahash", PropertyType.string, PropertyMode.sha1),
    Property(-4, "folder", PropertyType.number, PropertyMode.id),
    Property(-5, "width", PropertyType.number, PropertyMode.sha1),
    Property(-6, "height", PropertyType.number, PropertyMode.sha1),
    Property(-7, "caption", PropertyType.string, PropertyMode.id),
    Property(-8, "sharpness", PropertyType.number, PropertyMode.sha1),
]
_TAG_TYPES = {PropertyType.tag.value, PropertyType.multi_tags.value}


class CommitError(FluxgymCoachError, ValueError):
    """A commit cannot be applied (message names the object and why); nothing was written."""


@dataclass
class _Listeners:
    imports: list[tuple[str, InstanceCallback]] = field(default_factory=list)
    folder_deletes: list[tuple[str, FolderDeleteCallback]] = field(default_factory=list)
    notifs: list[Callable[[Notif], None]] = field(default_factory=list)


def _folder_of(relpath: str) -> str:
    return relpath.rsplit("/", 1)[0] if "/" in relpath else ""


class Project:
    """Plugin-side view of one dataset (see the module docstring).

    ``dataset`` is an open :class:`Dataset`; ``workers`` the number of task
    queue workers. Close with :meth:`close` (also closes the dataset when
    ``owns_dataset``).
    """

    def __init__(self, dataset: Dataset, workers: int = 4, owns_dataset: bool = False):
        self.dataset = dataset
        self.store: Store = dataset.store
        self.store.ensure_schema("plugins")
        self.base_path = dataset.root
        self.data_root = dataset.root / ".fluxgym-coach" / "plugin_data"
        self.registry = ActionRegistry()
        self.task_queue = TaskQueue(workers=workers)
        self.plugins: dict[str, Any] = {}
        self.load_errors: dict[str, str] = {}
        self.untrusted: dict[str, str] = {}  # plugin name -> the command that trusts its folder
        self.notifications: list[Notif] = []
        self.undo_stack: list[DbCommit] = []
        self.redo_stack: list[DbCommit] = []
        self._listeners = _Listeners()
        self._fake_ids = itertools.count(-101, -1)
        self._owns_dataset = owns_dataset
        self.task_queue.on_error(self._task_failed)
        self.reconcile_instances()

    @classmethod
    def open(cls, root: str | os.PathLike[str], workers: int = 4) -> "Project":
        """Open the dataset folder ``root`` (creating its store) as a project."""
        return cls(Dataset(root), workers=workers, owns_dataset=True)

    def close(self) -> None:
        """Shut the thread pool down; close the dataset when this project opened it."""
        self.task_queue.executor.shutdown(wait=False, cancel_futures=True)
        if self._owns_dataset:
            self.dataset.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- notifications ----------------------------------------------------------
    def on_notif(self, callback: Callable[[Notif], None]) -> None:
        """Call ``callback(notif)`` for every notification raised outside an action
        result (task errors, failed event listeners, load errors)."""
        self._listeners.notifs.append(callback)

    def notify(self, notif: Notif) -> None:
        """Record a notification and pass it to the listeners."""
        self.notifications.append(notif)
        for cb in list(self._listeners.notifs):
            cb(notif)

    def _task_failed(self, error: TaskError) -> None:
        where = "run_if_last of " if error.in_run_if_last else ""
        self.notify(Notif(NotifType.ERROR, name=f"task failed: {where}{error.name}",
                          message=error.message, data={"traceback": error.traceback, "key": error.key}))

    def fake_id(self) -> int:
        """A fresh negative id for an object to create in a commit (-101, -102, ...)."""
        return next(self._fake_ids)

    # -- plugin data ------------------------------------------------------------
    def get_plugin_data(self, key: str, default: Any = None) -> Any:
        """JSON value stored under ``key`` in ``plugin_data`` (params use ``<name>.base``)."""
        rows = self.store.execute("SELECT value FROM plugin_data WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def set_plugin_data(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable ``value`` under ``key``."""
        self.store.execute("INSERT INTO plugin_data(key, value) VALUES (?, ?) ON CONFLICT(key) "
                           "DO UPDATE SET value = excluded.value", (key, json.dumps(value, sort_keys=True)))

    def delete_plugin_data(self, prefix: str) -> None:
        """Remove every ``plugin_data`` key equal to ``prefix`` or starting with ``prefix + '.'``."""
        self.store.execute("DELETE FROM plugin_data WHERE key = ? OR key LIKE ?", (prefix, prefix + ".%"))

    # -- folders and instances ----------------------------------------------------
    def sync_folders(self) -> dict[str, int]:
        """Make sure every folder holding an image (and its parents) has a row; returns path -> id."""
        rows = self.store.execute("SELECT id, path FROM plugin_folders")
        known = {r["path"]: r["id"] for r in rows}
        wanted: set[str] = {""}
        for r in self.store.execute("SELECT relpath FROM images"):
            path = _folder_of(r["relpath"])
            while path not in wanted:
                wanted.add(path)
                path = _folder_of(path)
        missing = sorted(wanted - set(known), key=lambda p: (p.count("/"), p))
        if missing:
            with self.store.transaction() as conn:
                for path in missing:
                    parent = None if path == "" else known.get(_folder_of(path))
                    name = path.rsplit("/", 1)[-1] if path else self.base_path.name
                    cur = conn.execute("INSERT INTO plugin_folders(path, name, parent) VALUES (?, ?, ?)",
                                       (path, name, parent))
                    known[path] = int(cur.lastrowid)
        return known

    def reconcile_instances(self) -> list[int]:
        """Drop the property values of instance ids that no longer name the same file.

        The store may give a new image the id a removed image had (a plain
        ``Dataset.scan`` removes, then inserts). Each id's relpath is
        remembered here; an id that vanished or now names another file loses
        its instance values. Runs when the project opens and after
        :func:`~fluxgym_coach.plugins.loader.scan_and_notify`. Returns the ids
        whose values were dropped.
        """
        current = {r["id"]: r["relpath"] for r in self.store.execute("SELECT id, relpath FROM images")}
        seen = {r["id"]: r["relpath"] for r in self.store.execute("SELECT id, relpath FROM plugin_instance_paths")}
        stale = [i for i, rel in seen.items() if current.get(i) != rel]
        with self.store.transaction() as conn:
            if stale:
                conn.executemany("DELETE FROM plugin_instance_values WHERE instance_id = ?", [(i,) for i in stale])
                conn.executemany("DELETE FROM plugin_instance_paths WHERE id = ?", [(i,) for i in stale])
            conn.executemany("INSERT OR REPLACE INTO plugin_instance_paths(id, relpath) VALUES (?, ?)",
                             [(i, rel) for i, rel in current.items() if seen.get(i) != rel])
        return stale

    def folders(self) -> list[Folder]:
        """All folders, ordered by path."""
        self.sync_folders()
        return [Folder(r["id"], r["path"], r["name"], r["parent"])
                for r in self.store.execute("SELECT * FROM plugin_folders ORDER BY path")]

    def _instance_from_row(self, row: Any, folder_ids: dict[str, int]) -> Instance:
        rel = row["relpath"]
        name = rel.rsplit("/", 1)[-1]
        stem, ext = os.path.splitext(name)
        w, h = row["width"], row["height"]
        if row["orientation"] in (5, 6, 7, 8):
            w, h = h, w
        return Instance(id=row["id"], folder_id=folder_ids.get(_folder_of(rel)), name=stem,
                        extension=ext.lstrip(".").lower(), sha1=row["digest"],
                        url=str(self.base_path / rel), height=h, width=w, ahash=row["phash"],
                        relpath=rel)

    def instances(self, ids: Iterable[int] | None = None, sha1s: Iterable[str] | None = None) -> list[Instance]:
        """Readable images as instances; with ``ids`` and/or ``sha1s`` those matching
        either (OR), else all; ordered by relpath."""
        folder_ids = self.sync_folders()
        sql = "SELECT id, relpath, digest, width, height, orientation, phash FROM images WHERE error IS NULL"
        params: list[Any] = []
        conds = []
        if ids is not None:
            ids = list(ids)
            conds.append(f"id IN ({','.join('?' * len(ids))})" if ids else "0")
            params += ids
        if sha1s is not None:
            sha1s = list(sha1s)
            conds.append(f"digest IN ({','.join('?' * len(sha1s))})" if sha1s else "0")
            params += sha1s
        if conds:
            sql += " AND (" + " OR ".join(conds) + ")"
        rows = self.store.execute(sql + " ORDER BY relpath", params)
        return [self._instance_from_row(r, folder_ids) for r in rows]

    # -- properties, tags, values -------------------------------------------------
    def properties(self, ids: Iterable[int] | None = None, computed: bool = False) -> list[Property]:
        """User properties (and the computed ones when ``computed``), filtered by ``ids``."""
        rows = self.store.execute("SELECT * FROM plugin_properties ORDER BY id")
        props = [Property(r["id"], r["name"], PropertyType(r["type"]), PropertyMode(r["mode"]),
                          r["property_group_id"]) for r in rows]
        if computed:
            props = list(COMPUTED_PROPERTIES) + props
        if ids is not None:
            wanted = set(ids)
            props = [p for p in props if p.id in wanted]
        return props

    def property_groups(self) -> list[PropertyGroup]:
        """All property groups."""
        return [PropertyGroup(r["id"], r["name"])
                for r in self.store.execute("SELECT * FROM plugin_property_groups ORDER BY id")]

    def tags(self, ids: Iterable[int] | None = None, property_ids: Iterable[int] | None = None) -> list[Tag]:
        """Tags matching ``ids`` or ``property_ids`` (OR); all when both are None."""
        rows = self.store.execute("SELECT * FROM plugin_tags ORDER BY id")
        tags = [Tag(r["id"], r["property_id"], r["value"], json.loads(r["parents"]), r["color"]) for r in rows]
        if ids is None and property_ids is None:
            return tags
        idset, pset = set(ids or ()), set(property_ids or ())
        return [t for t in tags if t.id in idset or t.property_id in pset]

    def _computed_values(self, prop: Property, instances: list[Instance]) -> list[InstanceProperty]:
        rows = {r["id"]: r for r in self.store.execute("SELECT id, caption, sharpness FROM images")}
        out = []
        for inst in instances:
            value = {"relpath": inst.relpath, "sha1": inst.sha1, "ahash": inst.ahash,
                     "folder": inst.folder_id, "width": inst.width, "height": inst.height,
                     "caption": rows[inst.id]["caption"] if inst.id in rows else None,
                     "sharpness": rows[inst.id]["sharpness"] if inst.id in rows else None}[prop.name]
            out.append(InstanceProperty(prop.id, inst.id, value))
        return out

    def instance_values(self, property_ids: Iterable[int] | None = None,
                        instance_ids: Iterable[int] | None = None) -> list[InstanceProperty]:
        """Instance property values matching ``property_ids`` or ``instance_ids`` (OR).

        Computed property ids (< 0) give their value for the given instances
        (all instances when ``instance_ids`` is None).
        """
        pids = None if property_ids is None else list(property_ids)
        iids = None if instance_ids is None else list(instance_ids)
        out: list[InstanceProperty] = []
        computed = [p for p in COMPUTED_PROPERTIES if pids is not None and p.id in pids]
        if computed:
            insts = self.instances(ids=iids) if iids is not None else self.instances()
            for p in computed:
                out += self._computed_values(p, insts)
        rows = self.store.execute("SELECT * FROM plugin_instance_values ORDER BY property_id, instance_id")
        pset, iset = set(pids or ()), set(iids or ())
        for r in rows:
            if (pids is None and iids is None) or r["property_id"] in pset or r["instance_id"] in iset:
                out.append(InstanceProperty(r["property_id"], r["instance_id"], json.loads(r["value"])))
        return out

    def image_values(self, property_ids: Iterable[int] | None = None,
                     sha1s: Iterable[str] | None = None) -> list[ImageProperty]:
        """Image property values matching ``property_ids`` or ``sha1s`` (OR)."""
        rows = self.store.execute("SELECT * FROM plugin_image_values ORDER BY property_id, sha1")
        pset, sset = set(property_ids or ()), set(sha1s or ())
        both_none = property_ids is None and sha1s is None
        return [ImageProperty(r["property_id"], r["sha1"], json.loads(r["value"])) for r in rows
                if both_none or r["property_id"] in pset or r["sha1"] in sset]

    # -- vectors ------------------------------------------------------------------
    def vector_types(self, source: str | None = None) -> list[VectorType]:
        """Vector types (of one plugin when ``source`` is given), by id."""
        rows = self.store.execute("SELECT * FROM plugin_vector_types ORDER BY id")
        return [VectorType(r["id"], r["source"], json.loads(r["params"])) for r in rows
                if source is None or r["source"] == source]

    def add_vector_type(self, vec: VectorType) -> VectorType:
        """Insert (id < 0: new id) or update a vector type; refreshes the owning
        plugin's ``vector_types``. Returns the stored type."""
        params = json.dumps(vec.params, sort_keys=True)
        if vec.id < 0:
            rows = self.store.execute("SELECT id FROM plugin_vector_types WHERE source = ? AND params = ?",
                                      (vec.source, params))
            if rows:
                vec = replace(vec, id=rows[0]["id"])
            else:
                with self.store.transaction() as conn:
                    cur = conn.execute("INSERT INTO plugin_vector_types(source, params) VALUES (?, ?)",
                                       (vec.source, params))
                vec = replace(vec, id=int(cur.lastrowid))
        else:
            self.store.execute("INSERT INTO plugin_vector_types(id, source, params) VALUES (?, ?, ?) "
                               "ON CONFLICT(id) DO UPDATE SET source = excluded.source, "
                               "params = excluded.params", (vec.id, vec.source, params))
        plugin = self.plugins.get(vec.source)
        if plugin is not None:
            plugin.vector_types = self.vector_types(source=vec.source)
        return vec

    def add_vectors(self, vectors: Iterable[Vector]) -> None:
        """Insert or replace vectors (float32, stored flat), in one transaction."""
        rows = [(v.type_id, v.sha1, np.ascontiguousarray(np.asarray(v.data, dtype=np.float32).ravel()).tobytes())
                for v in vectors]
        if rows:
            self.store.executemany("INSERT OR REPLACE INTO plugin_vectors(type_id, sha1, data) VALUES (?, ?, ?)",
                                   rows)

    def vectors(self, type_id: int, sha1s: Iterable[str] | None = None) -> list[Vector]:
        """Vectors of one type (of the given images when ``sha1s`` is given); data is 1-D float32."""
        sql, params = "SELECT sha1, data FROM plugin_vectors WHERE type_id = ?", [type_id]
        if sha1s is not None:
            sha1s = list(sha1s)
            sql += f" AND sha1 IN ({','.join('?' * len(sha1s))})" if sha1s else " AND 0"
            params += sha1s
        return [Vector(type_id, r["sha1"], np.frombuffer(r["data"], dtype=np.float32).copy())
                for r in self.store.execute(sql + " ORDER BY sha1", params)]

    def delete_vectors(self, type_id: int, sha1s: Iterable[str] | None = None) -> int:
        """Delete the vectors of one type (of the given images only when ``sha1s`` is given);
        returns how many were deleted."""
        if sha1s is None:
            n = self.store.execute("SELECT COUNT(*) AS n FROM plugin_vectors WHERE type_id = ?", (type_id,))[0]["n"]
            self.store.execute("DELETE FROM plugin_vectors WHERE type_id = ?", (type_id,))
            return int(n)
        rows = [(type_id, s) for s in sha1s]
        before = self.store.execute("SELECT COUNT(*) AS n FROM plugin_vectors WHERE type_id = ?", (type_id,))[0]["n"]
        self.store.executemany("DELETE FROM plugin_vectors WHERE type_id = ? AND sha1 = ?", rows)
        after = self.store.execute("SELECT COUNT(*) AS n FROM plugin_vectors WHERE type_id = ?", (type_id,))[0]["n"]
        return int(before - after)

    def vector_exist(self, type_id: int, sha1: str) -> bool:
        """True when a vector of ``type_id`` exists for ``sha1``."""
        return bool(self.store.execute("SELECT 1 FROM plugin_vectors WHERE type_id = ? AND sha1 = ?",
                                       (type_id, sha1)))

    # -- commits ------------------------------------------------------------------
    def apply_commit(self, commit: DbCommit) -> DbCommit:
        """Apply ``commit`` in one transaction; returns it with real ids. Raises CommitError."""
        applied, _ = self._apply(commit)
        return applied

    def do(self, commit: DbCommit) -> DbCommit:
        """Apply ``commit`` and push its inverse on the undo stack (clears redo)."""
        applied, inverse = self._apply(commit)
        self.undo_stack.append(inverse)
        self.redo_stack.clear()
        return applied

    def undo(self) -> DbCommit | None:
        """Revert the last :meth:`do` (or redo); returns the commit applied, None if nothing to undo."""
        if not self.undo_stack:
            return None
        applied, inverse = self._apply(self.undo_stack.pop())
        self.redo_stack.append(inverse)
        return applied

    def redo(self) -> DbCommit | None:
        """Re-apply the last undone commit; None if nothing to redo."""
        if not self.redo_stack:
            return None
        applied, inverse = self._apply(self.redo_stack.pop())
        self.undo_stack.append(inverse)
        return applied

    def _apply(self, commit: DbCommit) -> tuple[DbCommit, DbCommit]:
        inv = DbCommit()
        out = DbCommit()
        maps: dict[str, dict[int, int]] = {k: {} for k in ("folder", "instance", "group", "property", "tag")}

        def m(kind: str, value: int | None) -> int | None:
            computed = kind == "property" and value is not None and -len(COMPUTED_PROPERTIES) <= value < 0
            if value is None or value >= 0 or (computed and value not in maps[kind]):
                return value
            if value not in maps[kind]:
                raise CommitError(f"{kind} id {value} is negative but no {kind} with that id is "
                                  f"created in this commit")
            return maps[kind][value]

        with self.store.transaction() as conn:
            def one(sql: str, params: Iterable[Any]) -> Any:
                return conn.execute(sql, tuple(params)).fetchone()

            def upsert_row(table: str, kind: str, obj_id: int, cols: dict[str, Any]) -> tuple[int, bool]:
                """Insert (negative or unknown id) or update; returns (id, whether it existed)."""
                old = one(f"SELECT * FROM {table} WHERE id = ?", (obj_id,)) if obj_id >= 0 else None
                names = list(cols)
                if old is None:
                    if obj_id < 0:
                        cur = conn.execute(f"INSERT INTO {table}({', '.join(names)}) VALUES "
                                           f"({', '.join('?' * len(names))})", [cols[n] for n in names])
                        new_id = int(cur.lastrowid)
                        maps[kind][obj_id] = new_id
                    else:
                        conn.execute(f"INSERT INTO {table}(id, {', '.join(names)}) VALUES "
                                     f"(?, {', '.join('?' * len(names))})", [obj_id] + [cols[n] for n in names])
                        new_id = obj_id
                    return new_id, False
                conn.execute(f"UPDATE {table} SET {', '.join(n + ' = ?' for n in names)} WHERE id = ?",
                             [cols[n] for n in names] + [obj_id])
                return obj_id, True

            # folders (parents may be new folders created earlier in the list)
            for f in sorted(commit.folders, key=lambda f: f.path.count("/")):
                old = one("SELECT * FROM plugin_folders WHERE id = ?", (f.id,)) if f.id >= 0 else None
                rid, was = upsert_row("plugin_folders", "folder", f.id,
                                              {"path": f.path, "name": f.name, "parent": m("folder", f.parent)})
                out.folders.append(replace(f, id=rid, parent=m("folder", f.parent)))
                if was:
                    inv.folders.append(Folder(old["id"], old["path"], old["name"], old["parent"]))
            for g in commit.property_groups:
                old = one("SELECT * FROM plugin_property_groups WHERE id = ?", (g.id,)) if g.id >= 0 else None
                rid, was = upsert_row("plugin_property_groups", "group", g.id, {"name": g.name})
                out.property_groups.append(replace(g, id=rid))
                if was:
                    inv.property_groups.append(PropertyGroup(old["id"], old["name"]))
                else:
                    inv.empty_property_groups.append(rid)
            for p in commit.properties:
                old = one("SELECT * FROM plugin_properties WHERE id = ?", (p.id,)) if p.id >= 0 else None
                cols = {"name": p.name, "type": PropertyType(p.type).value, "mode": PropertyMode(p.mode).value,
                        "property_group_id": m("group", p.property_group_id)}
                rid, was = upsert_row("plugin_properties", "property", p.id, cols)
                out.properties.append(replace(p, id=rid, property_group_id=cols["property_group_id"]))
                if was:
                    inv.properties.append(Property(old["id"], old["name"], PropertyType(old["type"]),
                                                   PropertyMode(old["mode"]), old["property_group_id"]))
                else:
                    inv.empty_properties.append(rid)
            new_tags: list[tuple[Tag, int]] = []
            for t in commit.tags:
                old = one("SELECT * FROM plugin_tags WHERE id = ?", (t.id,)) if t.id >= 0 else None
                pid = m("property", t.property_id)
                if not one("SELECT 1 FROM plugin_properties WHERE id = ?", (pid,)):
                    raise CommitError(f"tag {t.value!r}: property {t.property_id} does not exist")
                rid, was = upsert_row("plugin_tags", "tag", t.id,
                                              {"property_id": pid, "value": t.value, "parents": "[]",
                                               "color": t.color})
                new_tags.append((t, rid))
                if was:
                    inv.tags.append(Tag(old["id"], old["property_id"], old["value"],
                                        json.loads(old["parents"]), old["color"]))
                else:
                    inv.empty_tags.append(rid)
            for t, rid in new_tags:  # parents once every new tag has its id
                parents = [m("tag", p) for p in t.parents or []]
                conn.execute("UPDATE plugin_tags SET parents = ? WHERE id = ?", (json.dumps(parents), rid))
                out.tags.append(replace(t, id=rid, property_id=m("property", t.property_id), parents=parents))
            for inst in commit.instances:
                out.instances.append(self._upsert_instance(conn, inst, maps, m, inv))

            def prop_type(pid: int) -> str | None:
                row = one("SELECT type FROM plugin_properties WHERE id = ?", (pid,))
                if row is None:
                    raise CommitError(f"property {pid} does not exist")
                return row["type"]

            def map_value(pid: int, value: Any) -> Any:
                if prop_type(pid) in _TAG_TYPES and isinstance(value, list):
                    return [m("tag", v) if isinstance(v, int) else v for v in value]
                return value

            for v in commit.instance_values:
                pid, iid = m("property", v.property_id), m("instance", v.instance_id)
                value = map_value(pid, v.value)
                old = one("SELECT value FROM plugin_instance_values WHERE property_id = ? AND instance_id = ?",
                          (pid, iid))
                conn.execute("INSERT INTO plugin_instance_values(property_id, instance_id, value) VALUES (?,?,?) "
                             "ON CONFLICT(property_id, instance_id) DO UPDATE SET value = excluded.value",
                             (pid, iid, json.dumps(value)))
                out.instance_values.append(InstanceProperty(pid, iid, value))
                if old is None:
                    inv.empty_instance_values.append(InstancePropertyKey(pid, iid))
                else:
                    inv.instance_values.append(InstanceProperty(pid, iid, json.loads(old["value"])))
            for v in commit.image_values:
                pid = m("property", v.property_id)
                value = map_value(pid, v.value)
                old = one("SELECT value FROM plugin_image_values WHERE property_id = ? AND sha1 = ?",
                          (pid, v.sha1))
                conn.execute("INSERT INTO plugin_image_values(property_id, sha1, value) VALUES (?,?,?) "
                             "ON CONFLICT(property_id, sha1) DO UPDATE SET value = excluded.value",
                             (pid, v.sha1, json.dumps(value)))
                out.image_values.append(ImageProperty(pid, v.sha1, value))
                if old is None:
                    inv.empty_image_values.append(ImagePropertyKey(pid, v.sha1))
                else:
                    inv.image_values.append(ImageProperty(pid, v.sha1, json.loads(old["value"])))

            # deletions: values, tags, properties (with their tags and values), groups, instances
            for k in commit.empty_instance_values:
                key = InstancePropertyKey(m("property", k.property_id), m("instance", k.instance_id))
                old = one("SELECT value FROM plugin_instance_values WHERE property_id = ? AND instance_id = ?",
                          (key.property_id, key.instance_id))
                if old is not None:
                    conn.execute("DELETE FROM plugin_instance_values WHERE property_id = ? AND instance_id = ?",
                                 (key.property_id, key.instance_id))
                    inv.instance_values.append(InstanceProperty(key.property_id, key.instance_id,
                                                                json.loads(old["value"])))
                out.empty_instance_values.append(key)
            for k in commit.empty_image_values:
                key = ImagePropertyKey(m("property", k.property_id), k.sha1)
                old = one("SELECT value FROM plugin_image_values WHERE property_id = ? AND sha1 = ?",
                          (key.property_id, key.sha1))
                if old is not None:
                    conn.execute("DELETE FROM plugin_image_values WHERE property_id = ? AND sha1 = ?",
                                 (key.property_id, key.sha1))
                    inv.image_values.append(ImageProperty(key.property_id, key.sha1, json.loads(old["value"])))
                out.empty_image_values.append(key)
            for tid in commit.empty_tags:
                tid = m("tag", tid)
                old = one("SELECT * FROM plugin_tags WHERE id = ?", (tid,))
                if old is not None:
                    conn.execute("DELETE FROM plugin_tags WHERE id = ?", (tid,))
                    inv.tags.append(Tag(old["id"], old["property_id"], old["value"],
                                        json.loads(old["parents"]), old["color"]))
                out.empty_tags.append(tid)
            for pid in commit.empty_properties:
                pid = m("property", pid)
                old = one("SELECT * FROM plugin_properties WHERE id = ?", (pid,))
                if old is None:
                    continue
                inv.properties.append(Property(old["id"], old["name"], PropertyType(old["type"]),
                                               PropertyMode(old["mode"]), old["property_group_id"]))
                for t in conn.execute("SELECT * FROM plugin_tags WHERE property_id = ?", (pid,)).fetchall():
                    inv.tags.append(Tag(t["id"], t["property_id"], t["value"], json.loads(t["parents"]), t["color"]))
                for v in conn.execute("SELECT * FROM plugin_instance_values WHERE property_id = ?", (pid,)).fetchall():
                    inv.instance_values.append(InstanceProperty(pid, v["instance_id"], json.loads(v["value"])))
                for v in conn.execute("SELECT * FROM plugin_image_values WHERE property_id = ?", (pid,)).fetchall():
                    inv.image_values.append(ImageProperty(pid, v["sha1"], json.loads(v["value"])))
                for table in ("plugin_tags", "plugin_instance_values", "plugin_image_values"):
                    conn.execute(f"DELETE FROM {table} WHERE property_id = ?", (pid,))
                conn.execute("DELETE FROM plugin_properties WHERE id = ?", (pid,))
                out.empty_properties.append(pid)
            for gid in commit.empty_property_groups:
                gid = m("group", gid)
                old = one("SELECT * FROM plugin_property_groups WHERE id = ?", (gid,))
                if old is not None:
                    conn.execute("DELETE FROM plugin_property_groups WHERE id = ?", (gid,))
                    conn.execute("UPDATE plugin_properties SET property_group_id = NULL WHERE property_group_id = ?",
                                 (gid,))
                    inv.property_groups.append(PropertyGroup(old["id"], old["name"]))
                out.empty_property_groups.append(gid)
            for iid in commit.empty_instances:
                iid = m("instance", iid)
                row = one("SELECT * FROM images WHERE id = ?", (iid,))
                if row is None:
                    continue
                folder_ids = {r["path"]: r["id"] for r in conn.execute("SELECT id, path FROM plugin_folders")}
                inv.instances.append(self._instance_from_row(row, folder_ids))
                for v in conn.execute("SELECT * FROM plugin_instance_values WHERE instance_id = ?", (iid,)).fetchall():
                    inv.instance_values.append(InstanceProperty(v["property_id"], iid, json.loads(v["value"])))
                conn.execute("DELETE FROM plugin_instance_values WHERE instance_id = ?", (iid,))
                conn.execute("DELETE FROM selection WHERE relpath = ?", (row["relpath"],))
                conn.execute("DELETE FROM images WHERE id = ?", (iid,))
                out.empty_instances.append(iid)
        return out, inv

    def _upsert_instance(self, conn: Any, inst: Instance, maps: dict[str, dict[int, int]],
                         m: Callable[[str, int | None], int | None], inv: DbCommit) -> Instance:
        """Create (or restore, for a positive unknown id) an image row from an Instance.

        Instances are the dataset's files: an existing instance cannot be
        changed through a commit (edit the file and scan). A restored row has
        ``mtime_ns = -1`` so the next scan measures the file again.
        """
        if inst.id >= 0 and conn.execute("SELECT 1 FROM images WHERE id = ?", (inst.id,)).fetchone():
            raise CommitError(f"instance {inst.id} exists; instances are the dataset's files and "
                              f"change only through a scan")
        path = os.path.abspath(inst.url)
        root = str(self.base_path)
        if os.path.commonpath([path, root]) != root:
            raise CommitError(f"instance {inst.name!r}: {inst.url} is outside the dataset {root}")
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        try:
            size = os.path.getsize(path)
        except OSError:
            size = -1
        cols = ["relpath", "size", "mtime_ns", "digest", "width", "height", "phash", "scanned_at"]
        vals = [rel, size, -1, inst.sha1, inst.width, inst.height, inst.ahash, time.time()]
        if inst.id >= 0:
            cols, vals = ["id"] + cols, [inst.id] + vals
        cur = conn.execute(f"INSERT INTO images({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", vals)
        new_id = inst.id if inst.id >= 0 else int(cur.lastrowid)
        if inst.id < 0:
            maps["instance"][inst.id] = new_id
        inv.empty_instances.append(new_id)
        return replace(inst, id=new_id, folder_id=m("folder", inst.folder_id), relpath=rel)

    # -- events -------------------------------------------------------------------
    def on_instance_import(self, owner: str, callback: InstanceCallback) -> None:
        """Register ``await callback(instance)`` for every image a scan adds or changes."""
        self._listeners.imports.append((owner, callback))

    def on_folder_delete(self, owner: str, callback: FolderDeleteCallback) -> None:
        """Register ``await callback(DeleteFolderConfirm)`` for scans that found images gone."""
        self._listeners.folder_deletes.append((owner, callback))

    def remove_listeners(self, owner: str) -> None:
        """Drop every event listener of the plugin ``owner``."""
        self._listeners.imports = [x for x in self._listeners.imports if x[0] != owner]
        self._listeners.folder_deletes = [x for x in self._listeners.folder_deletes if x[0] != owner]

    async def _fire(self, listeners: list[tuple[str, Any]], arg: Any, event: str) -> int:
        failures = 0
        for owner, cb in list(listeners):
            try:
                res = cb(arg)
                if asyncio.iscoroutine(res) or isinstance(res, asyncio.Future):
                    await res
            except Exception as exc:
                failures += 1
                from .actions import error_result
                for n in error_result(f"{owner}.{event}", exc).notifs or []:
                    self.notify(n)
        return failures

    async def fire_instance_import(self, instances: Iterable[Instance]) -> int:
        """Call every ``on_instance_import`` listener for each instance; returns the failures
        (each also raised as an error notification)."""
        failures = 0
        for inst in instances:
            failures += await self._fire(self._listeners.imports, inst, "on_instance_import")
        return failures

    async def fire_folder_delete(self, confirm: DeleteFolderConfirm) -> int:
        """Call every ``on_folder_delete`` listener; returns the failures."""
        return await self._fire(self._listeners.folder_deletes, confirm, "on_folder_delete")

    # -- actions ------------------------------------------------------------------
    def actions(self, hook: str | None = None) -> list[FunctionDescription]:
        """Descriptions of every registered action (of one hook when given)."""
        return self.registry.descriptions(hook)

    async def call_action(self, function_id: str, ctx: ActionContext | None = None,
                          **inputs: Any) -> ActionResult:
        """Run an action by id; ``inputs`` are added to ``ctx.ui_inputs``.
        Errors of the action become an error notification in the result."""
        ctx = ctx or ActionContext()
        if inputs:
            ctx = replace(ctx, ui_inputs={**ctx.ui_inputs, **inputs})
        return await self.registry.call(function_id, ctx, vector_types=self.vector_types)


__all__ = ["COMPUTED_PROPERTIES", "CommitError", "Project"]
