"""The review app: ``fluxgym-coach tui DATASET``.

Layout: a status line; the image list (left) with an incremental search
field; the preview, the info panel and the caption editor (right); the jobs
panel; the footer. Every action is a key (see :mod:`.keys`), a command of the
palette (ctrl+p) and a line of the help screen.

The app presents; the core works. Scans, thumbnails, enhancement, captioning,
bulk caption edits and export run in thread workers that call the same core
functions as the CLI (:meth:`Dataset.scan`, :func:`core.enhance_images`,
:func:`export.export_dataset`, ...). Their events reach the UI as throttled
:class:`~.jobs.JobUpdated` messages. Every review decision goes through
:func:`feedback.record_decision`, so reopening the dataset restores it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from textual import on, work
from textual.app import App, ComposeResult
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Input, Static, TextArea

from ..captions import text as caption_rules
from .. import feedback
from .. import core
from ..enhance.backends.base import BackendError, EnhanceParams
from ..dataset import Dataset, one_line
from ..events import ItemDone, ItemFailed, JobFinished, JobStarted
from ..feedback import ACCEPT, CAPTION_EDIT, EXCLUDE, INCLUDE, REJECT, REPROCESS, Decision, record_decision
from ..cache import ImageCache
from ..store import STORE_DIRNAME
from ..settings import load_settings
from .jobs import JobCancelled, JobSink, JobUpdated
from .keys import TYPING_ACTIONS, action_descriptions, action_keys, app_bindings
from .model import ACCEPTED as ACCEPTED_STATUS
from .model import FILTER_LABELS, FILTERS, SORTS, UNREVIEWED, ImageIndex, Row, plural
from .model import EXCLUDED as EXCLUDED_STATUS
from .model import REJECTED as REJECTED_STATUS
from .screens.forms import ChoiceScreen, ConfirmScreen, Field, FormScreen
from .screens.help import HelpScreen
from .screens.problems import Problem, ProblemsScreen
from .thumbnails import ThumbnailCache
from .widgets.caption_editor import CaptionEditor
from .widgets.image_list import ImageList
from .widgets.info_panel import InfoPanel
from .widgets.jobs_panel import JobsPanel
from .widgets.preview import Preview, preview_delay, preview_status
from .live import LiveActions, hook_steps
from .widgets.status_line import Part, StatusLine

#: The review state each decision leads to (what record_decision stores in the selection).
_STATES = {ACCEPT: ACCEPTED_STATUS, REJECT: REJECTED_STATUS, EXCLUDE: EXCLUDED_STATUS,
           INCLUDE: UNREVIEWED}
MAX_PROBLEMS = 10_000  # problems kept in the log (the oldest leave first)
STATE_KEY = "tui.state"
PARAMS_KEY = "tui.enhance_params"
EXPORT_KEY = "tui.export"
PREVIEW_DELAY = 0.15  # seconds the cursor must rest before the preview is drawn
WATCH_MAX_WAIT = 10.0  # seconds between two looks for changes on disk, at most
_log = logging.getLogger(__name__)
#: The fields of the reprocess form, in order: (EnhanceParams field, label, type).
PARAM_FIELDS = (
    ("scale_factor", "scale factor", float), ("upscaler", "upscaler", str),
    ("denoising_strength", "denoising strength", float), ("steps", "steps", int),
    ("cfg_scale", "CFG scale", float), ("sampler_name", "sampler", str),
    ("prompt", "prompt", str), ("negative_prompt", "negative prompt", str),
)


class ThumbReady(Message):
    """A thumbnail made by a worker is ready (or failed: ``image`` None, ``error`` set)."""

    def __init__(self, key: str, image: PILImage.Image | None, title: str, error: str = "") -> None:
        super().__init__()
        self.key, self.image, self.title, self.error = key, image, title, error


class RowsChanged(Message):
    """Background work changed some images in the store (``relpaths``; None = all)."""

    def __init__(self, relpaths: list[str] | None, show_latest: bool = False) -> None:
        super().__init__()
        self.relpaths = relpaths
        self.show_latest = show_latest


class AuditDone(Message):
    """The audit finished: ``findings`` is ``{relpath: [audit Finding, ...]}``,
    ``categories`` the learning-loop category of each image."""

    def __init__(self, findings: dict[str, list[Any]],
                 categories: dict[str, str | None] | None = None) -> None:
        super().__init__()
        self.findings = findings
        self.categories = categories or {}


class FilesChanged(Message):
    """Another program changed the dataset folder: images whose file or caption
    changed (``changed``), were ``added`` or ``removed`` (relpaths)."""

    def __init__(self, changed: list[str], added: list[str], removed: list[str],
                 reload: bool = False) -> None:
        super().__init__()
        self.changed, self.added, self.removed = changed, added, removed
        self.reload = reload  # an earlier look failed half-way: reload every row


class DecisionFailed(Message):
    """Storing a decision failed (``reason``)."""

    def __init__(self, relpath: str, reason: str) -> None:
        super().__init__()
        self.relpath, self.reason = relpath, reason


class ReviewCommands(Provider):
    """Command palette provider: every action of the app, the filters, the sorts,
    the running jobs and the plugin actions."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app = self.app
        assert isinstance(app, ReviewApp)
        return app.palette_commands()

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


