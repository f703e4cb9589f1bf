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
The tables are declared in :mod:`.schema`; commits are written by
:class:`~fluxgym_coach.plugins.commit.CommitApplier`.
"""

import asyncio
import itertools
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..dataset import Dataset
from ..store import Store
from . import schema as _schema  # noqa: F401  (registers the "plugins" store component)
from .actions import ActionRegistry
from .commit import COMPUTED_PROPERTIES, CommitApplier, CommitError, folder_of, instance_from_row
from .models import (ActionContext, ActionResult, DbCommit, DeleteFolderConfirm, Folder,
                     FolderDeleteCallback, FunctionDescription, ImageProperty, Instance,
                     InstanceCallback, InstanceProperty, Notif, NotifType, Property, PropertyGroup,
                     PropertyMode, PropertyType, Tag, Vector, VectorType)
from .tasks import TaskError, TaskQueue


@dataclass
class _Listeners:
    imports: list[tuple[str, InstanceCallback]] = field(default_factory=list)
    folder_deletes: list[tuple[str, FolderDeleteCallback]] = field(default_factory=list)
    notifs: list[Callable[[Notif], None]] = field(default_factory=list)


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
            path = folder_of(r["relpath"])
            while path not in wanted:
                wanted.add(path)
                path = folder_of(path)
        missing = sorted(wanted - set(known), key=lambda p: (p.count("/"), p))
        if missing:
            with self.store.transaction() as conn:
                for path in missing:
                    parent = None if path == "" else known.get(folder_of(path))
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
        return instance_from_row(row, folder_ids, self.base_path)

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
        """Write ``commit`` in one transaction; returns ``(applied, inverse)`` (see :mod:`.commit`)."""
        with self.store.transaction() as conn:
            return CommitApplier(conn, self.base_path).apply(commit)

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
