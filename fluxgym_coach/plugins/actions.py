"""Actions: building a :class:`FunctionDescription` from a function, and calling one.

:func:`describe_function` reads the signature and the docstring, like
Panoptic's ``add_action_easy``: the description is the docstring text before
the first ``@`` (or ``:param``); each parameter after the context gets a
:class:`ParamDescription` whose type comes from its annotation (``int``,
``float``, ``str``, ``bool``, ``pathlib.Path``, :class:`PropertyId`, any
``Enum``, :class:`VectorType`, :class:`OwnVectorType`; ``X | None`` counts as
``X``) and whose help text comes from a ``@name: text`` or ``:param name:
text`` line. Annotations are resolved with :func:`typing.get_type_hints`, so
string annotations (``from __future__ import annotations``) work too, which
is where Panoptic's ``issubclass`` check breaks.

:class:`ActionRegistry` holds the actions of a project and calls them:
form inputs (strings from the CLI, or values from the TUI form) are coerced
to the parameter types, and an action that raises returns an
:class:`ActionResult` holding one error notification with the traceback.
"""

import asyncio
import enum
import inspect
import logging
import re
import traceback
import types
import typing
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..errors import FluxgymCoachError
from .models import (HOOKS, ActionContext, ActionResult, FunctionDescription, Notif, NotifType,
                     OwnVectorType, ParamDescription, PropertyId, VectorType)

log = logging.getLogger(__name__)

AsyncCallable = Callable[..., Awaitable[Any]]

_SIMPLE_TYPES: dict[Any, str] = {
    bool: "bool", int: "int", float: "float", str: "str", Path: "path",
}


class ActionError(FluxgymCoachError):
    """An action cannot be found or its inputs cannot be used (message says which)."""


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def param_type_name(annotation: Any) -> str | None:
    """The form type of an annotation (see module docstring), or None if unsupported."""
    annotation = _unwrap_optional(annotation)
    if not isinstance(annotation, type):
        return None
    if annotation is PropertyId:
        return "property"
    if annotation is OwnVectorType:
        return "own_vector_type"
    if annotation is VectorType:
        return "vector_type"
    if issubclass(annotation, enum.Enum):
        return "enum"
    if annotation in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[annotation]
    if issubclass(annotation, Path):
        return "path"
    return None


def _doc_parts(doc: str | None) -> tuple[str | None, dict[str, str]]:
    """(description, {param: help}) from a docstring using ``@name:`` or ``:param name:``."""
    if not doc:
        return None, {}
    doc = inspect.cleandoc(doc)
    marker = re.search(r"(^|\s)(@\w+\s*:|:param\s+\w+\s*:)", doc)
    description = (doc[: marker.start()] if marker else doc).strip() or None
    helps: dict[str, str] = {}
    for m in re.finditer(r"(?:@|:param\s+)(\w+)\s*:(.*?)(?=(?:\n\s*(?:@\w+\s*:|:param\s|:return|:raises))|\Z)",
                         doc, flags=re.S):
        helps[m.group(1)] = " ".join(m.group(2).split())
    return description, helps


def describe_function(plugin_name: str, function: Callable[..., Any],
                      hooks: list[str] | None = None,
                      warnings: list[str] | None = None) -> FunctionDescription:
    """Build the :class:`FunctionDescription` of ``function`` for ``plugin_name``.

    The first parameter (after ``self`` for bound methods) is the
    :class:`ActionContext` and is not a form input. Parameters whose type is
    not supported are left out and a sentence is appended to ``warnings``.
    Raises ValueError for an unknown hook.
    """
    hooks = list(hooks or [])
    for h in hooks:
        if h not in HOOKS:
            raise ValueError(f"unknown hook {h!r}; use one of {', '.join(HOOKS)}")
    try:
        hints = typing.get_type_hints(function)
    except Exception as exc:  # unresolvable names: fall back to the raw annotations
        hints = {}
        if warnings is not None:
            warnings.append(f"{function.__qualname__}: annotations could not be resolved ({exc})")
    sig = inspect.signature(function)
    description, helps = _doc_parts(function.__doc__)
    params: list[ParamDescription] = []
    first = True
    for name, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = hints.get(name, p.annotation)
        if first:
            first = False
            if annotation is ActionContext or name in ("ctx", "context") or annotation is p.empty:
                continue
        if _unwrap_optional(annotation) is ActionContext:
            continue
        type_name = param_type_name(annotation)
        if type_name is None:
            msg = (f"{plugin_name}.{function.__name__}: parameter {name!r} has unsupported "
                   f"type {annotation!r}; it is left out of the form")
            log.warning(msg)
            if warnings is not None:
                warnings.append(msg)
            continue
        default = None if p.default is p.empty else p.default
        possible = None
        base = _unwrap_optional(annotation)
        if type_name == "enum":
            possible = [e.value for e in base]
            if isinstance(default, enum.Enum):
                default = default.value
        params.append(ParamDescription(
            name=name, id=name, type=type_name, label=name.replace("_", " ").capitalize(),
            description=helps.get(name), default_value=default, possible_values=possible,
            required=p.default is p.empty))
    return FunctionDescription(id=f"{plugin_name}.{function.__name__}", name=function.__name__,
                               label=function.__name__.replace("_", " ").capitalize(),
                               description=description, params=params, hooks=hooks)


_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


