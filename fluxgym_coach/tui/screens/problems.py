"""The problems log: every image a job failed on or warned about, with the reason.

Jobs report problems per image; the app shows one notification per job outcome
and keeps the details here (``l`` opens it), so 10,000 images never mean
10,000 toasts.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem: the ``job`` label, the ``item`` (image relpath, or the job), the
    ``reason``, and whether it is a ``failure`` (else a warning)."""

    job: str
    item: str
    reason: str
    failure: bool


class ProblemsScreen(ModalScreen[None]):
    """The list of problems, newest last; escape or l closes it."""

    BINDINGS = [Binding("escape,l,q", "close", "Close")]

    DEFAULT_CSS = """
    ProblemsScreen { align: center middle; }
    ProblemsScreen > Vertical { width: 100; max-width: 100%; height: 80%; border: thick $warning;
                                background: $surface; padding: 0 1; }
    ProblemsScreen .problems-title { text-style: bold; height: 1; }
    """

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(id="problems")
        self.problems = problems

    def compose(self) -> ComposeResult:
        with Vertical():
            n_fail = sum(p.failure for p in self.problems)
            yield Static(f"Problems: {n_fail} failed, {len(self.problems) - n_fail} warnings "
                         f"(escape closes)", classes="problems-title")
            with VerticalScroll():
                yield Static(self.render_text() if self.problems else "no problem so far",
                             id="problems-text")

    def render_text(self) -> Text:
        """One line per problem: ``job  ✗ item: reason``."""
        out = Text()
        for p in self.problems:
            out.append(f"{p.job:<10} ", style="dim")
            out.append("✗ " if p.failure else "! ", style="red" if p.failure else "yellow")
            out.append(f"{p.item}: {p.reason}\n")
        return out

    def action_close(self) -> None:
        """Close the log."""
        self.dismiss(None)
