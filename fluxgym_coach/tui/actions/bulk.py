"""Bulk caption edits of the marked / in-view images: trigger word first, search
and replace; one undoable operation (:func:`captions.text.apply_to_captions`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual import work

from ...statuses import JobStatus
from ...captions import text as caption_rules
from ...events import ItemDone, ItemFailed, JobFinished, JobStarted
from ...feedback import CAPTION_EDIT, Decision, record_decision
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
            lambda t: t and self._bulk_edit(targets, "prefix", partial(_trigger_first, t), True))

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
            lambda fr: fr and self._bulk_edit(targets, "replace", partial(_replace_text, *fr), False))

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
        self._bulk_worker(sink, rows, kind, transform, include_missing)

    @work(thread=True, group="bulk", exit_on_error=False)
    def _bulk_worker(self, sink: JobSink, rows: list[Row], kind: str,
                     transform: Callable[[str], str], include_missing: bool) -> None:
        """Bulk caption edit through :func:`fluxgym_coach.captions.text.apply_to_captions`
        (one undoable operation), in chunks so progress shows and cancel works."""
        job = sink.progress.key
        sink(JobStarted(job, "bulk", len(rows)))
        op_id = caption_rules.new_op_id(kind)
        digests = {r.relpath: r.record.digest for r in rows}
        todo = []
        for r in rows:
            if r.draft is not None:
                sink(ItemFailed(job, r.relpath, "has unsaved edits in the caption editor: save "
                                                "or undo them first; left unchanged"))
            else:
                todo.append(r.relpath)
        changed: list[str] = []
        for start in range(0, len(todo), 50):
            if sink.cancel_requested:
                break
            chunk = todo[start:start + 50]
            try:
                report = caption_rules.apply_to_captions(self.dataset, transform, kind, chunk,
                                                         include_missing=include_missing, op_id=op_id)
            except OSError as exc:
                for rel in chunk:
                    sink(ItemFailed(job, rel, f"caption not saved: {exc}"))
                continue
            for rel in report.changed:
                record_decision(self.dataset.store, Decision(
                    rel, CAPTION_EDIT, digest=digests.get(rel),
                    params={"bulk": kind, "op": op_id}, source="tui"))
            changed.extend(report.changed)
            for rel in chunk:
                sink(ItemDone(job, rel, cached=rel not in report.changed))
        status = JobStatus.CANCELLED if sink.cancel_requested else JobStatus.DONE
        sink(JobFinished(job, "bulk", status, len(changed), len(sink.failures), {"changed": len(changed)}))
        self.post_message(RowsChanged(changed))
        self.call_from_thread(self.notify, f"{kind}: {len(changed)} captions changed", timeout=4)


def _trigger_first(trigger: str, text: str) -> str:
    """The caption with the trigger word first (:func:`captions.apply_trigger`)."""
    return caption_rules.apply_trigger(text, trigger)




def _replace_text(find: str, replace: str, text: str) -> str:
    """Literal search and replace, with the separators tidied."""
    new = text.replace(find, replace)
    if new == text:
        return text
    parts = [p.strip() for p in new.split(",")]
    return ", ".join(p for p in parts if p)
