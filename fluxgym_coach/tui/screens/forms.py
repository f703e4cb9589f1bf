"""Small modal screens: a generic form, a yes/no question, a choice of a few answers.

:class:`FormScreen` shows labelled one-line fields and returns the values as
a dict (or None when cancelled). A ``validate`` callable turns the raw strings
into the result or raises ``ValueError`` with a message shown in the form, so
bad input never leaves the form.

Keys arrive in bursts (a paste, or an SSH connection batching fast typing),
so nothing in a form depends on a message being handled before the next key
arrives: moving between fields (enter, tab, shift+tab, up, down) is a
*priority* binding, run by the app in key order, so the keys after it go to
the next field; running the form (ctrl+s, enter in the last field) first waits
until every field has applied the keys already sent to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


@dataclass(slots=True)
class Field:
    """One field of a form: ``name`` (dict key), ``label``, initial ``value``, ``help``."""

    name: str
    label: str
    value: str = ""
    help: str = ""


class FormScreen(ModalScreen[Any]):
    """A modal form. Enter / tab / down go to the next field, shift+tab / up to the
    previous one; enter in the last field or ctrl+s runs it; escape cancels (and
    asks first when a field was changed)."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        # Not a priority binding: keys typed just before it (a burst from the
        # terminal) must reach the fields first.
        Binding("ctrl+s", "submit", "Run"),
        # Priority: the app runs them in key order, so a burst "3<enter>abc" puts
        # "abc" in the next field (the focus moves before "a" is routed).
        Binding("enter", "next_field(True)", "Next field", show=False, priority=True),
        Binding("tab,down", "next_field(False)", "Next field", show=False, priority=True),
        Binding("shift+tab,up", "previous_field", "Previous field", show=False, priority=True),
    ]

    DEFAULT_CSS = """
    FormScreen { align: center middle; }
    FormScreen > Vertical { width: 76; max-width: 100%; height: auto; max-height: 100%;
                            border: thick $accent; background: $surface; padding: 0 1; }
    FormScreen .form-title { text-style: bold; padding: 0 0 1 0; }
    FormScreen VerticalScroll { height: auto; max-height: 16; }
    FormScreen .form-row { height: 1; margin: 0; }
    FormScreen .form-row Label { width: 20; padding: 0 1 0 0; }
    FormScreen .form-row Input { width: 1fr; height: 1; border: none; padding: 0 1; }
    FormScreen .form-row Input:focus { background: $accent 30%; }
    FormScreen #form-error { color: $error; height: auto; }
    FormScreen .form-buttons { height: 3; align-horizontal: right; }
    FormScreen Button { min-width: 10; margin-left: 1; }
    """

    def __init__(self, title: str, fields: list[Field],
                 validate: Callable[[dict[str, str]], Any] | None = None,
                 submit_label: str = "Run", note: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.form_title = title
        self.fields = fields
        self.validate = validate or (lambda values: values)
        self.submit_label = submit_label
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.form_title, classes="form-title")
            if self.note:
                yield Static(self.note, classes="form-note")
            with VerticalScroll():
                for f in self.fields:
                    with Horizontal(classes="form-row"):
                        yield Label(f.label)
                        field = Input(f.value, id=f"field-{f.name}", tooltip=f.help or None)
                        field.cursor_blink = False  # nothing streams while idle over SSH
                        yield field
            yield Static("", id="form-error")
            with Horizontal(classes="form-buttons"):
                yield Button(f"{self.submit_label} (ctrl+s)", variant="primary", id="form-submit")
                yield Button("Cancel (esc)", id="form-cancel")

    def on_mount(self) -> None:
        # Typing goes to the first field at once (the scroll container around the
        # fields would otherwise take the focus, and keys would do nothing).
        first = self.query(Input).first()
        first.focus()
        first.cursor_position = len(first.value)

    def values(self) -> dict[str, str]:
        """The raw text of every field."""
        return {f.name: self.query_one(f"#field-{f.name}", Input).value for f in self.fields}

    @property
    def changed(self) -> bool:
        """Whether any field differs from the value the form opened with."""
        return any(self.values()[f.name] != f.value for f in self.fields)

    def _inputs(self) -> list[Input]:
        return list(self.query(Input))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Field keys only while a field has the focus (enter on a button presses it).
        if action in ("next_field", "previous_field"):
            return isinstance(self.focused, Input)
        return True

    def action_next_field(self, submit_at_end: bool) -> None:
        """Focus the next field; ``submit_at_end``: in the last field, run the form."""
        inputs = self._inputs()
        current = self.focused
        if current not in inputs:
            return
        i = inputs.index(current)  # type: ignore[arg-type]
        if i + 1 < len(inputs):
            self._focus(inputs[i + 1])
        elif submit_at_end:
            self.run_worker(self.action_submit(), group="form-submit")
        else:
            self._focus(inputs[0])

    def action_previous_field(self) -> None:
        """Focus the previous field (wraps to the last)."""
        inputs = self._inputs()
        current = self.focused
        if current in inputs:
            self._focus(inputs[inputs.index(current) - 1])  # type: ignore[arg-type]

    def _focus(self, field: Input) -> None:
        # Screen.set_focus now, not Widget.focus (which defers it): the next key of
        # the burst is routed by the app right after this binding returns.
        self.set_focus(field)
        field.cursor_position = len(field.value)

    async def _keys_applied(self) -> None:
        """Wait until every field has handled the events already sent to it."""
        loop = asyncio.get_running_loop()
        waits = []
        for field in self._inputs():
            done: asyncio.Future[None] = loop.create_future()
            if field.call_later(done.set_result, None):
                waits.append(done)
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits), timeout=5)

    async def action_submit(self) -> None:
        """Validate and return the result (after the keys typed before it are applied)."""
        await self._keys_applied()
        if not self.is_attached or self is not self.app.screen:
            return
        try:
            result = self.validate(self.values())
        except ValueError as exc:
            self.query_one("#form-error", Static).update(str(exc))
            return
        self.dismiss(result)

    async def action_cancel(self) -> None:
        """Close without a result; asks first when something was typed."""
        await self._keys_applied()
        if not self.changed:
            self.dismiss(None)
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(None)
        self.app.push_screen(ConfirmScreen("Close the form and discard what you typed?"), answered)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()  # enter is handled by the priority binding; a stray submit does nothing

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "form-submit":
            await self.action_submit()
        else:
            await self.action_cancel()


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y or enter answers yes, n or escape answers no."""

    BINDINGS = [
        Binding("y,enter", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 64; max-width: 100%; height: auto; border: thick $warning;
                               background: $surface; padding: 1 2; }
    ConfirmScreen .confirm-keys { color: $text-muted; padding-top: 1; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question)
            yield Static("y: yes    n: no", classes="confirm-keys")

    def action_answer(self, yes: bool) -> None:
        """Close with the answer."""
        self.dismiss(yes)


class ChoiceScreen(ModalScreen[Any]):
    """A question with a few answers, one key each: ``choices`` is
    ``[(key, label, value), ...]``; escape answers None."""

    DEFAULT_CSS = """
    ChoiceScreen { align: center middle; }
    ChoiceScreen > Vertical { width: 90; max-width: 100%; height: auto; max-height: 100%;
                              border: thick $warning; background: $surface; padding: 1 2; }
    ChoiceScreen .choice-keys { color: $text-muted; padding-top: 1; }
    """

    BINDINGS = [Binding("escape", "choose(-1)", "Cancel")]

    def __init__(self, question: str, choices: list[tuple[str, str, Any]], *,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.question = question
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, markup=False)
            yield Static("    ".join(f"{k}: {label}" for k, label, _ in self.choices) + "    esc: cancel",
                         classes="choice-keys")

    def on_key(self, event: Any) -> None:
        for key, _, value in self.choices:
            if event.key == key:
                event.stop()
                self.dismiss(value)
                return

    def action_choose(self, index: int) -> None:
        """Close with no answer."""
        self.dismiss(None)
