"""Applying a :class:`~fluxgym_coach.plugins.models.DbCommit` to the ``plugins`` tables.

:class:`CommitApplier` runs inside one store transaction (opened by
:meth:`Project._apply <fluxgym_coach.plugins.project.Project.do>`): it writes
the commit's objects in a fixed order (folders, property groups, properties,
tags, instances, values, then the deletions) and builds two commits on the
way: the commit as applied (negative ids replaced by real ones) and its
inverse (what undoes it). Any :class:`CommitError` rolls the transaction back.

Ids: objects created with a negative id get the next free id of their table
(SQLite's ``max(id) + 1``); every reference inside the commit (tag property,
tag parents, value property and instance, tag ids inside tag values, folder
parents, instance folder) is rewritten to the real id.
"""

import json
import os
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import FluxgymCoachError
from .models import (DbCommit, Folder, ImageProperty, ImagePropertyKey, Instance, InstanceProperty,
                     InstancePropertyKey, Property, PropertyGroup, PropertyMode, PropertyType, Tag)

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


def folder_of(relpath: str) -> str:
    """The folder part of a dataset relpath (``""`` for the root)."""
    return relpath.rsplit("/", 1)[0] if "/" in relpath else ""


def instance_from_row(row: Any, folder_ids: dict[str, int], base_path: Path) -> Instance:
    """An :class:`Instance` from a store ``images`` row (width/height swapped for EXIF
    orientations 5-8, which turn the picture a quarter); ``folder_ids`` maps folder path -> id."""
    rel = row["relpath"]
    name = rel.rsplit("/", 1)[-1]
    stem, ext = os.path.splitext(name)
    w, h = row["width"], row["height"]
    if row["orientation"] in (5, 6, 7, 8):
        w, h = h, w
    return Instance(id=row["id"], folder_id=folder_ids.get(folder_of(rel)), name=stem,
                    extension=ext.lstrip(".").lower(), sha1=row["digest"],
                    url=str(base_path / rel), height=h, width=w, ahash=row["phash"],
                    relpath=rel)


def _tag_of(row: Any) -> Tag:
    return Tag(row["id"], row["property_id"], row["value"], json.loads(row["parents"]), row["color"])


def _property_of(row: Any) -> Property:
    return Property(row["id"], row["name"], PropertyType(row["type"]), PropertyMode(row["mode"]),
                    row["property_group_id"])


