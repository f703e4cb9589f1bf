"""``APlugin``: the base class of every plugin (seed 000, "Classe de base")."""

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .actions import describe_function
from .interface import PluginProjectInterface
from .models import FunctionDescription, VectorType
from .project import Project


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "_", "_".join(name.split()).lower()) or "plugin"


class APlugin:
    """Base class of plugins: ``MyPlugin(project, plugin_path, name)``.

    Subclasses call ``super().__init__(name=name, project=project,
    plugin_path=plugin_path)``, set ``self.params`` to a pydantic model with
    defaults, register actions with :meth:`add_action_easy` /
    :meth:`add_action`, and may override ``async _start()`` (called once when
    the plugin is loaded, after stored params are merged and ``vector_types``
    is filled).

    Attributes (seed's table): ``name``, ``params``, ``path``, ``data_path``
    (``<dataset>/.fluxgym-coach/plugin_data/<slug of name>``, removed with
    the plugin), ``project`` (the :class:`PluginProjectInterface`),
    ``_project`` (the :class:`Project`), ``registered_functions``,
    ``vector_types`` and ``base_key`` (``"<name>.base"``, where params are
    stored). ``load_warnings`` lists what was skipped while registering.
    """

    def __init__(self, project: Project | PluginProjectInterface, plugin_path: str, name: str):
        if isinstance(project, PluginProjectInterface):
            self._project: Project = project._project
            self.project = project
        else:
            self._project = project
            self.project = PluginProjectInterface(project, name)
        self.name = name
        self.path = str(plugin_path)
        self.plugin_path = self.path
        self.params: Any = None
        self.registered_functions: list[FunctionDescription] = []
        self.vector_types: list[VectorType] = []
        self.base_key = f"{name}.base"
        self.load_warnings: list[str] = []
        self.data_path: Path = self._project.data_root / _slug(name)
        self.data_path.mkdir(parents=True, exist_ok=True)

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        """Merge stored params, load this plugin's vector types, then run :meth:`_start`."""
        self._load_params()
        self.vector_types = self._project.vector_types(source=self.name)
        await self._start()

    async def _start(self) -> None:
        """Override for heavy initialisation (models, vector types, properties)."""

    def _load_params(self) -> None:
        if not isinstance(self.params, BaseModel):
            return
        stored = self._project.get_plugin_data(self.base_key)
        if stored:
            known = {k: v for k, v in stored.items() if k in type(self.params).model_fields}
            try:
                self.params = type(self.params)(**{**self.params.model_dump(), **known})
            except ValidationError as exc:
                self.load_warnings.append(f"stored params of {self.name} ignored: {exc}")

    def update_params(self, params: dict[str, Any] | BaseModel) -> Any:
        """Validate and persist new params under :attr:`base_key`; returns the new params.

        Raises ``pydantic.ValidationError`` (nothing stored) for invalid values
        and ValueError when the plugin has no params model.
        """
        if not isinstance(self.params, BaseModel):
            raise ValueError(f"plugin {self.name!r} has no parameters")
        data = params.model_dump() if isinstance(params, BaseModel) else dict(params)
        self.params = type(self.params)(**{**self.params.model_dump(), **data})
        self._project.set_plugin_data(self.base_key, self.params.model_dump(mode="json"))
        return self.params

    def remove_data(self) -> None:
        """Delete :attr:`data_path` and every ``plugin_data`` key of this plugin."""
        shutil.rmtree(self.data_path, ignore_errors=True)
        self._project.delete_plugin_data(self.name)

    # -- actions --------------------------------------------------------------------
    def add_action(self, function: Callable[..., Any], description: FunctionDescription) -> FunctionDescription:
        """Register ``function`` with a hand-made :class:`FunctionDescription`."""
        self._project.registry.add(function, description, owner=self.name)
        self.registered_functions.append(description)
        return description

    def add_action_easy(self, function: Callable[..., Any], hooks: list[str] | None = None) -> FunctionDescription:
        """Register ``function`` with a description built from its signature and
        docstring (see :func:`~fluxgym_coach.plugins.actions.describe_function`);
        ``description.id`` is what a :class:`NotifFunction` refers to."""
        description = describe_function(self.name, function, hooks, self.load_warnings)
        return self.add_action(function, description)

    def get_description(self) -> dict[str, Any]:
        """Name, docstring, path, params (values and JSON schema) and actions, for front ends."""
        params = self.params.model_dump(mode="json") if isinstance(self.params, BaseModel) else None
        schema = type(self.params).model_json_schema() if isinstance(self.params, BaseModel) else None
        return {"name": self.name, "description": (type(self).__doc__ or "").strip() or None,
                "path": self.path, "params": params, "params_schema": schema,
                "registered_functions": self.registered_functions,
                "warnings": list(self.load_warnings)}


__all__ = ["APlugin"]
