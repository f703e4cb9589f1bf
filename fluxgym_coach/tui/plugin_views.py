"""Textual views of the plugin system: results, notifications, forms, task progress, palette entries.

Self-contained: every class here works in any Textual app. The review app
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

import json
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, DataTable, Input, Label, ProgressBar, Select, Static

from ..plugins import (ActionContext, ActionError, ActionResult, FunctionDescription, Group, Notif,
                       NotifFunction, NotifType, ParamDescription, Project, TaskQueue, TaskState, to_jsonable)
from ..plugins.loader import instantiate_plugins, start_plugin
from ..plugins.loader import notify_scan as fire_scan_events

_SEVERITY = {NotifType.ERROR: "error", NotifType.WARNING: "warning", NotifType.INFO: "information",
             NotifType.DEBUG: "information"}
_FILTER_RE = re.compile(r"^\s*(<=|>=|<|>|=)\s*(-?\d+(?:\.\d+)?)\s*$")


# -- groups --------------------------------------------------------------------------------------

def _sorted_items(group: Group, labels: list[str], mode: str) -> list[tuple[str, float | None]]:
    scores = group.scores.values if group.scores else [None] * len(labels)
    items = list(zip(labels, scores))
    if mode == "original" or group.scores is None:
        return items
    best_first = group.scores.max_is_best
    if mode == "worst":
        best_first = not best_first
    return sorted(items, key=lambda it: it[1] if it[1] is not None else 0.0, reverse=best_first)


def _passes(text: str, label: str, score: float | None) -> bool:
    if not text.strip():
        return True
    m = _FILTER_RE.match(text)
    if m:
        if score is None:
            return False
        op, value = m.group(1), float(m.group(2))
        return {"<": score < value, "<=": score <= value, ">": score > value, ">=": score >= value,
                "=": score == value}[op]
    return text.strip().lower() in label.lower()


class ActionResultScreen(ModalScreen[str | None]):
    """The groups of an :class:`ActionResult`: groups on the left, the images of the
    highlighted group with their scores on the right.

    ``labels`` maps instance ids (and sha1s) to what is shown, usually relpaths.
    Keys: ``s`` cycles the order (best score first, worst first, as returned;
    "best" follows ``max_is_best``), ``/`` focuses the filter (text matches
    names, ``<=5``/``>=0.9`` compares scores), enter on an image dismisses
    with its label, escape closes (None).
    """

    DEFAULT_CSS = """
    ActionResultScreen { align: center middle; }
    ActionResultScreen > Vertical { width: 90%; height: 85%; border: round $accent; background: $surface; }
    ActionResultScreen #groups { width: 45%; }
    ActionResultScreen #items { width: 55%; }
    ActionResultScreen .help { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "close", "Close"), Binding("s", "cycle_sort", "Sort"),
                Binding("slash", "focus_filter", "Filter")]
    MODES = ("best", "worst", "original")

    def __init__(self, result: ActionResult, labels: dict[Any, str] | None = None, title: str = "Result"):
        super().__init__()
        self.result = result
        self.labels = labels or {}
        self.title_text = title
        self.groups = list(result.groups or [])
        self.mode = "best"
        self.filter_text = ""
        self.group_index = 0

    def compose(self) -> ComposeResult:
        """Title, filter, the two tables and the key help."""
        with Vertical():
            yield Label(self.title_text, id="title")
            yield Input(placeholder="filter: text, or <=5 / >=0.9 on the score", id="filter")
            with Horizontal():
                yield DataTable(id="groups", cursor_type="row")
                yield DataTable(id="items", cursor_type="row")
            yield Label("s: sort   /: filter   enter: open image   escape: close", classes="help")

    def on_mount(self) -> None:
        """Fill the tables; focus the groups."""
        self.query_one("#groups", DataTable).add_columns("group", "images", "score")
        self.query_one("#items", DataTable).add_columns("image", "score")
        self.refresh_tables()
        self.query_one("#groups", DataTable).focus()

    # -- data ---------------------------------------------------------------------------------
    def item_labels(self, group: Group) -> list[str]:
        """Labels of a group's items (relpaths when known)."""
        keys = group.ids if group.ids else (group.sha1s or [])
        return [self.labels.get(k, str(k)) for k in keys]

    def group_order(self) -> list[int]:
        """Indices of the groups shown: filtered by name or content, ordered by group score."""
        idx = [i for i, g in enumerate(self.groups)
               if _passes(self.filter_text, g.name or "", g.score.value if g.score else None)
               or any(_passes(self.filter_text, lab, sc) for lab, sc in _sorted_items(g, self.item_labels(g), "original"))]
        scored = [i for i in idx if self.groups[i].score is not None]
        if self.mode != "original" and len(scored) == len(idx) and idx:
            best_first = self.groups[idx[0]].score.max_is_best
            if self.mode == "worst":
                best_first = not best_first
            idx.sort(key=lambda i: self.groups[i].score.value, reverse=best_first)
        return idx

    def visible_items(self) -> list[tuple[str, float | None]]:
        """(label, score) of the images shown for the highlighted group, in display order."""
        order = self.group_order()
        if not order:
            return []
        g = self.groups[order[min(self.group_index, len(order) - 1)]]
        items = _sorted_items(g, self.item_labels(g), self.mode)
        name_match = _passes(self.filter_text, g.name or "", g.score.value if g.score else None)
        return [it for it in items if name_match and not _FILTER_RE.match(self.filter_text)
                or _passes(self.filter_text, it[0], it[1])]

    def refresh_tables(self) -> None:
        """Redraw both tables from the current order, filter and highlighted group."""
        groups = self.query_one("#groups", DataTable)
        groups.clear()
        for n, i in enumerate(self.group_order()):
            g = self.groups[i]
            score = f"{g.score.value:g}" if g.score else ""
            groups.add_row(g.name or f"Group {i + 1}", str(len(self.item_labels(g))), score, key=str(n))
        self._fill_items()

    def _fill_items(self) -> None:
        items = self.query_one("#items", DataTable)
        items.clear()
        for n, (label, score) in enumerate(self.visible_items()):
            items.add_row(label, "" if score is None else f"{score:g}", key=str(n))

    # -- events -------------------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#groups")
    def _group_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.group_index = event.cursor_row
        self._fill_items()

    @on(DataTable.RowSelected, "#groups")
    def _group_selected(self) -> None:
        self.query_one("#items", DataTable).focus()

    @on(DataTable.RowSelected, "#items")
    def _item_selected(self, event: DataTable.RowSelected) -> None:
        items = self.visible_items()
        if 0 <= event.cursor_row < len(items):
            self.dismiss(items[event.cursor_row][0])

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.group_index = 0
        self.refresh_tables()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.query_one("#groups", DataTable).focus()

    def action_cycle_sort(self) -> None:
        """Best first -> worst first -> as returned."""
        self.mode = self.MODES[(self.MODES.index(self.mode) + 1) % len(self.MODES)]
        self.group_index = 0
        self.refresh_tables()
        self.notify(f"order: {self.mode}" + (" first" if self.mode != "original" else ""), timeout=2)

    def action_focus_filter(self) -> None:
        """Type a filter."""
        self.query_one("#filter", Input).focus()

    def action_close(self) -> None:
        """Close without choosing."""
        self.dismiss(None)