class CommitApplier:
    """Writes one commit through the open connection ``conn`` (see the module docstring).

    ``base_path`` is the dataset root (instances must lie inside it).
    :meth:`apply` returns ``(applied, inverse)``; raises :class:`CommitError`.
    """

    def __init__(self, conn: Any, base_path: Path):
        self.conn = conn
        self.base_path = base_path
        self.out = DbCommit()
        self.inv = DbCommit()
        self.maps: dict[str, dict[int, int]] = {k: {} for k in ("folder", "instance", "group", "property", "tag")}

    # -- helpers -------------------------------------------------------------------
    def m(self, kind: str, value: int | None) -> int | None:
        """The real id of ``value`` (negative ids created in this commit are mapped;
        computed property ids and real ids pass through)."""
        computed = kind == "property" and value is not None and -len(COMPUTED_PROPERTIES) <= value < 0
        if value is None or value >= 0 or (computed and value not in self.maps[kind]):
            return value
        if value not in self.maps[kind]:
            raise CommitError(f"{kind} id {value} is negative but no {kind} with that id is "
                              f"created in this commit")
        return self.maps[kind][value]

    def one(self, sql: str, params: Iterable[Any]) -> Any:
        """The first row of ``sql`` (None when there is none)."""
        return self.conn.execute(sql, tuple(params)).fetchone()

    def upsert_row(self, table: str, kind: str, obj_id: int, cols: dict[str, Any]) -> tuple[int, bool]:
        """Insert (negative or unknown id) or update; returns (id, whether it existed)."""
        conn = self.conn
        old = self.one(f"SELECT * FROM {table} WHERE id = ?", (obj_id,)) if obj_id >= 0 else None
        names = list(cols)
        if old is None:
            if obj_id < 0:
                cur = conn.execute(f"INSERT INTO {table}({', '.join(names)}) VALUES "
                                   f"({', '.join('?' * len(names))})", [cols[n] for n in names])
                new_id = int(cur.lastrowid)
                self.maps[kind][obj_id] = new_id
            else:
                conn.execute(f"INSERT INTO {table}(id, {', '.join(names)}) VALUES "
                             f"(?, {', '.join('?' * len(names))})", [obj_id] + [cols[n] for n in names])
                new_id = obj_id
            return new_id, False
        conn.execute(f"UPDATE {table} SET {', '.join(n + ' = ?' for n in names)} WHERE id = ?",
                     [cols[n] for n in names] + [obj_id])
        return obj_id, True

    def _old(self, table: str, obj_id: int) -> Any:
        return self.one(f"SELECT * FROM {table} WHERE id = ?", (obj_id,)) if obj_id >= 0 else None

    # -- the steps, in order ---------------------------------------------------------
    def apply(self, commit: DbCommit) -> tuple[DbCommit, DbCommit]:
        """Write ``commit``; returns ``(applied, inverse)``."""
        self.write_folders(commit.folders)
        self.write_property_groups(commit.property_groups)
        self.write_properties(commit.properties)
        self.write_tags(commit.tags)
        for inst in commit.instances:
            self.out.instances.append(self.upsert_instance(inst))
        self.write_instance_values(commit.instance_values)
        self.write_image_values(commit.image_values)
        # deletions: values, tags, properties (with their tags and values), groups, instances
        self.delete_instance_values(commit.empty_instance_values)
        self.delete_image_values(commit.empty_image_values)
        self.delete_tags(commit.empty_tags)
        self.delete_properties(commit.empty_properties)
        self.delete_property_groups(commit.empty_property_groups)
        self.delete_instances(commit.empty_instances)
        return self.out, self.inv

    def write_folders(self, folders: list[Folder]) -> None:
        """Folders, shallowest first (parents may be new folders created earlier in the list)."""
        for f in sorted(folders, key=lambda f: f.path.count("/")):
            old = self._old("plugin_folders", f.id)
            rid, was = self.upsert_row("plugin_folders", "folder", f.id,
                                       {"path": f.path, "name": f.name, "parent": self.m("folder", f.parent)})
            self.out.folders.append(replace(f, id=rid, parent=self.m("folder", f.parent)))
            if was:
                self.inv.folders.append(Folder(old["id"], old["path"], old["name"], old["parent"]))

    def write_property_groups(self, groups: list[PropertyGroup]) -> None:
        """Property groups (new or renamed)."""
        for g in groups:
            old = self._old("plugin_property_groups", g.id)
            rid, was = self.upsert_row("plugin_property_groups", "group", g.id, {"name": g.name})
            self.out.property_groups.append(replace(g, id=rid))
            if was:
                self.inv.property_groups.append(PropertyGroup(old["id"], old["name"]))
            else:
                self.inv.empty_property_groups.append(rid)

    def write_properties(self, properties: list[Property]) -> None:
        """Properties (their group may be new in this commit)."""
        for p in properties:
            old = self._old("plugin_properties", p.id)
            cols = {"name": p.name, "type": PropertyType(p.type).value, "mode": PropertyMode(p.mode).value,
                    "property_group_id": self.m("group", p.property_group_id)}
            rid, was = self.upsert_row("plugin_properties", "property", p.id, cols)
            self.out.properties.append(replace(p, id=rid, property_group_id=cols["property_group_id"]))
            if was:
                self.inv.properties.append(_property_of(old))
            else:
                self.inv.empty_properties.append(rid)

    def write_tags(self, tags: list[Tag]) -> None:
        """Tags, then their parents once every new tag has its id."""
        new_tags: list[tuple[Tag, int]] = []
        for t in tags:
            old = self._old("plugin_tags", t.id)
            pid = self.m("property", t.property_id)
            if not self.one("SELECT 1 FROM plugin_properties WHERE id = ?", (pid,)):
                raise CommitError(f"tag {t.value!r}: property {t.property_id} does not exist")
            rid, was = self.upsert_row("plugin_tags", "tag", t.id,
                                       {"property_id": pid, "value": t.value, "parents": "[]", "color": t.color})
            new_tags.append((t, rid))
            if was:
                self.inv.tags.append(_tag_of(old))
            else:
                self.inv.empty_tags.append(rid)
        for t, rid in new_tags:
            parents = [self.m("tag", p) for p in t.parents or []]
            self.conn.execute("UPDATE plugin_tags SET parents = ? WHERE id = ?", (json.dumps(parents), rid))
            self.out.tags.append(replace(t, id=rid, property_id=self.m("property", t.property_id),
                                         parents=parents))

    def upsert_instance(self, inst: Instance) -> Instance:
        """Create (or restore, for a positive unknown id) an image row from an Instance.

        Instances are the dataset's files: an existing instance cannot be
        changed through a commit (edit the file and scan). A restored row has
        ``mtime_ns = -1`` so the next scan measures the file again.
        """
        conn = self.conn
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
            self.maps["instance"][inst.id] = new_id
        self.inv.empty_instances.append(new_id)
        return replace(inst, id=new_id, folder_id=self.m("folder", inst.folder_id), relpath=rel)

    def _map_value(self, pid: int, value: Any) -> Any:
        """Tag ids inside a tag-typed value mapped to real ids; raises when the property is unknown."""
        row = self.one("SELECT type FROM plugin_properties WHERE id = ?", (pid,))
        if row is None:
            raise CommitError(f"property {pid} does not exist")
        if row["type"] in _TAG_TYPES and isinstance(value, list):
            return [self.m("tag", v) if isinstance(v, int) else v for v in value]
        return value

    def write_instance_values(self, values: list[InstanceProperty]) -> None:
        """Instance property values (insert or replace)."""
        for v in values:
            pid, iid = self.m("property", v.property_id), self.m("instance", v.instance_id)
            value = self._map_value(pid, v.value)
            old = self.one("SELECT value FROM plugin_instance_values WHERE property_id = ? AND instance_id = ?",
                           (pid, iid))
            self.conn.execute("INSERT INTO plugin_instance_values(property_id, instance_id, value) VALUES (?,?,?) "
                              "ON CONFLICT(property_id, instance_id) DO UPDATE SET value = excluded.value",
                              (pid, iid, json.dumps(value)))
            self.out.instance_values.append(InstanceProperty(pid, iid, value))
            if old is None:
                self.inv.empty_instance_values.append(InstancePropertyKey(pid, iid))
            else:
                self.inv.instance_values.append(InstanceProperty(pid, iid, json.loads(old["value"])))

    def write_image_values(self, values: list[ImageProperty]) -> None:
        """Image (digest-keyed) property values (insert or replace)."""
        for v in values:
            pid = self.m("property", v.property_id)
            value = self._map_value(pid, v.value)
            old = self.one("SELECT value FROM plugin_image_values WHERE property_id = ? AND sha1 = ?",
                           (pid, v.sha1))
            self.conn.execute("INSERT INTO plugin_image_values(property_id, sha1, value) VALUES (?,?,?) "
                              "ON CONFLICT(property_id, sha1) DO UPDATE SET value = excluded.value",
                              (pid, v.sha1, json.dumps(value)))
            self.out.image_values.append(ImageProperty(pid, v.sha1, value))
            if old is None:
                self.inv.empty_image_values.append(ImagePropertyKey(pid, v.sha1))
            else:
                self.inv.image_values.append(ImageProperty(pid, v.sha1, json.loads(old["value"])))

    def delete_instance_values(self, keys: list[InstancePropertyKey]) -> None:
        """Remove instance values (a missing one is no error)."""
        for k in keys:
            key = InstancePropertyKey(self.m("property", k.property_id), self.m("instance", k.instance_id))
            old = self.one("SELECT value FROM plugin_instance_values WHERE property_id = ? AND instance_id = ?",
                           (key.property_id, key.instance_id))
            if old is not None:
                self.conn.execute("DELETE FROM plugin_instance_values WHERE property_id = ? AND instance_id = ?",
                                  (key.property_id, key.instance_id))
                self.inv.instance_values.append(InstanceProperty(key.property_id, key.instance_id,
                                                                 json.loads(old["value"])))
            self.out.empty_instance_values.append(key)

    def delete_image_values(self, keys: list[ImagePropertyKey]) -> None:
        """Remove image values (a missing one is no error)."""
        for k in keys:
            key = ImagePropertyKey(self.m("property", k.property_id), k.sha1)
            old = self.one("SELECT value FROM plugin_image_values WHERE property_id = ? AND sha1 = ?",
                           (key.property_id, key.sha1))
            if old is not None:
                self.conn.execute("DELETE FROM plugin_image_values WHERE property_id = ? AND sha1 = ?",
                                  (key.property_id, key.sha1))
                self.inv.image_values.append(ImageProperty(key.property_id, key.sha1, json.loads(old["value"])))
            self.out.empty_image_values.append(key)

    def delete_tags(self, tag_ids: list[int]) -> None:
        """Remove tags (a missing one is no error)."""
        for tid in tag_ids:
            tid = self.m("tag", tid)
            old = self.one("SELECT * FROM plugin_tags WHERE id = ?", (tid,))
            if old is not None:
                self.conn.execute("DELETE FROM plugin_tags WHERE id = ?", (tid,))
                self.inv.tags.append(_tag_of(old))
            self.out.empty_tags.append(tid)

    def delete_properties(self, property_ids: list[int]) -> None:
        """Remove properties with their tags and values (unknown ids are skipped)."""
        conn, inv = self.conn, self.inv
        for pid in property_ids:
            pid = self.m("property", pid)
            old = self.one("SELECT * FROM plugin_properties WHERE id = ?", (pid,))
            if old is None:
                continue
            inv.properties.append(_property_of(old))
            for t in conn.execute("SELECT * FROM plugin_tags WHERE property_id = ?", (pid,)).fetchall():
                inv.tags.append(_tag_of(t))
            for v in conn.execute("SELECT * FROM plugin_instance_values WHERE property_id = ?", (pid,)).fetchall():
                inv.instance_values.append(InstanceProperty(pid, v["instance_id"], json.loads(v["value"])))
            for v in conn.execute("SELECT * FROM plugin_image_values WHERE property_id = ?", (pid,)).fetchall():
                inv.image_values.append(ImageProperty(pid, v["sha1"], json.loads(v["value"])))
            for table in ("plugin_tags", "plugin_instance_values", "plugin_image_values"):
                conn.execute(f"DELETE FROM {table} WHERE property_id = ?", (pid,))
            conn.execute("DELETE FROM plugin_properties WHERE id = ?", (pid,))
            self.out.empty_properties.append(pid)

    def delete_property_groups(self, group_ids: list[int]) -> None:
        """Remove property groups; their properties stay, ungrouped."""
        for gid in group_ids:
            gid = self.m("group", gid)
            old = self.one("SELECT * FROM plugin_property_groups WHERE id = ?", (gid,))
            if old is not None:
                self.conn.execute("DELETE FROM plugin_property_groups WHERE id = ?", (gid,))
                self.conn.execute("UPDATE plugin_properties SET property_group_id = NULL "
                                  "WHERE property_group_id = ?", (gid,))
                self.inv.property_groups.append(PropertyGroup(old["id"], old["name"]))
            self.out.empty_property_groups.append(gid)

    def delete_instances(self, instance_ids: list[int]) -> None:
        """Remove image rows with their instance values and selection (unknown ids are skipped)."""
        conn = self.conn
        for iid in instance_ids:
            iid = self.m("instance", iid)
            row = self.one("SELECT * FROM images WHERE id = ?", (iid,))
            if row is None:
                continue
            folder_ids = {r["path"]: r["id"] for r in conn.execute("SELECT id, path FROM plugin_folders")}
            self.inv.instances.append(instance_from_row(row, folder_ids, self.base_path))
            for v in conn.execute("SELECT * FROM plugin_instance_values WHERE instance_id = ?", (iid,)).fetchall():
                self.inv.instance_values.append(InstanceProperty(v["property_id"], iid, json.loads(v["value"])))
            conn.execute("DELETE FROM plugin_instance_values WHERE instance_id = ?", (iid,))
            conn.execute("DELETE FROM selection WHERE relpath = ?", (row["relpath"],))
            conn.execute("DELETE FROM images WHERE id = ?", (iid,))
            self.out.empty_instances.append(iid)


__all__ = ["COMPUTED_PROPERTIES", "CommitApplier", "CommitError", "folder_of", "instance_from_row"]
