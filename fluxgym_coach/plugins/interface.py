"""``PluginProjectInterface``: what a plugin may do with the project (seed 000, "Données").

One interface per plugin, bound to its name (the ``source`` of the vector
types it creates and the owner of its event listeners). Reads and writes are
``async`` like Panoptic's; the ``create_*`` helpers are synchronous and only
build objects with fresh negative ids for a :class:`DbCommit`.
"""

import asyncio
from collections.abc import Callable
from typing import Any

from .models import (DbCommit, Folder, FolderDeleteCallback, ImageProperty, Instance,
                     InstanceCallback, InstanceProperty, Property, PropertyGroup, PropertyMode,
                     PropertyType, Tag, Vector, VectorType)
from .project import Project
from .tasks import Task


class PluginProjectInterface:
    """The plugin's handle on a :class:`~fluxgym_coach.plugins.project.Project`.

    ``base_path`` is the dataset folder. Every method documented in seeds
    000/001 is here with the same name and arguments.
    """

    def __init__(self, project: Project, plugin_name: str):
        self._project = project
        self._name = plugin_name
        self.base_path = project.base_path

    # -- reads ------------------------------------------------------------------
    async def get_folders(self) -> list[Folder]:
        """Folders of the dataset that hold images (root included, path ``""``)."""
        return self._project.folders()

    async def get_instances(self, ids: list[int] | None = None, sha1s: list[str] | None = None) -> list[Instance]:
        """Instances by id or by sha1 (digest), OR-ed; all of them with no filter."""
        return self._project.instances(ids=ids, sha1s=sha1s)

    async def get_properties(self, ids: list[int] | None = None, computed: bool = False) -> list[Property]:
        """Properties (with the computed, read-only ones when ``computed``)."""
        return self._project.properties(ids=ids, computed=computed)

    async def get_property_groups(self) -> list[PropertyGroup]:
        """Property groups."""
        return self._project.property_groups()

    async def get_tags(self, ids: list[int] | None = None, property_ids: list[int] | None = None) -> list[Tag]:
        """Tags by id or by property, OR-ed; all with no filter."""
        return self._project.tags(ids=ids, property_ids=property_ids)

    async def get_instance_property_values(self, property_ids: list[int] | None = None,
                                           instance_ids: list[int] | None = None) -> list[InstanceProperty]:
        """Values of instance-mode properties, by property or by instance (OR)."""
        return self._project.instance_values(property_ids=property_ids, instance_ids=instance_ids)

    async def get_image_property_values(self, property_ids: list[int] | None = None,
                                        sha1s: list[str] | None = None) -> list[ImageProperty]:
        """Values of sha1-mode properties, by property or by sha1 (OR)."""
        return self._project.image_values(property_ids=property_ids, sha1s=sha1s)

    async def get_vectors(self, type_id: int, sha1s: list[str] | None = None) -> list[Vector]:
        """Vectors of a type, optionally of some images only; ``data`` is 1-D float32."""
        return await asyncio.to_thread(self._project.vectors, type_id, sha1s)

    async def vector_exist(self, type_id: int, sha1: str) -> bool:
        """True when the image ``sha1`` has a vector of ``type_id``."""
        return self._project.vector_exist(type_id, sha1)

    async def get_vector_types(self, source: str | None = None) -> list[VectorType]:
        """Vector types, of one plugin when ``source`` is given."""
        return self._project.vector_types(source=source)

    # -- object helpers (negative ids) --------------------------------------------
    def create_instance(self, folder_id: int, name: str, extension: str, sha1: str, url: str,
                        width: int, height: int, ahash: str) -> Instance:
        """A new :class:`Instance` with a negative id, for a commit."""
        return Instance(self._project.fake_id(), folder_id, name, extension, sha1, url, height, width, ahash)

    def create_property(self, name: str, type_: PropertyType, mode: PropertyMode = PropertyMode.id) -> Property:
        """A new :class:`Property` with a negative id, for a commit."""
        return Property(self._project.fake_id(), name, PropertyType(type_), PropertyMode(mode))

    def create_property_group(self, name: str) -> PropertyGroup:
        """A new :class:`PropertyGroup` with a negative id, for a commit."""
        return PropertyGroup(self._project.fake_id(), name)

    def create_tag(self, property_id: int, value: str, parent_ids: list[int] | None = None,
                   color: int = -1) -> Tag:
        """A new :class:`Tag` with a negative id, for a commit (parents may be new tags)."""
        return Tag(self._project.fake_id(), property_id, value, list(parent_ids or []), color)

    def create_vector_type(self, source: str | dict[str, Any], params: dict[str, Any] | None = None) -> VectorType:
        """A new :class:`VectorType` with a negative id, for :meth:`add_vector_type`.

        Both forms of the seed work: ``create_vector_type(source, params)`` and
        ``create_vector_type(params)`` (the source is then this plugin).
        """
        if isinstance(source, dict):
            source, params = self._name, source
        return VectorType(self._project.fake_id(), source, dict(params or {}))

    # -- writes -------------------------------------------------------------------
    async def apply_commit(self, commit: DbCommit) -> DbCommit:
        """Apply a commit (not undoable); returns it with the real ids."""
        return self._project.apply_commit(commit)

    async def do(self, commit: DbCommit) -> DbCommit:
        """Apply a commit and make it undoable."""
        return self._project.do(commit)

    async def undo(self) -> DbCommit | None:
        """Revert the last undoable commit; None when there is none."""
        return self._project.undo()

    async def redo(self) -> DbCommit | None:
        """Re-apply the last undone commit; None when there is none."""
        return self._project.redo()

    async def add_vector_type(self, vec: VectorType) -> VectorType:
        """Store a vector type (new id when negative); updates ``plugin.vector_types``."""
        return self._project.add_vector_type(vec)

    async def add_vector(self, vector: Vector) -> Vector:
        """Store (replace) one vector."""
        self._project.add_vectors([vector])
        return vector

    async def add_vectors(self, vectors: list[Vector]) -> None:
        """Store many vectors in one transaction (faster than :meth:`add_vector` in a loop)."""
        await asyncio.to_thread(self._project.add_vectors, vectors)

    async def delete_vectors(self, type_id: int, sha1s: list[str] | None = None) -> int:
        """Delete vectors of a type (of some images only); returns how many. Not in the seed:
        what PanopticML does by rebuilding its index after a folder is deleted."""
        return await asyncio.to_thread(self._project.delete_vectors, type_id, sha1s)

    # -- work ---------------------------------------------------------------------
    async def run_async(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking ``function(*args)`` in the project's thread pool and await it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._project.task_queue.executor, function, *args)

    def add_task(self, task: Task) -> Task:
        """Queue a :class:`Task`; its progress shows per key, its errors as notifications."""
        return self._project.task_queue.add_task(task)

    # -- events -------------------------------------------------------------------
    def on_instance_import(self, callback: InstanceCallback) -> None:
        """``await callback(instance)`` for each image a scan adds or changes."""
        self._project.on_instance_import(self._name, callback)

    def on_folder_delete(self, callback: FolderDeleteCallback) -> None:
        """``await callback(DeleteFolderConfirm)`` when a scan finds images gone."""
        self._project.on_folder_delete(self._name, callback)


__all__ = ["PluginProjectInterface"]
