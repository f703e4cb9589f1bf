"""Textual screens and widgets of the plugin system: results, notifications, forms, task progress.

Self-contained: every class here works in any Textual app;
:mod:`fluxgym_coach.tui.plugin_views` wires them to a dataset's plugins
(and re-exports every name here).

* :class:`FunctionForm`: a form generated from an action's
  :class:`~fluxgym_coach.plugins.FunctionDescription` (or, through
  :func:`params_description`, from a plugin's pydantic params);
* :func:`notify_result`: an action's notifications as toasts, and
  :class:`NotificationsScreen`, the list of them with their suggested functions;
* :class:`ActionResultScreen`: the groups of an action result, a filtered
  list of groups and of their images with scores, sortable by score with
  ``max_is_best`` respected;
* :class:`TaskProgressPanel` (one progress bar per task key of a
  :class:`~fluxgym_coach.plugins.TaskQueue`) and :class:`TasksScreen`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, DataTable, Input, Label, ProgressBar, Select, Static

from ..plugins import (ActionResult, FunctionDescription, Group, Notif, NotifFunction, NotifType, ParamDescription,
                       TaskQueue, TaskState, to_jsonable)

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


__all__ = ["ActionResultScreen", "FunctionForm", "NotificationsScreen", "TaskProgressPanel", "TasksScreen",
           "notify_result", "params_description"]