def coerce_input(desc: ParamDescription, annotation: Any, raw: Any,
                 vector_types: Callable[[], list[VectorType]] | None = None) -> Any:
    """Turn a raw form value (often a string from ``--param k=v``) into the
    parameter's type. Raises :class:`ActionError` naming the parameter."""
    base = _unwrap_optional(annotation)
    try:
        if raw is None:
            return None
        if desc.type == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"expected true/false, got {raw!r}")
        if desc.type == "int":
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(f"expected an integer, got {raw!r}")
            return int(raw)
        if desc.type == "property":
            return PropertyId(int(raw))
        if desc.type == "float":
            return float(raw)
        if desc.type == "str":
            return str(raw)
        if desc.type == "path":
            return base(raw) if isinstance(base, type) and issubclass(base, Path) else Path(raw)
        if desc.type == "enum":
            if isinstance(raw, base):
                return raw
            for member in base:
                if str(member.value) == str(raw) or member.name == str(raw):
                    return member
            raise ValueError(f"expected one of {[m.value for m in base]}, got {raw!r}")
        if desc.type in ("vector_type", "own_vector_type"):
            if isinstance(raw, VectorType):
                return raw
            if isinstance(raw, dict):
                return VectorType(**raw)
            known = vector_types() if vector_types else []
            for vt in known:
                if str(vt.id) == str(raw) or vt.params.get("model") == raw:
                    return vt
            raise ValueError(f"no vector type {raw!r}; known: "
                             f"{[(vt.id, vt.params.get('model')) for vt in known]}")
    except (TypeError, ValueError) as exc:
        raise ActionError(f"parameter {desc.name!r}: {exc}") from exc
    return raw


def error_result(function_id: str, exc: BaseException) -> ActionResult:
    """The :class:`ActionResult` of an action that raised: one ERROR notification
    named after the action, with the message and, in ``data``, the traceback."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return ActionResult(notifs=[Notif(NotifType.ERROR, name=function_id,
                                      message=f"{type(exc).__name__}: {exc}",
                                      data={"traceback": tb})])


class Action:
    """A registered action: the callable, its description and its owner plugin."""

    def __init__(self, function: Callable[..., Any], description: FunctionDescription, owner: str):
        self.function = function
        self.description = description
        self.owner = owner
        try:
            self.hints = typing.get_type_hints(function)
        except Exception:
            self.hints = {}

    def kwargs_for(self, ctx: ActionContext,
                   vector_types: Callable[[], list[VectorType]] | None = None) -> dict[str, Any]:
        """Coerced keyword arguments from ``ctx.ui_inputs``; unknown names raise ActionError."""
        by_name = {p.name: p for p in self.description.params}
        unknown = set(ctx.ui_inputs) - set(by_name)
        if unknown:
            raise ActionError(f"{self.description.id}: unknown parameter(s) {sorted(unknown)}; "
                              f"it takes {sorted(by_name) or 'no parameters'}")
        kwargs = {}
        for desc in self.description.params:
            if desc.name in ctx.ui_inputs:
                kwargs[desc.name] = coerce_input(desc, self.hints.get(desc.name), ctx.ui_inputs[desc.name],
                                                 vector_types)
        return kwargs


class ActionRegistry:
    """The actions of one project, by id (``"<plugin>.<function>"``)."""

    def __init__(self) -> None:
        self.actions: dict[str, Action] = {}

    def add(self, function: Callable[..., Any], description: FunctionDescription, owner: str) -> None:
        """Register (or replace) an action."""
        self.actions[description.id] = Action(function, description, owner)

    def remove_owner(self, owner: str) -> None:
        """Remove every action of the plugin ``owner``."""
        self.actions = {k: a for k, a in self.actions.items() if a.owner != owner}

    def descriptions(self, hook: str | None = None) -> list[FunctionDescription]:
        """All descriptions (of one hook when given), ordered by id."""
        return [a.description for _, a in sorted(self.actions.items())
                if hook is None or hook in a.description.hooks]

    def find(self, function_id: str) -> Action:
        """The action ``function_id``; ``name`` alone works when unique. Raises ActionError."""
        if function_id in self.actions:
            return self.actions[function_id]
        matches = [a for a in self.actions.values() if a.description.name == function_id]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(sorted(self.actions)) or "none"
        raise ActionError(f"no action {function_id!r}; known actions: {known}")

    async def call(self, function_id: str, ctx: ActionContext,
                   vector_types: Callable[[], list[VectorType]] | None = None) -> ActionResult:
        """Run an action; never raises for the action's own errors (see module docstring).

        Raises :class:`ActionError` (before running anything) when the action
        does not exist or its inputs are unknown, missing or not convertible.
        """
        action = self.find(function_id)
        kwargs = action.kwargs_for(ctx, vector_types)
        missing = [p.name for p in action.description.params if p.required and p.name not in kwargs]
        if missing:
            raise ActionError(f"{action.description.id}: missing parameter(s) {missing}")
        try:
            if inspect.iscoroutinefunction(action.function):
                result = await action.function(ctx, **kwargs)
            else:
                result = await asyncio.to_thread(action.function, ctx, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:
            return error_result(action.description.id, exc)
        if result is None:
            return ActionResult()
        if not isinstance(result, ActionResult):
            return ActionResult(value=result)
        for g in result.groups or []:
            if g.ids and g.sha1s:
                result.notifs = (result.notifs or []) + [Notif(
                    NotifType.WARNING, name=action.description.id,
                    message=f"group {g.name!r} has both ids and sha1s; ids are used")]
        return result


__all__ = ["Action", "ActionError", "ActionRegistry", "AsyncCallable", "coerce_input",
           "describe_function", "error_result", "param_type_name"]
