"""Review decisions: accept, reject, exclude / include, each stored through
:func:`feedback.record_decision` on one decision thread (in order, off the UI)."""

from __future__ import annotations

from concurrent.futures import Future

from ... import feedback
from ...feedback import ACCEPT, EXCLUDE, INCLUDE, REJECT, Decision, record_decision
from ..messages import DecisionFailed
from ..model import ACCEPTED, EXCLUDED, REJECTED, UNREVIEWED

#: The review state each decision leads to (what record_decision stores in the selection).
_STATES = {ACCEPT: ACCEPTED, REJECT: REJECTED, EXCLUDE: EXCLUDED, INCLUDE: UNREVIEWED}


class ReviewActions:
    """Accept / reject / exclude the current image; the decision thread."""

    def record(self, decision: Decision) -> Future:
        """Store a decision with :func:`feedback.record_decision` on the decision thread
        (in submission order); a failure is shown as a notification."""
        future = self._decision_pool.submit(record_decision, self.dataset.store, decision)

        def done(f: Future) -> None:
            exc = f.exception()
            if exc is not None:
                self.post_message(DecisionFailed(decision.relpath, str(exc)))
        future.add_done_callback(done)
        return future

    def wait_decisions(self) -> None:
        """Block until every decision submitted so far is stored."""
        self._decision_pool.submit(lambda: None).result()

    def on_decision_failed(self, msg: "DecisionFailed") -> None:
        self.notify(f"{msg.relpath}: decision not stored: {msg.reason}", severity="error", timeout=10)

    def _decide(self, decision: str) -> None:
        """Record ``decision`` (accept / reject / exclude / include) for the current
        image, show the new state at once and move on to the next image."""
        row = self.current
        if row is None:
            return
        key = self.shown_variant(row) if decision in (ACCEPT, REJECT) else None
        variant = row.variant(key) if key else None
        refusal = feedback.decision_refusal(row.record, decision, key if decision == ACCEPT else None)
        if refusal:
            self.notify(f"{row.relpath}: {refusal}", severity="warning", timeout=6)
            return
        self.record(Decision(
            row.relpath, decision, digest=row.record.digest, variant=key,
            params=variant.params if variant else {}, backend=variant.backend if variant else None,
            source="tui"))
        # What record_decision does to the selection, shown at once.
        row.status, row.selected_variant = _STATES[decision], key if decision == ACCEPT else None
        self.image_list.refresh_row(row.relpath)
        self.recount()  # the status line counts the reviewed images (a watcher redraws it)
        what = "the enhanced variant" if variant and decision == ACCEPT else "the original"
        self.notify({ACCEPT: f"accepted: {row.relpath} ({what} is exported)",
                     REJECT: f"enhancement rejected: {row.relpath} (the original is exported)",
                     EXCLUDE: f"excluded from the export: {row.relpath} (d puts it back)",
                     INCLUDE: f"back in the export: {row.relpath}"}[decision], timeout=2)
        if self.index.filter != "all" and not self.index.matches(row):
            self._refilter()  # it left the view; the cursor stays where it was
        else:
            self.image_list.cursor = min(self.image_list.cursor + 1, len(self.index.view) - 1)
        self._show_current(immediate=False)
        self.refresh_findings([row.relpath])  # e.g. an accepted variant is no longer low_resolution

    def action_accept(self) -> None:
        """Accept the current image as the preview shows it, then move on."""
        self._decide(ACCEPT)

    def action_reject(self) -> None:
        """Reject the enhanced result (the original is exported), then move on."""
        self._decide(REJECT)

    def action_exclude(self) -> None:
        """Leave the current image out of the export, or put an excluded one back."""
        row = self.current
        if row is not None:
            self._decide(INCLUDE if row.status == EXCLUDED else EXCLUDE)
