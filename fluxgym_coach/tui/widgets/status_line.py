"""The status line: the dataset, the view, the counts and the renderer on one row,
fitted to the terminal's width each time it is drawn.

Each part has a priority; when the parts do not fit, the least important leave
first (then the separators narrow), so at 80 columns the line is never cut in
the middle of a word, and a resize re-fits it (nothing is wrapped or cached at
the old width). Widths are terminal cells (:func:`rich.cells.cell_len`: CJK and
emoji count 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Static

#: Separators between parts, widest first.
SEPARATORS = ("  ·  ", " · ")


@dataclass(frozen=True, slots=True)
class Part:
    """One part of the status line: console ``markup`` and its ``priority``
    (0 is always shown; higher numbers leave first when the line is too long)."""

    markup: str
    priority: int = 1


def fit(parts: list[Part], width: int) -> Text:
    """The parts joined into one line of at most ``width`` cells, in their order:
    the parts of priority 0 always, then the others most important first, each
    one only if it still fits (a long one left out does not hide the shorter
    ones after it); the narrow separator when it keeps more parts; the end cut
    with an ellipsis when even the priority-0 parts do not fit."""
    texts = [Text.from_markup(p.markup) for p in parts]
    best: tuple[tuple[int, bool], Text] | None = None
    for sep in SEPARATORS:
        chosen = {i for i, p in enumerate(parts) if p.priority == 0}

        def line(ids: set[int]) -> Text:
            return Text(sep).join(texts[i] for i in sorted(ids))
        for i in sorted((i for i, p in enumerate(parts) if p.priority > 0),
                        key=lambda i: (parts[i].priority, i)):
            if cell_len(line(chosen | {i}).plain) <= width:
                chosen.add(i)
        result = line(chosen)
        score = (len(chosen), cell_len(result.plain) <= width)
        if best is None or score > best[0]:
            best = (score, result)
        if len(chosen) == len(parts):
            break
    assert best is not None
    out = best[1]
    if cell_len(out.plain) > width:
        out.truncate(max(0, width), overflow="ellipsis")
    return out


class StatusLine(Static):
    """One row of :class:`Part`; re-fitted to the width at every draw (resize included)."""

    DEFAULT_CSS = """
    StatusLine { height: 1; padding: 0 1; background: $panel; color: $text; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.parts: list[Part] = []

    def set_parts(self, parts: list[Part]) -> None:
        """Show these parts (most important first is not required: priorities decide)."""
        self.parts = list(parts)
        self.refresh()

    @property
    def plain(self) -> str:
        """The text shown now (what fits the current width)."""
        return fit(self.parts, self.content_region.width or self.size.width or 80).plain

    def render(self) -> Text:
        return fit(self.parts, self.content_region.width or self.size.width or 80)
