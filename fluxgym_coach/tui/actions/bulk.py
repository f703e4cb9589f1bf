"""Bulk caption edits of the marked / in-view images: trigger word first, search
and replace; one undoable operation (:func:`core.edit_captions`, the edits of
:mod:`fluxgym_coach.captions.bulk`, as the ``captions`` commands)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual import work

from ...statuses import JobStatus
from ... import core
from ...captions import bulk as caption_bulk
from ...settings import load_settings
from ..jobs import JobSink
from ..messages import RowsChanged
from ..model import Row, plural
from ..screens.forms import Field, FormScreen


class BulkCaptionActions:
    """Bulk caption edits (t, R)."""

    def action_bulk_trigger(self) -> None:
        """Put the trigger word first in the captions of the marked / in-view images."""
        targets = self._bulk_targets()
        if not targets:
            return
        trigger = load_settings(self.dataset.store).trigger or ""

        def validate(v: dict[str, str]) -> str:
            t = v["trigger"].strip()
            if not t or "," in t:
                raise ValueError("the trigger word is one tag: not empty, no comma")
            return t

        self.push_screen(FormScreen(
            f"Put the trigger word first in the captions of {self.index.describe_targets(targets)}",
            [Field("trigger", "trigger word", trigger)], validate, "Apply",
            note="Captions that start with it are left alone; one that has it elsewhere gets it "
                 "moved to the front; images without a caption get it alone."),
            lambda t: t and self._bulk_edit(targets, "trigger-first", caption_bulk.trigger_first_edit(t), True))

    def action_bulk_replace(self) -> None:
        """Search and replace (literal text) in the captions of the marked / in-view images."""
        targets = self._bulk_targets()
        if not targets:
            return

        def validate(v: dict[str, str]) -> tuple[str, str]:
            if not v["find"]:
                raise ValueError("type the text to find")
            return v["find"], v["replace"]

        self.push_screen(FormScreen(
            f"Search and replace in the captions of {self.index.describe_targets(targets)}",
            [Field("find", "find"), Field("replace", "replace with")], validate, "Replace"),
            lambda fr: fr and self._bulk_edit(targets, "replace",
                                              caption_bulk.replace_edit(*fr, regex=False), False))

    def _bulk_targets(self) -> list[Row]:
        """The rows a bulk action acts on (:meth:`ImageIndex.targets`: marked and shown,
        else all shown); says so when marks exist but none is shown."""
        rows = self.index.targets()
        if not rows:
            hidden = self.index.hidden_marked()
            self.notify(f"nothing to act on: {plural(hidden, 'marked image')} hidden by the filter "
                        f"or search (show them, or clear the marks)" if hidden
                        else "no image in view", severity="warning", timeout=5)
        return rows

    def _bulk_edit(self, rows: list[Row], kind: str, transform: Callable[[str], str],
                   include_missing: bool) -> None:
        sink = self._new_job("bulk", "Bulk edit", len(rows))
        sink.worker = self._bulk_worker(sink, rows, kind, transform, include_missing)

    @work(group="bulk", exit_on_error=False)
    async def _bulk_worker(self, sink: JobSink, rows: list[Row], kind: str,
                           transform: Callable[[str], str], include_missing: bool) -> None:
        """:func:`core.edit_captions` (one undoable operation, each change a review decision)
        in an async worker; an image with unsaved text in the editor is held back.
        ``Worker.cancel()`` stops it between images."""
        held = {r.relpath: "has unsaved edits in the caption editor: save or undo them first; "
                           "left unchanged" for r in rows if r.draft is not None}
        try:
            report = await core.edit_captions(self.dataset, [r.relpath for r in rows], transform, kind,
                                              include_missing=include_missing, held=held, source="tui",
                                              on_event=sink)
        except asyncio.CancelledError:
            sink.finish(JobStatus.CANCELLED)
            self.post_message(RowsChanged([r.relpath for r in rows]))  # what was edited before the stop
            raise
        except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps running
            sink.fail(f"bulk edit stopped: {exc}")
            return
        sink.finish(JobStatus.DONE)
        self.post_message(RowsChanged(report.changed))
        self.notify(f"{kind}: {plural(len(report.changed), 'caption')} changed", timeout=4)


def _trigger_first(trigger: str, text: str) -> str:
    """The caption with the trigger word first (the core's :func:`captions.bulk.trigger_first_edit`)."""
    return caption_bulk.trigger_first_edit(trigger)(text)


def _replace_text(find: str, replace: str, text: str) -> str:
    """Literal search and replace, separators tidied (the core's :func:`captions.bulk.replace_edit`,
    as ``captions replace --literal``)."""
    return caption_bulk.replace_edit(find, replace, regex=False)(text)
