"""Data model of the plugin API, with the names of Panoptic's plugin system (seeds 000/001).

Everything here is a plain dataclass or enum, so a plugin written against
Panoptic 0.7's documentation reads the same objects. Mapping to fluxgym-coach:

* an :class:`Instance` is one image of the dataset (a row of the store's
  ``images`` table); ``Instance.id`` is that row's id, ``Instance.sha1`` holds
  the image's identity, the **xxh3-128 digest of the file's bytes** (32 hex
  digits; the field keeps Panoptic's name), ``Instance.url`` is the absolute
  path of the file and ``Instance.ahash`` its 64-bit perceptual hash (16 hex).
* a :class:`Folder` is a folder of the dataset that holds images.
* properties, tags, property values, vector types and vectors live in the
  dataset's store, in the tables of the ``plugins`` schema component.

No ``from __future__ import annotations`` here: annotations stay real types so
runtime introspection (``typing.get_type_hints``, ``dataclasses.fields``) works.
"""

import datetime as _dt
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any, Awaitable, Callable

import numpy as np

#: Where an action appears in a front end (seed 000, "hooks").
HOOKS = ("vector_type", "vector", "similar", "group", "execute")


class PropertyId(int):
    """Annotate an action parameter with this to get a property selector in the form."""


class OwnVectorType:
    """Annotate an action parameter with this to get a selector of the plugin's own
    vector types; the action receives a :class:`VectorType`."""


@dataclass
class ActionContext:
    """The context an action is called in: the selected images (``instance_ids``,
    None = the whole dataset), the name of the group it was called on, and the
    raw form inputs (``ui_inputs``: parameter name -> value)."""

    instance_ids: list[int] | None = None
    group_name: str | None = None
    ui_inputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScoreList:
    """Scores of the items of a :class:`Group`, in the order of its ``ids``/``sha1s``.
    ``min``/``max`` bound the values (for filters); ``max_is_best`` False means
    lower is better (distances)."""

    values: list[float]
    min: float
    max: float
    description: str = ""
    max_is_best: bool = True


@dataclass
class Score:
    """Score of a whole :class:`Group` (same fields as :class:`ScoreList`, one value)."""

    value: float
    min: float
    max: float
    description: str = ""
    max_is_best: bool = True


@dataclass
class Group:
    """A set of images to show: fill ``ids`` (instances) **or** ``sha1s`` (images),
    not both. ``scores`` scores each item, ``score`` the group; ``name`` is shown
    (a default name is given when None)."""

    ids: list[int] | None = None
    sha1s: list[str] | None = None
    scores: ScoreList | None = None
    score: Score | None = None
    name: str | None = None


class NotifType(Enum):
    """Kind of a notification, for filtering and colour."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass
class NotifFunction:
    """An action suggested by a notification: ``function`` is a
    :attr:`FunctionDescription.id`, ``context`` the context to call it with,
    ``message`` the label of the suggestion."""

    function: str
    context: ActionContext = field(default_factory=ActionContext)
    message: str = ""


@dataclass
class Notif:
    """A notification for the user: ``type``, ``name`` (title), ``message``,
    ``data`` (any JSON-able data, shown as JSON) and suggested ``functions``."""

    type: NotifType
    name: str | None = None
    message: str | None = None
    data: Any = None
    functions: list[NotifFunction] | None = None


@dataclass
class ActionResult:
    """What an action returns: ``groups`` to show, ``notifs`` to raise, and a
    single ``value`` (any JSON-able result)."""

    groups: list[Group] | None = None
    notifs: list[Notif] | None = None
    value: Any = None

    @property
    def has_error(self) -> bool:
        """True when one of the notifications is an error."""
        return any(n.type is NotifType.ERROR for n in self.notifs or [])


@dataclass
class ParamDescription:
    """One input of an action, as a form shows it.

    ``type`` is one of ``int``, ``float``, ``str``, ``bool``, ``path``,
    ``property``, ``enum``, ``vector_type``, ``own_vector_type``;
    ``possible_values`` lists the enum values; ``default_value`` comes from the
    signature; ``description`` from the ``@name:`` (or ``:param name:``) line of
    the docstring.
    """

    name: str
    type: str
    id: str | None = None
    label: str | None = None
    description: str | None = None
    default_value: Any = None
    possible_values: list[Any] | None = None
    required: bool = False


@dataclass
class FunctionDescription:
    """Everything a front end needs to offer an action: ``id`` (``"<plugin>.<function>"``),
    ``name`` (the function name), ``label``, ``description`` (docstring before the
    first ``@``), ``params`` and ``hooks`` (see :data:`HOOKS`)."""

    id: str
    name: str
    label: str | None = None
    description: str | None = None
    params: list[ParamDescription] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)

    @property
    def plugin(self) -> str:
        """The plugin part of the id."""
        return self.id.split(".", 1)[0]


@dataclass
class Folder:
    """A folder of the dataset: ``path`` relative to the dataset root (``""`` is the
    root), ``name`` its last component, ``parent`` the parent folder's id."""

    id: int
    path: str
    name: str
    parent: int | None = None


