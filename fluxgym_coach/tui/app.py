"""The review app: ``fluxgym-coach tui DATASET``.

Layout: a status line; the image list (left) with an incremental search
field; the preview, the info panel and the caption editor (right); the jobs
panel; the footer. Every action is a key (see :mod:`.keys`), a command of the
palette (ctrl+p) and a line of the help screen.

The app presents; the core works. :class:`ReviewApp` holds the layout, the
status line, the palette and quitting; the actions live by concern in
:mod:`.actions` (one mixin class each: view, navigate, review, captions,
bulk, enhance, jobs, scan, export) and the messages their workers post in
:mod:`.messages`. Scans, thumbnails, enhancement, captioning, bulk caption
edits and export run in workers that call the same core functions as the CLI
(:meth:`Dataset.scan`, :func:`core.enhance_images`, :func:`export.export_dataset`,
...). Their events reach the UI as throttled :class:`~.messages.JobUpdated`
messages. Every review decision goes through :func:`feedback.record_decision`,
so reopening the dataset restores it.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, ComposeResult
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.reactive import reactive
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.timer import Timer
from textual.widgets import Footer, Input, TextArea

from .. import core
from ..cache import ImageCache
from ..dataset import Dataset
from ..store import STORE_DIRNAME
# re-exported under their old names (tests and other modules import them from here)
from .actions.bulk import BulkCaptionActions, _replace_text, _trigger_first  # noqa: F401
from .actions.captions import CaptionActions, _safe_mode  # noqa: F401
from .actions.crop import CropActions
from .actions.enhance import PARAM_FIELDS, PARAMS_KEY, EnhanceActions, params_form
from .actions.export import EXPORT_KEY, ExportActions, _skipped_note, _yes, validate_export  # noqa: F401
from .actions.jobs import MAX_PROBLEMS, JobActions
from .actions.navigate import NavigateActions
from .actions.review import _STATES, ReviewActions  # noqa: F401
from .actions.scan import WATCH_MAX_WAIT, ScanActions
from .actions.view import PREVIEW_DELAY, PreviewActions
from .jobs import JobSink
from .keys import TYPING_ACTIONS, action_descriptions, action_keys, app_bindings
from .messages import AuditDone, DecisionFailed, FilesChanged, JobUpdated, RowsChanged, ThumbReady
from .model import FILTER_LABELS, FILTERS, SORTS, UNREVIEWED, ImageIndex, Row, plural
from .screens.forms import ChoiceScreen, ConfirmScreen
from .screens.help import HelpScreen
from .screens.problems import Problem
from .thumbnails import ThumbnailCache
from .widgets.caption_editor import CaptionEditor
from .widgets.image_list import ImageList
from .widgets.info_panel import InfoPanel
from .widgets.jobs_panel import JobsPanel
from .widgets.preview import Preview, preview_status
from .live import LiveActions, placeholder
from .widgets.status_line import Part, StatusLine

STATE_KEY = "tui.state"


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


class ReviewApp(PreviewActions, CropActions, NavigateActions, ReviewActions, CaptionActions, BulkCaptionActions,
                EnhanceActions, JobActions, ScanActions, ExportActions, LiveActions, App[None]):
    """Keyboard-driven review of one dataset (see the module docstring).

    ``dataset``: the folder. ``preview``: ``auto``, ``kitty``, ``sixel``,
    ``halfcell``, ``unicode`` or ``off``. ``api_url``: a Forge/A1111 server for
    enhancement, or a list of them (a pool); ``api_auth`` their ``user:password``.
    ``backend``: the enhancement backend's name as the CLI's ``--backend`` takes it
    (``auto``: forge when a server is given, else the embedded upscaler; see
    :func:`core.resolve_backend_name`); the app reads no environment variable for
    it, the ``tui`` command resolves it. ``scan``: run an
    incremental scan at start; ``audit``: then audit the images (findings
    in the list and the info panel); ``plugins``: open the dataset's plugins
    (their actions in the command palette). ``cache_dir``: the result cache root.
    """

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "fluxgym-coach"
    BINDINGS = app_bindings()
    COMMANDS = App.COMMANDS | {ReviewCommands}
    ENABLE_COMMAND_PALETTE = True

    #: The view state: assigning one (a key, the palette, the search field) re-applies
    #: the list's filter, search and sort through its watcher, which also redraws the
    #: list and the status line and remembers the state. ``always_update``: choosing
    #: the filter in force again re-applies it (rows may have changed since).
    filter_name: reactive[str] = reactive("all", init=False, always_update=True)
    sort_name: reactive[str] = reactive("name", init=False, always_update=True)
    search_text: reactive[str] = reactive("", init=False, always_update=True)
    #: The counted view state (:meth:`NavigateActions.recount` brings them to the rows):
    #: images marked for bulk actions, images with a review decision, ``(shown, total)``.
    #: The status line follows them and the view state above through watchers only.
    marked: reactive[int] = reactive(0, init=False)
    reviewed: reactive[int] = reactive(0, init=False)
    view_counts: reactive[tuple[int, int]] = reactive((0, 0), init=False)

    def __init__(self, dataset: str | Path | Dataset, *, preview: str = "auto",
                 api_url: str | Sequence[str] | None = None, api_auth: str | None = None,
                 backend: str = "auto", scan: bool = True,
                 cache_dir: str | Path | None = None, backend_options: dict[str, Any] | None = None,
                 thumbnail_side: int = 384, audit: bool = True, plugins: bool = True,
                 watch_interval: float | None = 2.0) -> None:
        super().__init__()
        self.dataset = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
        self.preview_mode = preview
        self.api_urls: list[str] = [api_url] if isinstance(api_url, str) else list(api_url or [])
        self.api_auth = api_auth
        self.backend_name = core.resolve_backend_name(backend, self.api_urls)
        self.backend_options = backend_options or {}
        self.scan_on_start = scan
        self.cache = ImageCache(cache_dir)
        self.thumbs = ThumbnailCache(self.cache, max_side=thumbnail_side)
        self.index = ImageIndex.load(self.dataset)
        if scan and not self.index.rows:  # a first open: the first names are in the first frame
            self.index = ImageIndex(Row(placeholder(rel, facts)) for rel, facts in self._first_names().items())
        self.showing: dict[str, str | None] = {}  # relpath -> variant key shown (None: original)
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

    def _first_names(self) -> dict[str, dict[str, int]]:
        """The first images the folder walk finds (:meth:`Dataset.first_images`: no
        reads, no store), listed before the first paint of a first open; the scan
        started after it lists the rest and reads them all."""
        try:
            return self.dataset.first_images()
        except OSError:  # the scan says what is wrong
            return {}

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
            self.set_reactive(ReviewApp.filter_name, state["filter"])
        if state.get("sort") in SORTS:
            self.set_reactive(ReviewApp.sort_name, state["sort"])
        self.index.filter, self.index.sort = self.filter_name, self.sort_name
        self.index.apply()
        self.image_list.reset_view(keep=state.get("cursor"))
        self._restored = True
        self.image_list.focus()
        self._show_current(immediate=True)
        self._update_status()
        # Background work starts once the first screen is painted.
        self.call_after_refresh(self._after_first_paint)

    def _after_first_paint(self) -> None:
        """The start-up work once the first screen is painted: plugins, the
        other-session check, the scan (or the audit), the watcher, then the preview's
        image widget."""
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
        self.call_after_refresh(self._prepare_preview)

    def _prepare_preview(self) -> None:
        try:
            self.query_one(Preview).prepare()
        except NoMatches:  # closing
            pass

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
        if self.marked:
            parts.append(Part(f"{self.marked} marked", 1))
        reviewed = sum(1 for r in idx.rows if r.status != UNREVIEWED)
        parts.append(Part(f"{reviewed} reviewed", 3))
        parts.append(Part(self._backend_label(), 5))
        if self.other_session is not None:
            parts.append(Part("[b]also open elsewhere[/b]", 1))
        parts.append(Part(preview_status(self.preview_mode, self.console.color_system), 2))
        self.query_one("#status", StatusLine).set_parts(parts)

    @property
    def api_url(self) -> str | None:
        """The first enhancement server (None: none given)."""
        return self.api_urls[0] if self.api_urls else None

    def _backend_label(self) -> str:
        """``NAME backend`` for an embedded one (``realesrgan backend``, ``auto backend``...),
        or ``forge HOST:PORT`` (``+N`` for a pool), credentials removed."""
        if self.backend_name != "forge":
            return f"{self.backend_name} backend"
        from ..enhance.backends.forge import redact_url

        hosts = [redact_url(u).split("://", 1)[-1].rstrip("/") for u in self.api_urls or [core.DEFAULT_FORGE_URL]]
        return "forge " + hosts[0] + (f" +{len(hosts) - 1}" if len(hosts) > 1 else "")

    def save_state(self) -> None:
        """Remember the cursor, filter and sort in the store (restored on reopen)."""
        if not self._restored:
            return
        row = self.current
        self.dataset.store.set_setting(STATE_KEY, {
            "cursor": row.relpath if row else None, "filter": self.index.filter,
            "sort": self.index.sort})
        self.save_search()

    # -- messages from the widgets (decorated handlers stay here: Textual collects
    # ``@on`` handlers from the App subclass's own body, not from plain mixins) ------
    @on(ImageList.Highlighted)
    def _on_highlighted(self, event: ImageList.Highlighted) -> None:
        try:
            self._cursor_moved()
        except NoMatches:  # the cursor moved just before the app closed
            pass

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.search_text = event.value

    @on(Input.Submitted, "#search")
    def _search_done(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.remove_class("visible")
        self.image_list.focus()

    @on(ImageList.MarksChanged)
    def _marks_changed(self) -> None:
        self.recount_marks()

    @on(CaptionEditor.TagFieldOpened)
    def _tag_field_opened(self, msg: CaptionEditor.TagFieldOpened) -> None:
        self._propose_tags(msg.relpath)

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

    def on_unmount(self) -> None:
        self.session_lock.release()
        self._decision_pool.shutdown(wait=True)

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
        return out + self.resume_commands()

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


__all__ = ["AuditDone", "DecisionFailed", "EXPORT_KEY", "FilesChanged", "JobUpdated", "MAX_PROBLEMS",
           "PARAMS_KEY", "PARAM_FIELDS", "PREVIEW_DELAY", "ReviewApp", "ReviewCommands", "RowsChanged",
           "STATE_KEY", "ThumbReady", "WATCH_MAX_WAIT", "params_form", "validate_export"]
