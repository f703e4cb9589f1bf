"""Small modal screens: a generic form, a yes/no question.

:class:`FormScreen` shows labelled one-line fields and returns the values as
a dict (or None when cancelled). A ``validate`` callable turns the raw strings
into the result or raises ``ValueError`` with a message shown in the form, so
bad input never leaves the form.
"""

from __future__ import annotations

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
    """A modal form. Enter in the last field or ctrl+s submits; escape cancels."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        # Not a priority binding: keys typed just before it (a burst from the
        # terminal) must reach the fields first.
        Binding("ctrl+s", "submit", "Run"),
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

    def action_submit(self) -> None:
        """Validate and return the result."""
        try:
            result = self.validate(self.values())
        except ValueError as exc:
            self.query_one("#form-error", Static).update(str(exc))
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        """Close without a result."""
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        inputs = list(self.query(Input))
        if event.input is inputs[-1]:
            self.action_submit()
        else:
            inputs[inputs.index(event.input) + 1].focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "form-submit":
            self.action_submit()
        else:
            self.action_cancel()


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