@dataclass
class Instance:
    """One image of the dataset (see the module docstring for the field mapping).
    ``properties`` maps property id -> value when loaded with values; ``relpath``
    is the path relative to the dataset root (forward slashes)."""

    id: int
    folder_id: int | None
    name: str
    extension: str
    sha1: str | None
    url: str
    height: int | None = None
    width: int | None = None
    ahash: str | None = None
    properties: dict[int, Any] = field(default_factory=dict)
    relpath: str = ""


class PropertyType(Enum):
    """Value type of a property (Panoptic's names)."""

    string = "string"
    number = "number"
    tag = "tag"
    multi_tags = "multi_tags"
    url = "url"
    date = "date"
    path = "path"
    color = "color"
    checkbox = "checkbox"


class PropertyMode(Enum):
    """Whether a property value belongs to an instance (``id``) or to every copy
    of the same image (``sha1``)."""

    id = "id"
    sha1 = "sha1"


@dataclass
class PropertyGroup:
    """A named group of properties."""

    id: int
    name: str


@dataclass
class Property:
    """A user-visible property: ``type`` (:class:`PropertyType`), ``mode``
    (:class:`PropertyMode`), optional ``property_group_id``."""

    id: int
    name: str
    type: PropertyType
    mode: PropertyMode = PropertyMode.id
    property_group_id: int | None = None


@dataclass
class Tag:
    """A tag of a tag property; ``parents`` are tag ids; ``color`` an index (-1 = none)."""

    id: int
    property_id: int
    value: str
    parents: list[int] = field(default_factory=list)
    color: int = -1


@dataclass
class InstanceProperty:
    """The value of a property for one instance (``mode == id``)."""

    property_id: int
    instance_id: int
    value: Any


@dataclass
class ImageProperty:
    """The value of a property for every instance with this ``sha1`` (``mode == sha1``)."""

    property_id: int
    sha1: str
    value: Any


@dataclass(frozen=True)
class InstancePropertyKey:
    """Key of an :class:`InstanceProperty` to delete."""

    property_id: int
    instance_id: int


@dataclass(frozen=True)
class ImagePropertyKey:
    """Key of an :class:`ImageProperty` to delete."""

    property_id: int
    sha1: str


PropertyValue = InstanceProperty | ImageProperty


@dataclass
class VectorType:
    """A kind of vector: ``source`` is the plugin that made it, ``params`` what
    identifies the model (e.g. ``{"model": "phash64"}``)."""

    id: int
    source: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Vector:
    """One vector of an image: ``type_id``, ``sha1`` (the image digest) and
    ``data``, a float32 array (stored flat; read back as 1-D)."""

    type_id: int
    sha1: str
    data: np.ndarray


@dataclass
class DeleteFolderConfirm:
    """Sent to ``on_folder_delete`` listeners after a scan found images gone:
    ``deleted_folders`` are folder ids with no image left, ``deleted_instances``
    the ids the removed images had, and ``relpaths`` their paths."""

    deleted_folders: list[int] = field(default_factory=list)
    deleted_instances: list[int] = field(default_factory=list)
    relpaths: list[str] = field(default_factory=list)


@dataclass
class DbCommit:
    """A batch of writes, applied with ``apply_commit`` or ``do`` (undoable).

    Objects with a negative id are created; negative ids may be referenced by
    other objects of the same commit (a value of a new property on a new tag)
    and are replaced by real ids on insert. ``empty_*`` lists delete.
    """

    empty_instances: list[int] = field(default_factory=list)
    empty_property_groups: list[int] = field(default_factory=list)
    empty_properties: list[int] = field(default_factory=list)
    empty_tags: list[int] = field(default_factory=list)
    empty_instance_values: list[InstancePropertyKey] = field(default_factory=list)
    empty_image_values: list[ImagePropertyKey] = field(default_factory=list)

    folders: list[Folder] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)
    property_groups: list[PropertyGroup] = field(default_factory=list)
    properties: list[Property] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    instance_values: list[InstanceProperty] = field(default_factory=list)
    image_values: list[ImageProperty] = field(default_factory=list)

    timestamp: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc))

    def is_empty(self) -> bool:
        """True when the commit changes nothing."""
        return not any(getattr(self, f.name) for f in fields(self) if f.name != "timestamp")


InstanceCallback = Callable[[Instance], Awaitable[None]]
FolderDeleteCallback = Callable[[DeleteFolderConfirm], Awaitable[None]]


def to_jsonable(obj: Any) -> Any:
    """Convert results (dataclasses, enums, numpy arrays and scalars) to JSON-able data."""
    if isinstance(obj, Enum):
        return obj.value
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, _dt.datetime):
        return obj.isoformat()
    return obj


__all__ = [
    "HOOKS", "ActionContext", "ActionResult", "DbCommit", "DeleteFolderConfirm", "Folder",
    "FunctionDescription", "Group", "ImageProperty", "ImagePropertyKey", "Instance",
    "InstanceProperty", "InstancePropertyKey", "Notif", "NotifFunction", "NotifType",
    "OwnVectorType", "ParamDescription", "Property", "PropertyGroup", "PropertyId",
    "PropertyMode", "PropertyType", "PropertyValue", "Score", "ScoreList", "Tag", "Vector",
    "VectorType", "to_jsonable",
]
