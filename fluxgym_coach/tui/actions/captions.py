"""Captions: the editor (save with a conflict check, undo, tag completion and
proposals) and caption generation with a captioning backend (the form, the
overwrite question, the job)."""

from __future__ import annotations

import asyncio
from typing import Any

from textual import work

from ...statuses import CaptionWrite, JobStatus
from ... import core
from ...dataset import one_line
from ...feedback import CAPTION_EDIT, Decision
from ...settings import load_settings
from ..jobs import JobSink
from ..messages import RowsChanged
from ..live import remember_job
from ..model import Row, plural
from ..screens.forms import ChoiceScreen, ConfirmScreen, Field, FormScreen


class CaptionActions:
    """The caption editor and caption generation."""

    def complete_tag(self, prefix: str) -> list[str]:
        """Tag completions for ``prefix`` over the dataset's captions (:class:`tags.TagIndex`)."""
        if self._tag_index is None:
            from ...captions.tags import TagIndex

            self._tag_index = TagIndex.from_captions(r.caption for r in self.index.rows)
        return self._tag_index.complete(prefix, 10)

    def action_edit_caption(self) -> None:
        """Focus the caption editor."""
        if self.current is not None:
            self._sync_panels()
            area = self.editor.area
            area.focus()
            area.move_cursor(area.document.end)

    @work(thread=True, exclusive=True, group="tags", exit_on_error=False)
    def _propose_tags(self, relpath: str) -> None:
        """Tag proposals for one image (:func:`tags.propose`: captioner results and the
        tags most used in its folder); reads the store, so in a worker."""
        from ...captions.tags import propose

        try:
            tags = [p.tag for p in propose(self.dataset, relpath, 10)]
        except LookupError:
            tags = []
        self.call_from_thread(self.editor.set_proposals, relpath, tags)

    def save_caption(self, relpath: str, text: str, force: bool = False) -> bool:
        """Write the caption through :func:`caption_sync.save_caption` (atomic, history;
        empty text removes the sidecar) and record the decision. When the sidecar
        changed on disk since the editor loaded it, nothing is written: a question
        shows both texts (``force`` skips the check). Returns whether it changed."""
        from ...captions.sync import CaptionConflict, save_caption

        row = self.index.by_relpath.get(relpath)
        try:
            result = save_caption(self.dataset, relpath, text, base=self._caption_base(relpath),
                                  source="tui", force=force)
        except CaptionConflict as conflict:
            self._ask_conflict(conflict, text)
            return False
        except OSError as exc:
            self.notify(f"{relpath}: caption not saved: {exc}", severity="error", timeout=8)
            return False
        saved = one_line(text)
        if result != CaptionWrite.UNCHANGED:
            self.record(Decision(
                relpath, CAPTION_EDIT, digest=row.record.digest if row else None,
                params={"caption": saved}, source="tui"))
        self._caption_saved(relpath, saved)
        self.notify({CaptionWrite.WRITTEN: f"caption saved: {relpath}",
                     CaptionWrite.REMOVED: f"caption removed: {relpath} (an empty caption file is "
                                           f"refused by kohya; the old text is in the history, u "
                                           f"brings it back)",
                     CaptionWrite.UNCHANGED: "caption unchanged"}[result],
                    timeout=3 if result == CaptionWrite.REMOVED else 2)
        return result != CaptionWrite.UNCHANGED

    def _caption_saved(self, relpath: str, text: str) -> None:
        """Show the caption now on disk in the row and the editor."""
        self._tag_index = None
        row = self.index.by_relpath.get(relpath)
        if row is not None:
            row.draft = None
            self.index.refresh_rows(self.dataset, [relpath])
            self.image_list.refresh_row(relpath)
        if self.editor.relpath == relpath:
            self._load_editor(row) if row is not None else self.editor.load(relpath, text)
        self.refresh_findings([relpath])  # e.g. caption-missing leaves at once

    def _caption_base(self, relpath: str) -> Any:
        """What the sidecar held when the editor loaded it (a CaptionStamp)."""
        base = self._caption_bases.get(relpath)
        if base is None:
            from ...captions.sync import stamp_of_record

            row = self.index.by_relpath.get(relpath)
            base = stamp_of_record(row.record) if row is not None else None
        return base

    def _load_editor(self, row: Row) -> None:
        """Load ``row``'s caption (or its draft) into the editor and remember the
        sidecar's stamp as the base that saving checks against."""
        from ...captions.sync import stamp_of_record

        self._caption_bases = {row.relpath: stamp_of_record(row.record)}
        self.editor.load(row.relpath, row.caption or "", row.draft)

    def _ask_conflict(self, conflict: Any, mine: str) -> None:
        rel = conflict.relpath
        disk = conflict.disk.text

        def answered(choice: str | None) -> None:
            if choice == "mine":
                self.save_caption(rel, mine, force=True)
            elif choice == "disk":
                row = self.index.by_relpath.get(rel)
                if row is not None:
                    row.draft = None
                    self.image_list.refresh_row(rel)
                if self.editor.relpath == rel:
                    self.editor.load(rel, disk or "")
                    self._caption_bases = {rel: conflict.disk}
                self.rescan(quiet=True)  # the store's mirror takes the text on disk
        self.push_screen(ChoiceScreen(
            f"{self.dataset.sidecar_path(rel).name} changed on disk since you opened it "
            f"(another editor, or another TUI on this dataset).\n\n"
            f"on disk: {disk if disk is not None else '(no caption file)'}\n"
            f"yours:   {one_line(mine) or '(empty: removes the file)'}",
            [("m", "save mine (the text on disk stays in the history)", "mine"),
             ("d", "take the one on disk (drop my edit)", "disk")], id="caption-conflict"),
            answered)

    def action_undo_caption(self) -> None:
        """Undo the newest saved caption change of the current image."""
        row = self.current
        if row is None:
            return
        try:
            restored = self.dataset.undo_caption(row.relpath)
        except LookupError as exc:
            self.notify(str(exc), severity="warning", timeout=3)
            return
        self.record(Decision(
            row.relpath, CAPTION_EDIT, digest=row.record.digest,
            params={"caption": restored, "undo": True}, source="tui"))
        self._caption_saved(row.relpath, restored or "")
        self.notify(f"caption restored: {row.relpath}", timeout=2)

    def action_generate_caption(self) -> None:
        """Generate a description of the current image with a captioning backend."""
        row = self.current
        if row is not None:
            self._caption_form([row.relpath])

    def action_generate_caption_batch(self) -> None:
        """Generate captions for the marked / in-view images."""
        rows = self._bulk_targets()
        if rows:
            self._caption_form([r.relpath for r in rows], self.index.describe_targets(rows))

    def _caption_form(self, relpaths: list[str], what: str = "") -> None:
        from ...captions import job as captioning

        saved_caption = load_settings(self.dataset.store).caption  # backend, server, model
        names = ", ".join(captioning.BACKENDS)
        default_backend = saved_caption.backend
        url, model = core.caption_server_fields(default_backend, saved_caption.options)
        saved = {"url": url, "model": model, "mode": saved_caption.mode}

        def validate(v: dict[str, str]) -> dict[str, Any]:
            mode = v["mode"].strip() or "only-missing"
            if mode not in captioning.MODES:
                raise ValueError(f"mode: one of {', '.join(captioning.MODES)}")
            backend = v["backend"].strip()
            if backend not in captioning.BACKENDS:
                raise ValueError(f"backend: one of {names}")
            return {"backend": backend, "mode": mode, "trigger": v["trigger"].strip(),
                    "url": v["url"].strip(), "model": v["model"].strip()}

        single = len(relpaths) == 1 and not what
        fields = [Field("backend", "backend", str(default_backend), help=names),
                  Field("url", "server URL", saved.get("url", ""),
                        help="openai: the OpenAI-compatible base URL; forge: the Forge URL"),
                  Field("model", "model", saved.get("model", "")),
                  Field("mode", "mode", "overwrite" if single else _safe_mode(saved.get("mode")),
                        help=", ".join(captioning.MODES)),
                  Field("trigger", "trigger word",
                        saved.get("trigger") or captioning.dataset_trigger(self.dataset) or "")]
        title = (f"Generate a description of {relpaths[0]}" if single
                 else f"Generate captions for {what or plural(len(relpaths), 'image')}")
        self.push_screen(FormScreen(title, fields, validate, "Generate",
                                    note=f"backends: {names}. The old caption stays in the "
                                         f"history (u undoes).", id="caption-form"),
                         lambda opts: opts and self._start_caption(relpaths, opts))

    def _start_caption(self, relpaths: list[str], opts: dict[str, Any]) -> None:
        from ...captions.job import save_default_backend

        # A destructive mode is never remembered as the next form's default (settings refuse it).
        save_default_backend(self.dataset, opts["backend"], self._caption_options(opts))
        if opts["mode"] == "overwrite":
            self._confirm_overwrite(relpaths, opts)
            return
        self._run_caption(relpaths, opts)

    def _caption_options(self, opts: dict[str, Any]) -> dict[str, Any]:
        """The caption backend's options from the form's server URL and model fields
        (:func:`core.caption_server_options`); forge without a URL captions on the
        first enhancement server of this review."""
        url = opts.get("url", "")
        if opts["backend"] == "forge" and not url and self.api_urls:
            url = self.api_urls[0]
        return core.caption_server_options(opts["backend"], url, opts.get("model", ""))

    def _run_caption(self, relpaths: list[str], opts: dict[str, Any]) -> None:
        remember_job(self, "caption", relpaths, dict(opts))  # offered again if it is interrupted
        sink = self._new_job("caption", "Caption", len(relpaths))
        sink.worker = self._caption_worker(sink, relpaths, opts)

    @work(thread=True, exclusive=True, group="caption-check", exit_on_error=False)
    def _confirm_overwrite(self, relpaths: list[str], opts: dict[str, Any]) -> None:
        """Overwrite mode: ask first when it would replace captions a person wrote
        (:func:`caption_sync.user_written` reads each sidecar, so in a worker)."""
        from ...captions.sync import user_written

        edited = user_written(self.dataset, relpaths)
        if not edited:
            self.call_from_thread(self._run_caption, relpaths, opts)
            return
        names = ", ".join(edited[:3]) + (f" and {len(edited) - 3} more" if len(edited) > 3 else "")
        question = (f"Overwrite {plural(len(edited), 'caption')} written or edited by hand "
                    f"({names})?\nThe old text stays in the caption history (u undoes).")
        self.call_from_thread(self.push_screen, ConfirmScreen(question),
                              lambda yes: self._run_caption(relpaths, opts) if yes else None)

    @work(group="caption", exit_on_error=False)
    async def _caption_worker(self, sink: JobSink, relpaths: list[str], opts: dict[str, Any]) -> None:
        """:func:`core.caption_images` in an async worker; ``Worker.cancel()`` stops it after
        the requests in flight (see :meth:`JobActions.run_cancellable`)."""
        options = self._caption_options(opts)

        async def job(cancel: asyncio.Event) -> Any:
            backend = await asyncio.to_thread(core.captioner_from_settings, None, backend=opts["backend"],
                                              **options)
            try:
                return await core.caption_images(
                    self.dataset, relpaths, backend, mode=opts["mode"],
                    trigger=opts.get("trigger") or None, cache=self.cache, on_event=sink, cancel=cancel)
            finally:
                await backend.aclose()

        try:
            report = await self.run_cancellable(sink, job)
        except Exception as exc:  # noqa: BLE001 - e.g. unknown option, unreachable server
            sink.fail(getattr(exc, "reason", None) or str(exc))
            return
        if report.fatal:
            sink.fail(report.fatal)
        else:
            sink.finish(JobStatus.CANCELLED if report.cancelled else JobStatus.DONE)
        self.post_message(RowsChanged(relpaths))


def _safe_mode(mode: str | None) -> str:
    """The caption mode a form may start with: never ``overwrite`` (destructive)."""
    return mode if mode and mode != "overwrite" else "only-missing"
