"""The plugin system in a Textual app: :class:`PluginSession` and the palette entries.

The screens and widgets live in :mod:`fluxgym_coach.tui.plugin_screens`
(re-exported here). Self-contained: works in any Textual app. The review app
mounts them through :func:`palette_actions` (called once from
``ReviewApp._load_plugins``), which returns the command-palette entries of
every plugin action and wires the rest:

* an action with parameters opens a :class:`FunctionForm` generated from its
  :class:`~fluxgym_coach.plugins.FunctionDescription`;
* it runs on the marked images, else on the image under the cursor for a
  ``similar`` action, else on the images in view;
* its notifications become toasts (:func:`notify_result`; a suggested
  function is named in the toast and runnable from "Plugin notifications",
  a :class:`NotificationsScreen`);
* its groups open in an :class:`ActionResultScreen`: a filtered list of
  groups and of their images with scores, sortable by score with
  ``max_is_best`` respected; choosing an image calls ``app.show_relpath(relpath)``
  when the app has it.

:class:`TaskProgressPanel` draws one progress bar per task key of a
:class:`~fluxgym_coach.plugins.TaskQueue`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from textual.app import App

from ..plugins import ActionContext, ActionError, ActionResult, FunctionDescription, Notif, NotifFunction, Project
from ..plugins.loader import instantiate_plugins, start_plugin
from ..plugins.loader import notify_scan as fire_scan_events
from .plugin_screens import (ActionResultScreen, FunctionForm, NotificationsScreen, TaskProgressPanel, TasksScreen,
                             notify_result, params_description)


# -- the review app's entry point -------------------------------------------------------------------

class PluginSession:
    """Plugins of the dataset open in an app: builds the :class:`Project`, lists actions,
    runs them and shows their results (see the module docstring).

    ``app`` needs ``dataset`` (a :class:`~fluxgym_coach.dataset.Dataset`); it
    may have ``index`` (``marked()``, ``targets()``) and ``current`` (a row with
    ``relpath``) for the selection, and ``show_relpath(relpath)`` to jump to an
    image chosen in a result.
    """

    def __init__(self, app: App[Any], project: Project | None = None):
        self.app = app
        self.project = project or Project(app.dataset)  # type: ignore[attr-defined]
        self.notifications: list[Notif] = []
        self.results: list[ActionResult] = []
        self.project.on_notif(self._background_notif)
        self.started = asyncio.Event()  # set once every plugin's _start has returned
        instantiate_plugins(self.project)

    async def start(self) -> None:
        """Start every instantiated plugin (``_start``), reporting failures as toasts;
        sets :attr:`started` at the end, failed or not."""
        try:
            for plugin in list(self.project.plugins.values()):
                await start_plugin(self.project, plugin)
        finally:
            self.started.set()

    async def notify_scan(self, report: Any, snapshot: Any) -> None:
        """Tell the plugins about a scan once they have started (see ``plugins.notify_scan``)."""
        await self.started.wait()
        await fire_scan_events(self.project, report, snapshot)

    def _background_notif(self, notif: Notif) -> None:
        self.notifications.append(notif)
        notify_result(self.app, ActionResult(notifs=[notif]))

    # -- selection ------------------------------------------------------------------------------
    def selection_ids(self, description: FunctionDescription) -> list[int] | None:
        """Instance ids the action runs on (see the module docstring); None = whole dataset."""
        index = getattr(self.app, "index", None)
        rows = []
        if index is not None:
            rows = list(index.marked())
            if not rows and "similar" in description.hooks and getattr(self.app, "current", None) is not None:
                rows = [self.app.current]  # type: ignore[attr-defined]
            if not rows:
                rows = list(index.targets())
        if not rows:
            return None
        wanted = {r.relpath for r in rows}
        return [i.id for i in self.project.instances() if i.relpath in wanted]

    def choices(self) -> dict[str, list[tuple[str, Any]]]:
        """Options of property and vector-type fields."""
        vts = [(f"{vt.params.get('model', vt.id)} ({vt.source})", vt.id) for vt in self.project.vector_types()]
        return {"property": [(p.name, p.id) for p in self.project.properties()],
                "vector_type": vts, "own_vector_type": vts}

    # -- running ----------------------------------------------------------------------------------
    def open(self, description: FunctionDescription, ctx: ActionContext | None = None) -> None:
        """Ask for the inputs (when the action has parameters), then run it."""
        if description.params and ctx is None:
            self.app.push_screen(FunctionForm(description, self.choices()),
                                 callback=lambda values: values is not None and self.run(description, values))
        else:
            self.run(description, {}, ctx)

    def run(self, description: FunctionDescription, values: dict[str, Any], ctx: ActionContext | None = None) -> None:
        """Run the action in a worker on the selection (or ``ctx``)."""
        ctx = ctx or ActionContext(instance_ids=self.selection_ids(description))
        ctx = ActionContext(instance_ids=ctx.instance_ids, group_name=ctx.group_name,
                            ui_inputs={**ctx.ui_inputs, **values})
        self.app.run_worker(self._run(description, ctx), group="plugin-actions", exit_on_error=False)

    async def _run(self, description: FunctionDescription, ctx: ActionContext) -> ActionResult | None:
        try:
            result = await self.project.call_action(description.id, ctx)
        except ActionError as exc:
            self.app.notify(str(exc), title=description.label or description.id, severity="error")
            return None
        self.show(result, description.label or description.id)
        return result

    def show(self, result: ActionResult, title: str) -> None:
        """Toasts for the notifications; the groups in an :class:`ActionResultScreen`."""
        self.results.append(result)
        self.notifications.extend(result.notifs or [])
        notify_result(self.app, result, title)
        if result.groups:
            labels: dict[Any, str] = {}
            for inst in self.project.instances():
                labels[inst.id] = inst.relpath
                labels.setdefault(inst.sha1, inst.relpath)
            self.app.push_screen(ActionResultScreen(result, labels, title), callback=self._chosen)

    def _chosen(self, label: str | None) -> None:
        if label is None:
            return
        jump = getattr(self.app, "show_relpath", None)
        if callable(jump):
            jump(label)
        else:
            self.app.notify(label, title="chosen image")

    def show_notifications(self) -> None:
        """Open the list of plugin notifications; a chosen suggested function runs."""
        def chosen(function: NotifFunction | None) -> None:
            if function is None:
                return
            try:
                desc = self.project.registry.find(function.function).description
            except ActionError as exc:
                self.app.notify(str(exc), severity="error")
                return
            self.open(desc, function.context)
        self.app.push_screen(NotificationsScreen(self.notifications), callback=chosen)

    def edit_params(self, name: str) -> None:
        """Open a form on a plugin's params; submitting stores them."""
        plugin = self.project.plugins[name]
        desc = params_description(plugin)
        if desc is None:
            return

        def save(values: dict[str, Any] | None) -> None:
            if values is None:
                return
            try:
                plugin.update_params(values)
            except Exception as exc:  # pydantic ValidationError: show it, keep the old params
                self.app.notify(str(exc), title=f"{name} settings", severity="error")
                return
            self.app.notify("saved", title=f"{name} settings")
        self.app.push_screen(FunctionForm(desc, submit_label="Save"), callback=save)

    def palette_entries(self) -> list[tuple[str, Callable[[], Any], str]]:
        """``(title, callback, help)`` for the command palette."""
        out: list[tuple[str, Callable[[], Any], str]] = []
        for d in self.project.actions():
            hooks = ", ".join(d.hooks)
            out.append((f"Plugin: {d.label or d.name} ({d.plugin})", partial(self.open, d),
                        f"{d.description or d.id} [{hooks}]"))
        out.append(("Plugin notifications", self.show_notifications, "messages and suggested actions of plugins"))
        out.append(("Plugin tasks", lambda: self.app.push_screen(TasksScreen(self.project.task_queue)),
                    "progress of plugin background tasks"))
        for name, plugin in sorted(self.project.plugins.items()):
            if params_description(plugin) is not None:
                out.append((f"Plugin settings: {name}", partial(self.edit_params, name), "edit and save"))
        return out


def palette_actions(app: App[Any]) -> list[tuple[str, Callable[[], Any], str]]:
    """Entry point for the review app: open the dataset's plugins for ``app`` (kept as
    ``app.plugin_session``), start them in a worker, and return the palette entries."""
    session = PluginSession(app)
    app.plugin_session = session  # type: ignore[attr-defined]
    app.run_worker(session.start(), group="plugins", exit_on_error=False)
    return session.palette_entries()


__all__ = ["ActionResultScreen", "FunctionForm", "NotificationsScreen", "PluginSession", "TaskProgressPanel", "TasksScreen",
           "notify_result", "palette_actions", "params_description"]
