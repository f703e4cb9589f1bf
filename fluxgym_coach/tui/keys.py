"""The one table of keys: the app's bindings, the footer and the help screen come from it.

Only keys that survive tmux and SSH: letters, arrows, F-keys, plain ctrl+letter
(no alt, no ctrl+enter, no shift+arrow, nothing on ctrl+b, tmux's prefix).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True, slots=True)
class Key:
    """One key: Textual ``key`` spec, ``action``, ``description``, help ``area``,
    whether the footer shows it, and how the help screen writes it."""

    key: str
    action: str
    description: str
    area: str = "review"
    show: bool = False
    key_display: str = ""
    bind: bool = True  # False: bound by a widget, listed here for help only
    short: str = ""  # footer label

    @property
    def display(self) -> str:
        """The key as the help screen writes it."""
        return self.key_display or self.key.replace(",", " / ")


KEYS: tuple[Key, ...] = (
    # moving
    Key("up,k", "", "previous image", "move", bind=False, key_display="↑ / k"),
    Key("down,j", "", "next image", "move", bind=False, key_display="↓ / j"),
    Key("pageup,pagedown,home,end", "", "page up / page down / first / last", "move", bind=False,
        key_display="pgup pgdn home end"),
    Key("n", "next_unreviewed", "next unreviewed image", "move", show=True, short="Next new"),
    Key("m", "next_flagged", "next flagged image (audit findings, unreadable)", "move"),
    Key("slash", "search", "search by name or caption text (enter: back to list, escape: clear)",
        "move", show=True, key_display="/", short="Search"),
    Key("f", "cycle_filter", "filter: all, needs caption, flagged, unreviewed, accepted, rejected, "
        "excluded, enhanced", "move", show=True, short="Filter"),
    Key("o", "cycle_sort", "sort: name, size, caption, status, findings", "move"),
    Key("tab", "", "next area (list, preview, caption)", "move", bind=False),
    # review
    Key("v", "toggle_before_after", "before/after: original, then each enhanced variant, newest first", "review", show=True, short="Before/after"),
    Key("z", "toggle_crop", "crop overlay on / off: what the trainer keeps",
        "review"),
    Key("Z,shift+z", "cycle_crop_profile", "crop overlay: next trainer profile (kohya first)", "review", key_display="Z (shift+z)"),
    Key("a", "accept", "accept what the preview shows (that variant is exported), next image", "review", show=True, short="Accept"),
    Key("x", "reject", "reject the enhanced result (the original is exported), next image", "review", show=True, short="Reject"),
    Key("d", "exclude", "exclude the image from the export (again: put it back), next image", "review", short="Exclude"),
    Key("p", "enhance_current", "enhance the current image", "review", show=True, short="Enhance"),
    Key("b", "enhance_batch", "enhance the marked images, or all images in view (asks first)", "review"),
    Key("r", "reprocess", "reprocess with other parameters (form)", "review", show=True, short="Reprocess"),
    Key("g", "generate_caption", "generate a description (caption) of the current image", "review"),
    Key("ctrl+g", "generate_caption_batch", "generate captions for the marked / in-view images",
        "review"),
    Key("space", "", "mark / unmark for bulk actions, next image", "review", bind=False),
    # captions
    Key("e,enter", "edit_caption", "edit the caption", "caption", show=True, key_display="e / enter", short="Caption"),
    Key("ctrl+s", "", "save the caption (atomic write, kept in the history)", "caption", bind=False),
    Key("ctrl+t", "", "add a tag: proposals shown, autocomplete (→ accepts, enter adds)", "caption", bind=False),
    Key("escape", "", "leave the caption editor (unsaved text is kept as a draft)", "caption",
        bind=False),
    Key("u", "undo_caption", "undo the last saved caption change", "caption"),
    Key("t", "bulk_trigger", "prepend the trigger word to marked / in-view captions", "caption"),
    Key("w", "bulk_replace", "search and replace in marked / in-view captions", "caption"),
    # jobs and app
    Key("c", "cancel_job", "cancel the newest running job", "jobs"),
    Key("l", "problems", "problems log: every image a job failed on or warned about", "jobs"),
    Key("f5", "rescan", "rescan the folder", "jobs"),
    Key("f6", "audit", "audit the images again (findings)", "jobs"),
    Key("ctrl+e", "export", "export the dataset for Fluxgym / kohya (form)", "jobs", show=True,
        key_display="ctrl+e", short="Export"),
    Key("question_mark,f1", "help", "this help", "app", show=True, key_display="? / F1", short="Help"),
    Key("ctrl+p", "command_palette", "command palette: every action by name", "app", bind=False),
    Key("q", "quit", "quit (asks first when a job runs or a caption is unsaved)", "app", show=True, short="Quit"),
)


#: Shown first in the footer, so they stay visible in 80 columns.
FOOTER_FIRST = ("help", "quit")


def app_bindings() -> list[Binding]:
    """Bindings of the app (keys with ``bind``); help and quit first for the footer."""
    out = []
    ordered = sorted(KEYS, key=lambda k: 0 if k.action in FOOTER_FIRST else 1)
    for k in ordered:
        if not k.bind or not k.action:
            continue
        out.append(Binding(k.key, k.action, k.short or k.description.split(" (")[0][:22],
                           show=k.show, key_display=k.key_display.split(" / ")[0] or None,
                           id=k.action))
    return out


def action_descriptions() -> list[tuple[str, str]]:
    """``(action, description)`` of every bound key, for the command palette."""
    return [(k.action, k.description) for k in KEYS if k.bind and k.action]


def action_keys() -> dict[str, str]:
    """``{action: "key e / enter"}``: how the palette and the help write each action's key."""
    return {k.action: f"key {k.display}" for k in KEYS if k.bind and k.action}


#: Actions bound to a key that types a character: hidden from the footer while a
#: text field has the focus (there the key types, it runs nothing).
TYPING_ACTIONS = frozenset(
    k.action for k in KEYS if k.bind and k.action
    and any(len(part) == 1 or part in ("slash", "question_mark", "space") for part in k.key.split(",")))
