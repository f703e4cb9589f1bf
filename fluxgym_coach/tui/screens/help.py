"""The help screen: every key of the TUI, by area, from the one key table."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..keys import KEYS


def help_table() -> Table:
    """The key table as a Rich table (area, key, what it does)."""
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=False)
    table.add_column("area")
    table.add_column("key", style="bold cyan", no_wrap=True)
    table.add_column("does")
    last = None
    for k in KEYS:
        area = k.area if k.area != last else ""
        last = k.area
        table.add_row(Text(area, style="bold"), k.display, k.description)
    return table


LEGEND = Text.assemble(
    ("list: ", "bold"), "✓ accepted  ✗ enhancement rejected  ⊘ excluded  · unreviewed  ● marked  + enhanced variant  "
    "WxH  caption: none / 59c (characters) / edit (unsaved)  !N flags (audit errors and warnings)\n")


class HelpScreen(ModalScreen[None]):
    """Lists every key (escape, q or ? closes)."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close help")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-width: 100%; height: 100%; border: thick $accent;
                                  background: $surface; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("fluxgym-coach review: keys  (escape closes; ctrl+p opens the "
                              "command palette with every action)", style="bold"))
            yield Static(LEGEND)
            yield Static(help_table())

    def action_close(self) -> None:
        """Close the help screen."""
        self.dismiss(None)