@hook_steps
class ReviewApp(LiveActions, App[None]):
    """Keyboard-driven review of one dataset (see the module docstring).

    ``dataset``: the folder. ``preview``: ``auto``, ``kitty``, ``sixel``,
    ``halfcell``, ``unicode`` or ``off``. ``api_url``: a Forge/A1111 server
    for enhancement (None: the embedded local backend), ``api_auth`` its
    ``user:password``. ``scan``: run an
    incremental scan at start; ``audit``: then audit the images (findings
    in the list and the info panel); ``plugins``: open the dataset's plugins
    (their actions in the command palette). ``cache_dir``: the result cache root.
    """

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "fluxgym-coach"
    BINDINGS = app_bindings()
    COMMANDS = App.COMMANDS | {ReviewCommands}
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, dataset: str | Path | Dataset, *, preview: str = "auto",
                 api_url: str | None = None, api_auth: str | None = None, scan: bool = True,
                 cache_dir: str | Path | None = None, backend_options: dict[str, Any] | None = None,
                 thumbnail_side: int = 384, audit: bool = True, plugins: bool = True,
                 watch_interval: float | None = 2.0) -> None:
        super().__init__()
        self.dataset = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
        self.preview_mode = preview
        self.api_url = api_url
        self.api_auth = api_auth
        self.backend_options = backend_options or {}
        self.scan_on_start = scan
        self.cache = ImageCache(cache_dir)
        self.thumbs = ThumbnailCache(self.cache, max_side=thumbnail_side)
        self.index = ImageIndex.load(self.dataset)
        self.showing: dict[str, str | None] = {}  # relpath -> variant key shown (None: original)
        self._cancels: dict[str, Callable[[], None]] = {}
        self._sinks: dict[str, JobSink] = {}
        # Decisions are written in order on one thread: record_decision may measure
        # an image the audit has not seen yet (a decode), never on the UI thread.
        self._decision_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decisions")
        self._job_ids = itertools.count(1)
        self._preview_timer: Timer | None = None
        self._wanted_preview: str | None = None
        self._preview_drawn_at = 0.0  # time.monotonic() of the last preview draw
        self._restored = False
        self.plugin_actions: list[tuple[str, Callable[[], Any], str]] = []
        self.audit_on_start = audit
        self.plugins_on_start = plugins
        self._tag_index: Any = None
        self._caption_bases: dict[str, Any] = {}  # relpath -> CaptionStamp the editor loaded
        self.problem_log: list[Problem] = []  # every job's problems (l shows them)
        self._job_problems: dict[str, list[Problem]] = {}  # of the jobs still running
        self.watch_interval = watch_interval
        self._scan_lock = threading.Lock()  # one scan at a time (start, F5, the watcher)
        self._watch_wake = threading.Event()  # set: look for changes on disk now
        self._watch_missed = False  # a look failed half-way: the next one reloads every row
        from .session_lock import SessionLock

        self.session_lock = SessionLock(self.dataset.root / STORE_DIRNAME)
        self.other_session: Any = None

    # -- layout ------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                search = Input(placeholder="search name or caption…", id="search")
                search.cursor_blink = False  # an idle app sends nothing over SSH
                yield search
                yield ImageList(self.index, id="images")
            with Vertical(id="right"):
                yield Preview(self.preview_mode, id="preview")
                yield InfoPanel(id="info")
                yield CaptionEditor(self.complete_tag, id="caption")
        yield JobsPanel(id="jobs")
        yield Footer()

    @property
    def image_list(self) -> ImageList:
        """The list widget."""
        return self.query_one(ImageList)

    @property
    def editor(self) -> CaptionEditor:
        """The caption editor."""
        return self.query_one(CaptionEditor)

    @property
    def current(self) -> Row | None:
        """The image under the cursor."""
        return self.image_list.current

    def on_mount(self) -> None:
        self.image_list.border_title = "Images"
        state = self.dataset.store.get_setting(STATE_KEY, {}) or {}
        if state.get("filter") in FILTERS:
            self.index.filter = state["filter"]
        if state.get("sort") in SORTS:
            self.index.sort = state["sort"]
        self.index.apply()
        self.image_list.reset_view(keep=state.get("cursor"))
        self._restored = True
        self.image_list.focus()
        self._show_current(immediate=True)
        self._update_status()
        # Background work starts once the first screen is painted.
        self.call_after_refresh(self._after_first_paint)

    def _after_first_paint(self) -> None:
        self._load_plugins()
        self.other_session = self.session_lock.acquire()
        if self.other_session is not None:
            self.notify(f"this dataset is already open in another review ({self.other_session.describe()}). "
                        f"Both can save: a caption changed by the other one is shown and asked "
                        f"about before it is overwritten.", title="open twice", severity="warning",
                        timeout=15)
            self._update_status()
        if self.scan_on_start:
            self.rescan()
        elif self.audit_on_start:
            self.run_audit()
        if self.watch_interval:
            self._watch_worker()

    # -- status line -------------------------------------------------------------------
    def _update_status(self) -> None:
        idx = self.index
        name = self.dataset.root.name.replace("[", "\\[")
        # priority 0 always shown; higher numbers leave first when the line is too long
        parts = [Part(f"[b]{name}[/b]", 0),
                 Part(f"{len(idx.view)}/{len(idx.rows)} {FILTER_LABELS[idx.filter]}", 0),
                 Part(f"sort {idx.sort}", 4)]
        if idx.query:
            parts.append(Part(f"search “{idx.query}”".replace("[", "\\["), 1))
        marked = sum(1 for r in idx.rows if r.marked)
        if marked:
            parts.append(Part(f"{marked} marked", 1))
        reviewed = sum(1 for r in idx.rows if r.status != UNREVIEWED)
        parts.append(Part(f"{reviewed} reviewed", 3))
        parts.append(Part(self._backend_label(), 5))
        if self.other_session is not None:
            parts.append(Part("[b]also open elsewhere[/b]", 1))
        parts.append(Part(preview_status(self.preview_mode, self.console.color_system), 2))
        self.query_one("#status", StatusLine).set_parts(parts)

    def _backend_label(self) -> str:
        """``local backend``, or ``forge HOST:PORT`` (``+N`` for a pool), credentials removed."""
        if not self.api_url:
            return "local backend"
        from ..enhance.backends.forge import redact_url

        urls = [self.api_url] if isinstance(self.api_url, str) else list(self.api_url)
        hosts = [redact_url(u).split("://", 1)[-1].rstrip("/") for u in urls]
        return "forge " + hosts[0] + (f" +{len(hosts) - 1}" if len(hosts) > 1 else "")

    def save_state(self) -> None:
        """Remember the cursor, filter and sort in the store (restored on reopen)."""
        if not self._restored:
            return
        row = self.current
        self.dataset.store.set_setting(STATE_KEY, {
            "cursor": row.relpath if row else None, "filter": self.index.filter,
            "sort": self.index.sort})

    # -- current image ---------------------------------------------------------------------
    def shown_variant(self, row: Row) -> str | None:
        """Cache key of the variant the preview shows for ``row`` (None: the original)."""
        if row.relpath in self.showing:
            key = self.showing[row.relpath]
            if key is None or row.variant(key) is not None:
                return key
        if row.selected_variant and row.variant(row.selected_variant):
            return row.selected_variant
        return row.variants[0].cache_key if row.variants else None

    @on(ImageList.Highlighted)
    def _on_highlighted(self, event: ImageList.Highlighted) -> None:
        # A thumbnail in memory is drawn at once (at most every PREVIEW_THROTTLE s
        # while a key is held); one that must be decoded waits until the cursor rests.
        row = self.current
        cached = row is not None and self.thumbs.peek(self._preview_source(row)[2]) is not None
        delay = preview_delay(cached, time.monotonic() - self._preview_drawn_at)
        if delay == 0:  # after the refresh that shows the moved cursor
            self._preview_drawn_at = time.monotonic()
            self.call_after_refresh(self._on_rest)
        else:
            self._schedule_rest(delay)

    def _show_current(self, immediate: bool = True) -> None:
        """Bring the editor, the info panel and the preview to the current image."""
        self._sync_panels()
        self._schedule_rest(0 if immediate else PREVIEW_DELAY)

    def _sync_panels(self) -> None:
        row = self.current
        editor = self.editor
        if row is None:
            editor.load(None, "")
            self.query_one(InfoPanel).show(None)
            self.query_one(Preview).show_text("no image in view", "Preview")
            return
        if editor.relpath != row.relpath:
            self._load_editor(row)
        self.query_one(InfoPanel).show(row, self.shown_variant(row))

    def _schedule_rest(self, delay: float) -> None:
        if self._preview_timer is not None:
            self._preview_timer.stop()
            self._preview_timer = None
        if delay:
            self._preview_timer = self.set_timer(delay, self._on_rest)
        else:
            self._draw_preview()

    def _on_rest(self) -> None:
        self._preview_timer = None
        self._sync_panels()
        self._draw_preview()

    def _schedule_preview(self, delay: float) -> None:
        self._schedule_rest(delay)

    def _draw_preview(self) -> None:
        self.save_state()
        row = self.current
        preview = self.query_one(Preview)
        if row is None:
            return
        path, digest, mem_key, title, variant = self._preview_source(row)
        self._wanted_preview = mem_key
        self._preview_drawn_at = time.monotonic()
        if self.preview_mode == "off":
            preview.show_text("preview off (--preview or FLUXGYM_COACH_PREVIEW to turn it on)",
                              title, mem_key)
            return
        if row.record.error and variant is None:
            preview.show_text(f"cannot show this image: {row.record.error}", title, mem_key)
            return
        cached = self.thumbs.peek(mem_key)
        if cached is not None:
            preview.show_image(mem_key, cached, title)
            return
        preview.show_text("loading preview…", title)
        self._make_thumbnail(mem_key, path, digest, title)

    def _preview_source(self, row: Row) -> tuple[str, str | None, str, str, Any]:
        """(path, digest, memory key, title, variant or None) of what the preview shows for ``row``."""
        key = self.shown_variant(row)
        variant = row.variant(key) if key else None
        if variant is not None:
            n = len(row.variants)
            which = "" if n == 1 else f" {row.variants.index(variant) + 1} of {n}"
            title = (f"After{which}: {variant.kind} {variant.width}x{variant.height}  "
                     f"(v: {'before' if variant is row.variants[-1] else 'older'})")
            return variant.path, variant.cache_key, f"{row.relpath}|{key}", title, variant
        digest = row.record.digest
        size = row.record.display_size
        title = "Original" + (f" {size[0]}x{size[1]}" if size else "") + (
            "  (v: after)" if row.variants else "")
        return (str(self.dataset.image_path(row.relpath)), digest,
                f"{row.relpath}|original|{digest}", title, None)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def _make_thumbnail(self, key: str, path: str, digest: str | None, title: str) -> None:
        try:
            im = self.thumbs.get(key, path, digest)
        except Exception as exc:  # noqa: BLE001 - any decode problem is shown, not raised
            self.post_message(ThumbReady(key, None, title, getattr(exc, "reason", str(exc))))
            return
        self.post_message(ThumbReady(key, im, title))

    def on_thumb_ready(self, msg: ThumbReady) -> None:
        if msg.key != self._wanted_preview:
            return
        try:
            preview = self.query_one(Preview)
        except NoMatches:  # a thumbnail finished while the app was closing
            return
        if msg.image is None:
            preview.show_text(f"cannot show this image: {msg.error}", msg.title, msg.key)
        else:
            preview.show_image(msg.key, msg.image, msg.title)

    # -- moving, filtering, searching ---------------------------------------------------------
    def _refilter(self, keep: str | None = None) -> None:
        row = self.current
        self.index.apply()
        self.image_list.reset_view(keep=keep or (row.relpath if row else None))
        self._show_current(immediate=False)
        self._update_status()
        self.save_state()

    def action_cycle_filter(self) -> None:
        """Next filter."""
        self.set_filter(FILTERS[(FILTERS.index(self.index.filter) + 1) % len(FILTERS)])

    def set_filter(self, name: str) -> None:
        """Show only the images that pass filter ``name``."""
        self.index.filter = name
        self._refilter()  # the status line names the filter and the count: no toast

    def action_cycle_sort(self) -> None:
        """Next sort order."""
        self.set_sort(SORTS[(SORTS.index(self.index.sort) + 1) % len(SORTS)])

    def set_sort(self, name: str) -> None:
        """Sort the list by ``name``."""
        self.index.sort = name
        self._refilter()

    def _jump_to(self, predicate: Callable[[Row], bool], what: str) -> None:
        pos = self.index.next_matching(self.image_list.cursor, predicate)
        if pos is None:
            self.notify(f"no {what} image in view", timeout=3)
            return
        self.image_list.cursor = pos

    def action_next_unreviewed(self) -> None:
        """Move to the next unreviewed image."""
        self._jump_to(lambda r: r.status == UNREVIEWED, "unreviewed")

    def action_next_flagged(self) -> None:
        """Move to the next flagged image."""
        self._jump_to(lambda r: r.flagged, "flagged")

    def action_search(self) -> None:
        """Open the search field."""
        field = self.query_one("#search", Input)
        field.add_class("visible")
        field.focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.index.query = event.value
        self._refilter()

    @on(Input.Submitted, "#search")
    def _search_done(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.remove_class("visible")
        self.image_list.focus()

    def on_key(self, event: Any) -> None:
        field = self.query_one("#search", Input)
        if event.key == "escape" and field.has_focus:
            event.stop()
            field.value = ""
            field.remove_class("visible")
            self.image_list.focus()

    def mark_all(self, marked: bool) -> None:
        """Mark (or unmark) every image in view."""
        for r in (self.index.view if marked else self.index.rows):
            r.marked = marked
        self.image_list.refresh()
        self._update_status()

    # -- captions ---------------------------------------------------------------------------------
    def complete_tag(self, prefix: str) -> list[str]:
        """Tag completions for ``prefix`` over the dataset's captions (:class:`tags.TagIndex`)."""
        if self._tag_index is None:
            from ..captions.tags import TagIndex

            self._tag_index = TagIndex.from_captions(r.caption for r in self.index.rows)
        return self._tag_index.complete(prefix, 10)

    def action_edit_caption(self) -> None:
        """Focus the caption editor."""
        if self.current is not None:
            self._sync_panels()
            area = self.editor.area
            area.focus()
            area.move_cursor(area.document.end)

    @on(CaptionEditor.TagFieldOpened)
    def _tag_field_opened(self, msg: CaptionEditor.TagFieldOpened) -> None:
        self._propose_tags(msg.relpath)

    @work(thread=True, exclusive=True, group="tags", exit_on_error=False)
    def _propose_tags(self, relpath: str) -> None:
        """Tag proposals for one image (:func:`tags.propose`: captioner results and the
        tags most used in its folder); reads the store, so in a worker."""
        from ..captions.tags import propose

        try:
            tags = [p.tag for p in propose(self.dataset, relpath, 10)]
        except LookupError:
            tags = []
        self.call_from_thread(self.editor.set_proposals, relpath, tags)

    @on(CaptionEditor.Left)
    def _editor_left(self) -> None:
        self.image_list.focus()

    @on(CaptionEditor.DraftChanged)
    def _draft_changed(self, msg: CaptionEditor.DraftChanged) -> None:
        row = self.index.by_relpath.get(msg.relpath)
        if row is not None:
            row.draft = msg.draft
            self.image_list.refresh_row(row.relpath)

    @on(CaptionEditor.SaveRequested)
    def _save_caption(self, msg: CaptionEditor.SaveRequested) -> None:
        self.save_caption(msg.relpath, msg.text)

    def save_caption(self, relpath: str, text: str, force: bool = False) -> bool:
        """Write the caption through :func:`caption_sync.save_caption` (atomic, history;
        empty text removes the sidecar) and record the decision. When the sidecar
        changed on disk since the editor loaded it, nothing is written: a question
        shows both texts (``force`` skips the check). Returns whether it changed."""
        from ..captions.sync import CaptionConflict, save_caption

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
        if result != "unchanged":
            self.record(Decision(
                relpath, CAPTION_EDIT, digest=row.record.digest if row else None,
                params={"caption": saved}, source="tui"))
        self._caption_saved(relpath, saved)
        self.notify({"written": f"caption saved: {relpath}",
                     "removed": f"caption removed: {relpath} (an empty caption file is refused by "
                                f"kohya; the old text is in the history, u brings it back)",
                     "unchanged": "caption unchanged"}[result], timeout=3 if result == "removed" else 2)
        return result != "unchanged"

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

    def _caption_base(self, relpath: str) -> Any:
        """What the sidecar held when the editor loaded it (a CaptionStamp)."""
        base = self._caption_bases.get(relpath)
        if base is None:
            from ..captions.sync import stamp_of_record

            row = self.index.by_relpath.get(relpath)
            base = stamp_of_record(row.record) if row is not None else None
        return base

    def _load_editor(self, row: Row) -> None:
        """Load ``row``'s caption (or its draft) into the editor and remember the
        sidecar's stamp as the base that saving checks against."""
        from ..captions.sync import stamp_of_record

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

    # -- decisions ------------------------------------------------------------------------------
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

    def on_unmount(self) -> None:
        self.session_lock.release()
        self._decision_pool.shutdown(wait=True)

    # -- review decisions ---------------------------------------------------------------------------
    def action_toggle_before_after(self) -> None:
        """Show the next of: the original, then each enhanced variant (newest first)."""
        row = self.current
        if row is None:
            return
        if not row.variants:
            self.notify("no enhanced variant yet: p enhances this image", timeout=3)
            return
        order: list[str | None] = [None, *(v.cache_key for v in row.variants)]
        key = self.shown_variant(row)
        target = order[(order.index(key) + 1) % len(order)] if key in order else None
        self.showing[row.relpath] = target
        self.query_one(InfoPanel).show(row, target)
        self._schedule_preview(0)

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
        self._update_status()
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
            self._decide(INCLUDE if row.status == EXCLUDED_STATUS else EXCLUDE)

    # -- enhancement ------------------------------------------------------------------------------------
    def last_params(self, row: Row | None = None) -> EnhanceParams:
        """The parameters of the last enhancement run from the TUI, else the suggested defaults."""
        return self.params_with_origin(row)[0]

    def params_with_origin(self, row: Row | None = None) -> tuple[EnhanceParams, str]:
        """``(params, where they come from)``: the last values used in the TUI; else what
        the learning loop suggests for the image's category (``feedback.learn_defaults``);
        else the shipped defaults."""
        stored = self.dataset.store.get_setting(PARAMS_KEY)
        if stored:
            try:
                return EnhanceParams(**stored), "the last values used"
            except (TypeError, ValueError):
                pass
        learn = getattr(feedback, "learn_defaults", None)
        if learn is not None:
            try:
                found = learn(self.dataset.store, row.category if row is not None else None)
            except Exception:  # noqa: BLE001 - suggestions are optional
                found = None
            if found is not None and found.learned:
                changes = ", ".join(f"{k} {v}" for k, v in found.changes.items())
                return found.params, f"suggested from {found.decisions} decisions ({changes})"
        return EnhanceParams(), "the shipped defaults"

    def action_enhance_current(self) -> None:
        """Enhance the current image with the last used parameters."""
        row = self.current
        if row is not None:
            self.start_enhance([row], self.last_params(row))

    def action_enhance_batch(self) -> None:
        """Enhance the marked images, or every image in view."""
        rows = self._bulk_targets()
        if not rows:
            return
        params = self.last_params()
        what = self.index.describe_targets(rows)
        backend = "the Forge server" if self.api_url else "the local upscaler"
        size = (f"short side {params.target_short_side} px" if params.target_short_side
                else f"x{params.scale_factor:g}")
        self.push_screen(
            ConfirmScreen(f"Enhance {what} with {backend}, {size}, "
                          f"upscaler {params.upscaler}?\nResults already in the cache are reused."),
            lambda yes: self.start_enhance(rows, params) if yes else None)

    def action_reprocess(self) -> None:
        """Open the parameters form, then enhance the current image with them."""
        row = self.current
        if row is None:
            return
        params, origin = self.params_with_origin(row)
        self.push_screen(params_form(params, row.relpath, origin),
                         partial(self._reprocess_with, row.relpath))

    def _reprocess_with(self, relpath: str, params: EnhanceParams | None) -> None:
        if params is None:
            return
        row = self.index.by_relpath.get(relpath)
        if row is None:
            return
        self.record(Decision(
            relpath, REPROCESS, digest=row.record.digest, variant=self.shown_variant(row),
            params=params.to_dict(), backend="forge" if self.api_url else "local", source="tui"))
        self.start_enhance([row], params)

    def _make_backend(self) -> Any:
        urls = ([self.api_url] if isinstance(self.api_url, str) else list(self.api_url)) if self.api_url else None
        name = "forge" if urls else os.environ.get("FLUXGYM_COACH_BACKEND", "auto")
        return core.backend_from_settings(None, backend=name, api_urls=urls, api_auth=self.api_auth,
                                          **self.backend_options)

    def _new_job(self, kind: str, label: str, total: int) -> JobSink:
        key = f"{kind}{next(self._job_ids)}"
        sink = JobSink(self, key, kind, label, total)
        self._sinks[key] = sink
        self.query_one(JobsPanel).update_job(sink.progress)
        return sink

    def start_enhance(self, rows: list[Row], params: EnhanceParams) -> str:
        """Start an enhancement job for ``rows``; returns the job key."""
        self.dataset.store.set_setting(PARAMS_KEY, params.to_dict())
        label = "Enhance" if len(rows) > 1 else "Enhance 1"
        sink = self._new_job("enhance", label, len(rows))
        self._enhance_worker(sink, [r.relpath for r in rows], params)
        return sink.progress.key

    @work(thread=True, group="enhance", exit_on_error=False)
    def _enhance_worker(self, sink: JobSink, relpaths: list[str], params: EnhanceParams) -> None:
        key = sink.progress.key

        async def main() -> Any:
            cancel = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._cancels[key] = lambda: loop.call_soon_threadsafe(cancel.set)
            if sink.cancel_requested:
                cancel.set()
            backend = self._make_backend()
            try:  # results selected for export as pending (the core's one selection rule)
                return await core.enhance_images(self.dataset, relpaths, backend, params, cache=self.cache,
                                                 on_event=sink, cancel=cancel)
            finally:
                for note in backend.warnings:
                    sink.warn("server", note)
                await backend.aclose()

        try:
            report = asyncio.run(main())
        except BackendError as exc:
            sink.fail(exc.reason)
            return
        except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps running
            sink.fail(f"enhancement stopped: {exc}")
            return
        finally:
            self._cancels.pop(key, None)
        sink.finish("cancelled" if report.cancelled else "done")
        changed = [o.name for o in report.outcomes.values() if o.entry is not None]
        self.post_message(RowsChanged(changed, show_latest=True))

    def on_rows_changed(self, msg: RowsChanged) -> None:
        cur = self.current
        if msg.relpaths is None:
            self._tag_index = None
            self.index.reload(self.dataset)
            self.index.apply()
            self.image_list.reset_view(keep=cur.relpath if cur else None)
        else:
            self._tag_index = None
            self.index.refresh_rows(self.dataset, msg.relpaths)
            if msg.show_latest:
                for rel in msg.relpaths:
                    row = self.index.by_relpath.get(rel)
                    if row is not None and row.variants:
                        self.showing[rel] = row.variants[0].cache_key
            self.image_list.refresh()
        self._update_status()
        cur = self.current
        if cur is not None and (msg.relpaths is None or cur.relpath in msg.relpaths):
            if self.editor.relpath == cur.relpath and not self.editor.dirty:
                self._load_editor(cur)
            self.query_one(InfoPanel).show(cur, self.shown_variant(cur))
            self._schedule_preview(0)

    # -- jobs ---------------------------------------------------------------------------------------
    def on_job_updated(self, msg: JobUpdated) -> None:
        """Progress of a job: its row moves; problems go to the problems log (``l``);
        one notification per job outcome, naming the first problem and the count."""
        panel = self.query_one(JobsPanel)
        p = msg.progress
        panel.update_job(p)
        problems = [Problem(p.label, item, reason, bad) for item, reason, bad in msg.problems]
        self.problem_log.extend(problems)
        del self.problem_log[:-MAX_PROBLEMS]
        self._job_problems.setdefault(p.key, []).extend(problems)
        if p.status in ("running", "cancelling"):
            return
        self._sinks.pop(p.key, None)
        self.set_timer(4, partial(panel.remove_job, p.key))
        self._notify_outcome(p, self._job_problems.pop(p.key, []))

    def _notify_outcome(self, p: Any, problems: list[Problem]) -> None:
        """The one notification of a finished job (none for a clean success)."""
        if not problems and p.status != "failed":
            return
        failures = [x for x in problems if x.failure]
        first = (failures or problems)[0] if problems else None
        counts = []
        if failures:
            counts.append(f"{len(failures)} failed")
        if len(problems) > len(failures):
            counts.append(plural(len(problems) - len(failures), "warning"))
        text = f"{first.item}: {first.reason}" if first else p.status
        if len(problems) > 1:
            text += f"\n{', '.join(counts)}: l lists them"
        job_failed = p.status == "failed"
        self.notify(text, title=f"{p.label} failed" if job_failed else f"{p.label} {p.status}: "
                    + ", ".join(counts), severity="error" if failures and p.kind != "scan"
                    or job_failed else "warning", timeout=10)

    def action_problems(self) -> None:
        """Show the problems log (every image a job failed on or warned about)."""
        self.push_screen(ProblemsScreen(list(self.problem_log)))

    def running_jobs(self) -> list[str]:
        """Keys of the jobs still running (plugin actions included)."""
        keys = [k for k, s in self._sinks.items() if s.progress.status in ("running", "cancelling")]
        keys += [w.name or "plugin action" for w in self.workers
                 if w.group == "plugin-actions" and w.is_running]
        return keys

    def cancel_job(self, key: str) -> None:
        """Ask a running job to stop (it finishes the items in flight)."""
        sink = self._sinks.get(key)
        if sink is None:
            return
        sink.cancel_requested = True
        sink.progress.status = "cancelling"
        self.query_one(JobsPanel).update_job(sink.progress)
        cancel = self._cancels.get(key)
        if cancel is not None:
            cancel()

    def action_cancel_job(self) -> None:
        """Cancel the newest running job."""
        running = self.running_jobs()
        if not running:
            self.notify("no job is running", timeout=2)
            return
        self.cancel_job(running[-1])
        self.notify(f"cancelling {running[-1]}", timeout=2)

    # -- scan ----------------------------------------------------------------------------------------
    def action_rescan(self) -> None:
        """Rescan the dataset folder."""
        self.rescan()

    def rescan(self, quiet: bool = False) -> None:
        """Start an incremental scan in a worker; ``quiet``: no job row and no audit
        after it (a refresh after a change on disk)."""
        if quiet:
            self._quiet_scan_worker()
            return
        sink = self._new_job("scan", "Scan", 0)
        sink.raise_on_cancel = True
        self._scan_worker(sink)

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def _scan_worker(self, sink: JobSink) -> None:
        from ..plugins.loader import scan_snapshot

        session = getattr(self, "plugin_session", None)  # plugins hear about new and removed images
        snapshot = scan_snapshot(session.project) if session is not None else None
        try:
            with self._scan_lock:
                report = self.dataset.scan(on_event=sink)
        except JobCancelled:
            sink.finish("cancelled")
            self.post_message(RowsChanged(None))
            return
        except Exception as exc:  # noqa: BLE001
            sink.fail(f"scan stopped: {exc}")
            return
        sink.finish("done")
        if session is not None and (report.added or report.updated or report.removed):
            self.call_from_thread(self.run_worker, session.notify_scan(report, snapshot),
                                  group="plugin-events", exit_on_error=False)
        if report.added or report.updated or report.removed or report.captions_updated:
            self.post_message(RowsChanged(None))
        if self.audit_on_start:
            self.call_from_thread(self.run_audit)

    @work(thread=True, group="quiet-scan", exit_on_error=False)
    def _quiet_scan_worker(self) -> None:
        self._scan_for_changes()

    def _scan_for_changes(self) -> Any:
        """One incremental scan without a job row; posts :class:`FilesChanged` when the
        folder changed (run from a worker thread). Returns the report (None: skipped)."""
        if not self._scan_lock.acquire(blocking=False):
            return None  # a scan is running: it will see the change
        try:
            report = self.dataset.scan()
        except Exception:  # noqa: BLE001 - a vanished folder, a locked store: try again later
            # the scan may have stored some changes before failing: the next look that
            # works reloads every row, so none of them is missed
            self._watch_missed = True
            _log.debug("looking for changes on disk failed", exc_info=True)
            return None
        finally:
            self._scan_lock.release()
        changed = sorted({*report.updated, *report.captions_updated})
        missed, self._watch_missed = self._watch_missed, False
        if report.added or report.removed or changed or missed:
            self.post_message(FilesChanged(changed, list(report.added), list(report.removed), missed))
        return report

    @work(thread=True, exclusive=True, group="watch", exit_on_error=False)
    def _watch_worker(self) -> None:
        """Look for changes made on disk by other programs (another editor, another
        TUI, a file manager) every ``watch_interval`` seconds, or 20 times the last
        look's duration when that is longer (10,000 images stay cheap)."""
        import time
        from textual.worker import get_current_worker

        worker = get_current_worker()
        wait = float(self.watch_interval or 0)
        while wait > 0 and not worker.is_cancelled:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and not worker.is_cancelled:
                self._watch_wake.wait(min(0.25, max(0.0, deadline - time.monotonic())))
                if self._watch_wake.is_set():
                    self._watch_wake.clear()
                    break
            if worker.is_cancelled:
                return
            started = time.monotonic()
            self._scan_for_changes()
            # 20 times the look's duration keeps the watcher under 5 % of a core; capped so
            # a slow look (a busy disk) does not leave the list stale for minutes
            wait = max(float(self.watch_interval or 0),
                       min(WATCH_MAX_WAIT, 20 * (time.monotonic() - started)))

    def on_files_changed(self, msg: "FilesChanged") -> None:
        """Files changed on disk: refresh the rows they touch; the editor takes the new
        caption unless it holds unsaved text (then saving will ask)."""
        cur = self.current
        self._tag_index = None
        if msg.added or msg.removed or msg.reload:
            self.index.reload(self.dataset)
            self.image_list.reset_view(keep=cur.relpath if cur else None)
        else:
            self.index.refresh_rows(self.dataset, msg.changed)
            if self.index.filter != "all" or self.index.query:
                self._refilter()
            self.image_list.refresh()
        self._update_status()
        cur = self.current
        if cur is not None and cur.relpath in msg.changed and self.editor.relpath == cur.relpath:
            if self.editor.dirty:
                self.notify(f"{cur.relpath}: its caption changed on disk; your unsaved text is kept "
                            f"(ctrl+s shows both and asks)", severity="warning", timeout=8)
            else:
                self._load_editor(cur)
            self.query_one(InfoPanel).show(cur, self.shown_variant(cur))
        n = len(msg.changed) + len(msg.added) + len(msg.removed)
        self.notify(f"{plural(n, 'file')} changed on disk: list refreshed", timeout=3)

    # -- audit (issue 7) --------------------------------------------------------------------------
    def action_audit(self) -> None:
        """Audit the images again (findings in the list and the info panel)."""
        self.run_audit()

    def run_audit(self) -> None:
        """Start the audit in a worker (extra measures are taken once per image content)."""
        sink = self._new_job("audit", "Audit", len(self.index.rows))
        sink.raise_on_cancel = True
        self._audit_worker(sink)

    @work(thread=True, exclusive=True, group="audit", exit_on_error=False)
    def _audit_worker(self, sink: JobSink) -> None:
        from ..audit.rules import audit_dataset

        trigger = (self.dataset.store.get_setting(EXPORT_KEY, {}) or {}).get("trigger") or None
        try:
            report = audit_dataset(self.dataset, scan=False, trigger=trigger, on_event=sink)
        except JobCancelled:
            sink.finish("cancelled")
            return
        except Exception as exc:  # noqa: BLE001 - the review goes on without findings
            sink.fail(f"audit stopped: {exc}")
            return
        sink.finish("done")
        self.post_message(AuditDone({rel: a.findings for rel, a in report.images.items()},
                                    {rel: a.category for rel, a in report.images.items()}))

    def on_audit_done(self, msg: "AuditDone") -> None:
        self.index.set_findings(msg.findings, msg.categories)
        cur = self.current
        if self.index.filter in ("flagged",) or self.index.sort == "findings":
            self._refilter()
        self.image_list.refresh()
        if cur is not None:
            self.query_one(InfoPanel).show(cur, self.shown_variant(cur))

    # -- bulk caption edits ---------------------------------------------------------------------------
    def action_bulk_trigger(self) -> None:
        """Put the trigger word first in the captions of the marked / in-view images."""
        targets = self._bulk_targets()
        if not targets:
            return
        trigger = (self.dataset.store.get_setting(EXPORT_KEY, {}) or {}).get("trigger", "")

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
        status = "cancelled" if sink.cancel_requested else "done"
        sink(JobFinished(job, "bulk", status, len(changed), len(sink.failures), {"changed": len(changed)}))
        self.post_message(RowsChanged(changed))
        self.call_from_thread(self.notify, f"{kind}: {len(changed)} captions changed", timeout=4)

    # -- captioning (issue 5) ----------------------------------------------------------------------
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
        from ..captions import job as captioning

        saved_caption = load_settings(self.dataset.store).caption  # backend, server, model
        names = ", ".join(captioning.BACKENDS)
        default_backend = saved_caption.backend
        saved = {"url": saved_caption.options.get("base_url") or saved_caption.options.get("url", ""),
                 "model": saved_caption.options.get("model") or saved_caption.options.get("model_path", ""),
                 "mode": saved_caption.mode}

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
        from ..captions.job import save_default_backend

        # A destructive mode is never remembered as the next form's default (settings refuse it).
        save_default_backend(self.dataset, opts["backend"], _caption_options(opts, self.api_url))
        if opts["mode"] == "overwrite":
            self._confirm_overwrite(relpaths, opts)
            return
        self._run_caption(relpaths, opts)

    def _run_caption(self, relpaths: list[str], opts: dict[str, Any]) -> None:
        sink = self._new_job("caption", "Caption", len(relpaths))
        self._caption_worker(sink, relpaths, opts)

    @work(thread=True, exclusive=True, group="caption-check", exit_on_error=False)
    def _confirm_overwrite(self, relpaths: list[str], opts: dict[str, Any]) -> None:
        """Overwrite mode: ask first when it would replace captions a person wrote
        (:func:`caption_sync.user_written` reads each sidecar, so in a worker)."""
        from ..captions.sync import user_written

        edited = user_written(self.dataset, relpaths)
        if not edited:
            self.call_from_thread(self._run_caption, relpaths, opts)
            return
        names = ", ".join(edited[:3]) + (f" and {len(edited) - 3} more" if len(edited) > 3 else "")
        question = (f"Overwrite {plural(len(edited), 'caption')} written or edited by hand "
                    f"({names})?\nThe old text stays in the caption history (u undoes).")
        self.call_from_thread(self.push_screen, ConfirmScreen(question),
                              lambda yes: self._run_caption(relpaths, opts) if yes else None)

    @work(thread=True, group="caption", exit_on_error=False)
    def _caption_worker(self, sink: JobSink, relpaths: list[str], opts: dict[str, Any]) -> None:
        key = sink.progress.key
        options = _caption_options(opts, self.api_url)

        async def main() -> Any:
            cancel = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._cancels[key] = lambda: loop.call_soon_threadsafe(cancel.set)
            if sink.cancel_requested:
                cancel.set()
            backend = core.captioner_from_settings(None, backend=opts["backend"], **options)
            try:
                return await core.caption_images(
                    self.dataset, relpaths, backend, mode=opts["mode"],
                    trigger=opts.get("trigger") or None, cache=self.cache, on_event=sink,
                    cancel=cancel)
            finally:
                await backend.aclose()

        try:
            report = asyncio.run(main())
        except Exception as exc:  # noqa: BLE001 - e.g. unknown option, unreachable server
            sink.fail(getattr(exc, "reason", None) or str(exc))
            return
        finally:
            self._cancels.pop(key, None)
        if getattr(report, "fatal", None):
            sink.fail(report.fatal)
        else:
            sink.finish("cancelled" if getattr(report, "cancelled", False) else "done")
        self.post_message(RowsChanged(relpaths))

    # -- export ---------------------------------------------------------------------------------------
    def action_export(self) -> None:
        """Open the export form, then export in a worker."""
        saved = self.dataset.store.get_setting(EXPORT_KEY, {}) or {}
        fields = [
            Field("out_dir", "output folder", saved.get("out_dir", str(self.dataset.root.parent / "fluxgym"))),
            Field("name", "dataset name", saved.get("name", self.dataset.root.name)),
            Field("trigger", "trigger word", saved.get("trigger", "")),
            Field("resolution", "resolution", str(saved.get("resolution", 1024))),
            Field("repeats", "repeats", str(saved.get("repeats", 10))),
            Field("vram", "train.sh VRAM (20G/16G/12G)", saved.get("vram", "20G")),
            Field("force", "overwrite (y/n)", "y" if saved.get("force") else "n"),
            Field("only_accepted", "only accepted (y/n)", "y" if saved.get("only_accepted") else "n"),
        ]
        self.push_screen(FormScreen("Export for Fluxgym / kohya sd-scripts", fields, validate_export,
                                    "Export", note="Each image is exported as its selected variant: "
                                                   "the accepted enhanced result, else the original.",
                                    id="export-form"), self._start_export)

    def _start_export(self, opts: dict[str, Any] | None) -> None:
        if not opts:
            return
        self.dataset.store.set_setting(EXPORT_KEY, opts)
        sink = self._new_job("export", "Export", len(self.index.rows))
        self._export_worker(sink, opts)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def _export_worker(self, sink: JobSink, opts: dict[str, Any]) -> None:
        from ..export.fluxgym import export_dataset

        sink.raise_on_cancel = True
        try:
            relpaths = None
            if opts.get("only_accepted"):
                relpaths = [rel for rel, (_, status) in self.dataset.store.selection().items()
                            if status == "accepted"]
            report = export_dataset(self.dataset, Path(opts["out_dir"]), opts["name"],
                                    opts["trigger"] or None, resolution=opts["resolution"],
                                    repeats=opts["repeats"], force=opts["force"], on_event=sink,
                                    cache=self.cache, relpaths=relpaths,
                                    vram=opts.get("vram", "20G"))
        except JobCancelled:
            sink.finish("cancelled")
            return
        except Exception as exc:  # noqa: BLE001 - e.g. the folder exists without --force
            sink.fail(f"export stopped: {exc}")
            return
        sink.finish("done")
        notes = []
        if report.below_resolution:
            notes.append(f"{len(report.below_resolution)} below {opts['resolution']} px "
                         f"(enhance them first)")
        if report.placeholders:
            notes.append(f"{len(report.placeholders)} with the trigger word as placeholder caption")
        if report.skipped:
            notes.append(_skipped_note(report.skipped))
        if report.failed:
            notes.append(f"{len(report.failed)} failed")
        if not report.fluxgym_root:
            notes.append("no sd-scripts/ there: run train.sh from your Fluxgym folder")
        elif report.missing_models:
            notes.append(f"train.sh needs models not downloaded yet: {', '.join(report.missing_models)}")
        self.call_from_thread(
            self.notify, f"{len(report.files)} images to {report.dataset_dir}; dataset.toml and "
                         f"train.sh in {report.outputs_dir}" + ("\n" + "; ".join(notes) if notes else ""),
            title="export done", timeout=10)

    # -- plugins (issue 6) -------------------------------------------------------------------------------
    def _load_plugins(self) -> None:
        """Open the dataset's plugins (:mod:`.plugin_views`): their actions go to the
        command palette, their background tasks get a progress panel."""
        if not self.plugins_on_start or getattr(self, "plugin_session", None) is not None:
            return
        from . import plugin_views

        try:
            self.plugin_actions = list(plugin_views.palette_actions(self))
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the review
            self.notify(f"plugins not loaded: {exc}", severity="warning", timeout=6)
            return
        session = getattr(self, "plugin_session", None)
        queue = getattr(getattr(session, "project", None), "task_queue", None)
        if queue is not None:
            self.query_one(JobsPanel).follow(queue)  # rows that leave once finished, as jobs do

    def show_relpath(self, relpath: str) -> None:
        """Move the cursor to an image (clearing the filter and search when it is hidden)."""
        if relpath not in self.index.by_relpath:
            self.notify(f"{relpath} is not in this dataset", severity="warning", timeout=4)
            return
        if self.index.position(relpath) is None:
            self.index.filter, self.index.query = "all", ""
            self.query_one("#search", Input).value = ""
            self._refilter(keep=relpath)
        pos = self.index.position(relpath)
        if pos is not None:
            self.image_list.cursor = pos
        self.image_list.focus()

    #: Actions that still work while a form, the help or a question is open.
    MODAL_SAFE_ACTIONS = frozenset({"quit", "command_palette", "help"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Review keys do nothing while a modal screen is open (it has its own keys)."""
        if len(self.screen_stack) > 1 and action not in self.MODAL_SAFE_ACTIONS:
            return False
        if action in TYPING_ACTIONS and isinstance(self.focused, (Input, TextArea)):
            return False  # there the key types a character: not in the footer
        return True

    # -- palette, help, quit ----------------------------------------------------------------------------
    def palette_commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        """Every command of the palette: ``(title, callback, help)``."""
        out: list[tuple[str, Callable[[], Any], str]] = []
        keys = action_keys()
        for action, description in action_descriptions():
            title = description[0].upper() + description[1:]
            out.append((title, partial(self.run_action, action), keys[action]))
        for f in FILTERS:
            out.append((f"Filter: {FILTER_LABELS[f]}", partial(self.set_filter, f), "show only these"))
        for s in SORTS:
            out.append((f"Sort by {s}", partial(self.set_sort, s), "order of the list"))
        out.append(("Mark all images in view", partial(self.mark_all, True), "for bulk actions"))
        out.append(("Clear all marks", partial(self.mark_all, False), "for bulk actions"))
        for key in self.running_jobs():
            out.append((f"Cancel job {key}", partial(self.cancel_job, key), "stop it"))
        out.extend(self.plugin_actions)
        return out

    def action_help(self) -> None:
        """Show every key."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_command_palette(self) -> None:
        """Open the command palette."""
        super().action_command_palette()

    async def action_quit(self) -> None:
        """Quit; asks first when a job runs or a caption has unsaved edits."""
        running = self.running_jobs()
        drafts = [r.relpath for r in self.index.rows if r.draft is not None]
        if not running and not drafts:
            self._quit_now()
            return
        reasons = []
        if running:
            reasons.append(f"{len(running)} job(s) still running (they will be cancelled; "
                           f"enhancement resumes next time)")
        if not drafts:
            self.push_screen(ConfirmScreen("Quit?\n" + "\n".join(reasons)),
                             lambda yes: self._quit_now() if yes else None)
            return
        reasons.append(f"{plural(len(drafts), 'caption')} with unsaved edits: "
                       + ", ".join(drafts[:3]) + (" ..." if len(drafts) > 3 else ""))

        def answered(choice: str | None) -> None:
            if choice == "save":
                self._save_drafts_and_quit(drafts)
            elif choice == "discard":
                self._quit_now()
        self.push_screen(ChoiceScreen("Quit?\n" + "\n".join(reasons), [
            ("s", "save the drafts and quit", "save"),
            ("y", "quit, drafts lost", "discard"), ("n", "stay", None)], id="quit-question"),
            answered)

    def _save_drafts_and_quit(self, relpaths: list[str]) -> None:
        """Save every draft (each checked against the disk); quit when all were saved,
        else stay on the first one that needs an answer or failed."""
        for rel in relpaths:
            row = self.index.by_relpath.get(rel)
            if row is None or row.draft is None:
                continue
            self.save_caption(rel, row.draft)
            if row.draft is not None:  # a conflict question, or an error: stay
                self.show_relpath(rel)
                return
        self._quit_now()

    def _quit_now(self) -> None:
        for key in self.running_jobs():
            self.cancel_job(key)
        self.save_state()
        self.wait_decisions()
        self.exit()


def _skipped_note(skipped: dict[str, str]) -> str:
    """``"3 skipped: 2 excluded from the export in the review, 1 unreadable (a.jpg)"``."""
    excluded = [r for r, why in skipped.items() if why.startswith("excluded")]
    unreadable = [r for r in skipped if r not in excluded]
    parts = []
    if excluded:
        parts.append(f"{len(excluded)} excluded from the export in the review")
    if unreadable:
        parts.append(f"{len(unreadable)} unreadable ({', '.join(unreadable[:3])}"
                     + (", ..." if len(unreadable) > 3 else "") + ")")
    return f"{len(skipped)} skipped: " + ", ".join(parts)


def _safe_mode(mode: str | None) -> str:
    """The caption mode a form may start with: never ``overwrite`` (destructive)."""
    return mode if mode and mode != "overwrite" else "only-missing"


def _trigger_first(trigger: str, text: str) -> str:
    """The caption with the trigger word first (:func:`captions.apply_trigger`)."""
    return caption_rules.apply_trigger(text, trigger)


def _caption_options(opts: dict[str, Any], api_url: str | None) -> dict[str, Any]:
    """The caption backend's options from the caption form's server URL and model fields."""
    backend, url, model = opts["backend"], opts.get("url", ""), opts.get("model", "")
    if backend == "openai":
        return {k: v for k, v in (("base_url", url), ("model", model)) if v}
    if backend == "forge":
        return {k: v for k, v in (("url", url or api_url), ("model", model)) if v}
    if backend == "florence2" and model:
        return {"model_path": model}
    return {}


def _replace_text(find: str, replace: str, text: str) -> str:
    """Literal search and replace, with the separators tidied."""
    new = text.replace(find, replace)
    if new == text:
        return text
    parts = [p.strip() for p in new.split(",")]
    return ", ".join(p for p in parts if p)


def params_form(params: EnhanceParams, relpath: str, origin: str = "the last values used") -> FormScreen:
    """The reprocess form, pre-filled with ``params`` (``origin`` says from where);
    returns EnhanceParams."""
    values = params.to_dict()
    fields = [Field(name, label, str(values[name])) for name, label, _ in PARAM_FIELDS]

    def validate(v: dict[str, str]) -> EnhanceParams:
        changes: dict[str, Any] = {}
        for name, label, kind in PARAM_FIELDS:
            raw = v[name].strip()
            try:
                changes[name] = kind(raw) if kind is not str else v[name]
            except ValueError:
                raise ValueError(f"{label}: {raw!r} is not a {'number' if kind is float else 'whole number'}") from None
        if changes["steps"] < 1:
            raise ValueError("steps: at least 1")
        return params.with_(**changes, target_short_side=None)

    return FormScreen(f"Reprocess {relpath}", fields, validate, "Reprocess",
                      note=f"Pre-filled with {origin}. Enter moves down; ctrl+s runs.",
                      id="params-form")


def validate_export(v: dict[str, str]) -> dict[str, Any]:
    """Parse the export form."""
    if not v["out_dir"].strip():
        raise ValueError("output folder: required")
    if not v["name"].strip():
        raise ValueError("dataset name: required")
    try:
        resolution, repeats = int(v["resolution"]), int(v["repeats"])
    except ValueError:
        raise ValueError("resolution and repeats are whole numbers") from None
    if resolution < 256 or repeats < 1:
        raise ValueError("resolution at least 256, repeats at least 1")
    from ..export.train_script import VRAM_CHOICES

    vram = v.get("vram", "20G").strip().upper()
    vram = vram if vram.endswith("G") else vram + "G"
    if vram not in VRAM_CHOICES:
        raise ValueError(f"train.sh VRAM: one of {', '.join(VRAM_CHOICES)}")
    return {"out_dir": os.path.expanduser(v["out_dir"].strip()), "name": v["name"].strip(),
            "trigger": v["trigger"].strip(), "resolution": resolution, "repeats": repeats,
            "vram": vram,
            "force": _yes(v["force"]), "only_accepted": _yes(v.get("only_accepted", "n"))}


def _yes(text: str) -> bool:
    return text.strip().lower() in ("y", "yes", "1", "true")
