"""Panoptic-style plugin system of fluxgym-coach (seeds 000 and 001; docs/plugins.md).

A plugin subclasses :class:`APlugin`, registers async actions with
``add_action_easy(function, hooks)`` and works on the dataset through
``self.project`` (a :class:`PluginProjectInterface`). Front ends list actions
with :meth:`Project.actions`, run them with :meth:`Project.call_action` (an
action that raises gives an error notification, never an exception), show
the :class:`ActionResult` (groups, notifications, value) and call
:func:`scan_and_notify` instead of ``Dataset.scan`` so plugins hear about new
and removed images.

Nothing here imports textual or rich.
"""

from .actions import ActionError, ActionRegistry, describe_function
from .interface import PluginProjectInterface
from .loader import (BUILTINS, ENTRY_POINT_GROUP, PluginConfig, PluginError, PluginSpec, PluginUntrusted,
                     add_plugin,
                     ScanSnapshot, available_entry_points, load_plugin, load_plugins, notify_scan,
                     open_project, read_config, remove_plugin, scan_and_notify, scan_snapshot, write_config)
from .models import (HOOKS, ActionContext, ActionResult, DbCommit, DeleteFolderConfirm, Folder,
                     FunctionDescription, Group, ImageProperty, ImagePropertyKey, Instance,
                     InstanceProperty, InstancePropertyKey, Notif, NotifFunction, NotifType,
                     OwnVectorType, ParamDescription, Property, PropertyGroup, PropertyId, PropertyMode,
                     PropertyType, PropertyValue, Score, ScoreList, Tag, Vector, VectorType, to_jsonable)
from .plugin import APlugin
from .project import CommitError, Project
from .tasks import Task, TaskError, TaskQueue, TaskState

__all__ = [
    "APlugin", "ActionContext", "ActionError", "ActionRegistry", "ActionResult", "BUILTINS", "CommitError",
    "DbCommit", "DeleteFolderConfirm", "ENTRY_POINT_GROUP", "Folder", "FunctionDescription", "Group", "HOOKS",
    "ImageProperty", "ImagePropertyKey", "Instance", "InstanceProperty", "InstancePropertyKey", "Notif",
    "NotifFunction", "NotifType", "OwnVectorType", "ParamDescription", "PluginConfig", "PluginError",
    "PluginProjectInterface", "PluginSpec", "PluginUntrusted", "Project", "Property", "PropertyGroup", "PropertyId",
    "PropertyMode", "PropertyType", "PropertyValue", "Score", "ScoreList", "Tag", "Task", "TaskError",
    "TaskQueue", "TaskState", "Vector", "VectorType", "add_plugin", "available_entry_points",
    "describe_function", "load_plugin", "load_plugins", "open_project", "read_config", "remove_plugin",
    "ScanSnapshot", "notify_scan", "scan_and_notify", "scan_snapshot", "to_jsonable", "write_config",
]