# -- notifications ----------------------------------------------------------------------------------

def notify_result(app: App[Any], result: ActionResult, title: str | None = None) -> int:
    """Show each notification of ``result`` as a toast (errors stay longer); a suggested
    function is named in the toast. Returns how many toasts were raised."""
    shown = 0
    for n in result.notifs or []:
        text = n.message or ""
        for f in n.functions or []:
            text += f"\nSuggested: {f.message or f.function} (palette: Plugin notifications)"
        if n.type is NotifType.ERROR and isinstance(n.data, dict) and "traceback" in n.data:
            text += "\nDetails: palette > Plugin notifications"
        app.notify(text or "(no message)", title=n.name or title or "", severity=_SEVERITY[n.type],
                   timeout=12 if n.type is NotifType.ERROR else 6)
        shown += 1
    return shown


class NotificationsScreen(ModalScreen[NotifFunction | None]):
    """Notifications with their data (JSON, tracebacks) and a button per suggested
    function; dismisses with the chosen :class:`NotifFunction` (escape: None)."""

    DEFAULT_CSS = """
    NotificationsScreen { align: center middle; }
    NotificationsScreen > VerticalScroll { width: 90%; height: 85%; border: round $accent; background: $surface; }
    NotificationsScreen .error { color: $error; }
    NotificationsScreen .warning { color: $warning; }
    NotificationsScreen .data { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, notifs: list[Notif]):
        super().__init__()
        self.notifs = list(notifs)
        self._functions: dict[str, NotifFunction] = {}

    def compose(self) -> ComposeResult:
        """One block per notification: title line, data, suggested-function buttons."""
        with VerticalScroll():
            if not self.notifs:
                yield Label("No plugin notification yet.")
            for i, n in enumerate(self.notifs):
                yield Label(f"{n.type.value.upper()}  {n.name or ''}: {n.message or ''}", classes=n.type.value,
                            markup=False)
                if n.data is not None:
                    data = n.data.get("traceback") if isinstance(n.data, dict) and "traceback" in n.data else \
                        json.dumps(to_jsonable(n.data), indent=2, default=str)
                    yield Static(data, classes="data", markup=False)
                for j, f in enumerate(n.functions or []):
                    key = f"fn-{i}-{j}"
                    self._functions[key] = f
                    yield Button(f.message or f.function, id=key)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """A suggested function was chosen."""
        if event.button.id in self._functions:
            self.dismiss(self._functions[event.button.id])

    def action_close(self) -> None:
        """Close without running anything."""
        self.dismiss(None)


# -- forms ----------------------------------------------------------------------------------------

class FunctionForm(ModalScreen[dict[str, Any] | None]):
    """A form generated from a :class:`FunctionDescription`; dismisses with the inputs
    (``{name: value}``, ready for ``ActionContext.ui_inputs``) or None.

    int/float/str/path -> Input, bool -> Checkbox, enum -> Select of
    ``possible_values``; property, vector_type and own_vector_type -> Select of
    ``choices[type]`` (``[(label, value), ...]``, given by the caller). Empty
    optional fields are left out (the default applies); empty required ones
    stop the submit with a message.
    """

    DEFAULT_CSS = """
    FunctionForm { align: center middle; }
    FunctionForm > VerticalScroll { width: 80; height: auto; max-height: 90%; border: round $accent;
                                    background: $surface; padding: 0 1; }
    FunctionForm .help { color: $text-muted; }
    FunctionForm #error { color: $error; }
    FunctionForm Horizontal { height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Run")]

    def __init__(self, description: FunctionDescription, choices: dict[str, list[tuple[str, Any]]] | None = None,
                 submit_label: str = "Run"):
        super().__init__()
        self.description = description
        self.choices = choices or {}
        self.submit_label = submit_label

    def compose(self) -> ComposeResult:
        """Title, description, one labelled field per parameter, Run/Cancel."""
        d = self.description
        with VerticalScroll():
            yield Label(d.label or d.name, id="title")
            if d.description:
                yield Static(d.description, classes="help", markup=False)
            for p in d.params:
                yield Label(f"{p.label or p.name}{' *' if p.required else ''}", markup=False)
                if p.description:
                    yield Static(p.description, classes="help", markup=False)
                yield self._field(p)
            yield Label("", id="error")
            with Horizontal():
                yield Button(self.submit_label, id="submit", variant="primary")
                yield Button("Cancel", id="cancel")

    def _field(self, p: ParamDescription) -> Widget:
        wid = f"p-{p.name}"
        if p.type == "bool":
            return Checkbox(p.label or p.name, value=bool(p.default_value), id=wid)
        if p.type == "enum" or p.type in ("property", "vector_type", "own_vector_type"):
            options = ([(str(v), v) for v in p.possible_values or []] if p.type == "enum"
                       else list(self.choices.get(p.type, [])))
            values = [v for _, v in options]
            value = p.default_value if p.default_value in values else Select.NULL
            return Select(options, value=value, allow_blank=not p.required or value is Select.NULL, id=wid)
        kind = {"int": "integer", "float": "number"}.get(p.type, "text")
        default = "" if p.default_value is None else str(p.default_value)
        return Input(value=default, type=kind, id=wid, placeholder=p.type)

    def values(self) -> dict[str, Any]:
        """The typed inputs; raises ValueError naming the first missing or invalid field."""
        out: dict[str, Any] = {}
        for p in self.description.params:
            w = self.query_one(f"#p-{p.name}")
            if isinstance(w, Checkbox):
                out[p.name] = w.value
                continue
            if isinstance(w, Select):
                if w.is_blank():
                    if p.required:
                        raise ValueError(f"{p.label or p.name}: choose a value")
                    continue
                out[p.name] = w.value
                continue
            text = w.value.strip() if isinstance(w, Input) else ""
            if not text:
                if p.required:
                    raise ValueError(f"{p.label or p.name} is required")
                continue
            try:
                out[p.name] = int(text) if p.type == "int" else float(text) if p.type == "float" else text
            except ValueError:
                raise ValueError(f"{p.label or p.name}: {text!r} is not a valid {p.type}") from None
        return out

    def action_submit(self) -> None:
        """Validate and dismiss with the inputs."""
        try:
            values = self.values()
        except ValueError as exc:
            self.query_one("#error", Label).update(str(exc))
            return
        self.dismiss(values)

    def action_cancel(self) -> None:
        """Dismiss with None."""
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Run or Cancel."""
        if event.button.id == "submit":
            self.action_submit()
        elif event.button.id == "cancel":
            self.action_cancel()


def params_description(plugin: Any) -> FunctionDescription | None:
    """A :class:`FunctionDescription` of a plugin's pydantic ``params`` (for a
    :class:`FunctionForm` that edits them; submit -> ``plugin.update_params``).
    None when the plugin has no params. Field help comes from ``@name:`` lines
    of the params class docstring."""
    from ..plugins.actions import _doc_parts, param_type_name
    params = getattr(plugin, "params", None)
    if params is None or not hasattr(type(params), "model_fields"):
        return None
    _, helps = _doc_parts(type(params).__doc__)
    out = []
    for name, field in type(params).model_fields.items():
        kind = param_type_name(field.annotation) or "str"
        value = getattr(params, name)
        possible = [e.value for e in field.annotation] if kind == "enum" else None
        out.append(ParamDescription(name=name, id=name, type=kind, label=name.replace("_", " ").capitalize(),
                                    description=helps.get(name) or field.description,
                                    default_value=value.value if kind == "enum" else value,
                                    possible_values=possible))
    return FunctionDescription(id=f"{plugin.name}.params", name="params", label=f"{plugin.name} settings",
                               description=(type(plugin).__doc__ or "").strip() or None, params=out)


# -- tasks ----------------------------------------------------------------------------------------

class TaskProgressPanel(Widget):
    """One labelled progress bar per task key of a :class:`TaskQueue` (call :meth:`attach`).
    Updates arrive as messages, so the queue may report from any thread."""

    DEFAULT_CSS = """
    TaskProgressPanel { height: auto; display: none; }
    TaskProgressPanel.-has-tasks { display: block; }
    TaskProgressPanel Horizontal { height: 1; }
    TaskProgressPanel Label { width: 32; }
    """

    class Updated(Message):
        """A task key's progress changed."""

        def __init__(self, state: TaskState) -> None:
            super().__init__()
            self.state = state

    def __init__(self, queue: TaskQueue | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.states: dict[str, TaskState] = {}
        if queue is not None:
            self.attach(queue)

    def attach(self, queue: TaskQueue) -> None:
        """Follow ``queue``: draw its current keys, then every progress change redraws its bar."""
        for state in list(queue.states.values()):
            self.post_message(self.Updated(TaskState(**vars(state))))
        queue.on_update(lambda s: self.post_message(self.Updated(TaskState(**vars(s)))))

    def _row_id(self, key: str) -> str:
        return "task-" + re.sub(r"[^A-Za-z0-9_-]", "_", key)

    async def on_task_progress_panel_updated(self, message: "TaskProgressPanel.Updated") -> None:
        """Create or update the bar of the message's key."""
        s = message.state
        self.states[s.key] = s
        wid = self._row_id(s.key)
        found = self.query(f"#{wid}")
        if not found:
            await self.mount(Horizontal(Label(s.name, markup=False), ProgressBar(total=s.total, show_eta=False),
                                        id=wid))
            self.add_class("-has-tasks")  # hidden while empty: a bare Widget would print its name
            found = self.query(f"#{wid}")
        row = found.first()
        row.query_one(Label).update(f"{s.name}" + (f" ({s.failed} failed)" if s.failed else ""))
        row.query_one(ProgressBar).update(total=s.total, progress=s.done)


class TasksScreen(ModalScreen[None]):
    """A :class:`TaskProgressPanel` on a queue, in a modal (escape closes)."""

    DEFAULT_CSS = """
    TasksScreen { align: center middle; }
    TasksScreen > Vertical { width: 80; height: auto; border: round $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, queue: TaskQueue):
        super().__init__()
        self.queue = queue

    def compose(self) -> ComposeResult:
        """Title, the progress bars, a hint when nothing ran."""
        with Vertical():
            yield Label("Plugin tasks")
            if not self.queue.states:
                yield Label("No plugin task has run yet.")
            yield TaskProgressPanel(self.queue)

    def action_close(self) -> None:
        """Close."""
        self.dismiss(None)


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
