"""The application core's job API: the one place where a dataset-level job is decided.

Every front end (the CLI, the TUI, the built-in plugins, the Panoptic
adapter) calls these functions and only presents their events and reports;
none of them builds a backend, opens SQL or runs a pipeline itself.

=========================  =====================================================
:func:`scan`               index the folder; the dataset's plugins (when set up)
                           hear of every image they have not seen yet
:func:`enhance_images`     upscale / colorize images; results are recorded as
                           variants and selected for export (rule below)
:func:`caption_images`     write captions with a caption backend
:func:`edit_captions`      bulk caption edits (trigger word first, replace) as
                           one undoable operation, recorded as review decisions
:func:`audit_dataset`      quality and caption findings
:func:`export_dataset`     the Fluxgym / kohya dataset, dataset.toml, train.sh
:func:`prepare_dataset`    scan -> enhance what is too small -> export
:func:`backend_from_settings` / :func:`captioner_from_settings`
                           build the backend a job uses from the dataset's
                           typed settings (:mod:`fluxgym_coach.settings`) and
                           what the user gave on this run
=========================  =====================================================

**Events and cancellation.** Each job takes ``on_event`` (an
:data:`~fluxgym_coach.events.EventSink`: JobStarted, ItemDone, ItemFailed,
ItemWarning, InFlightProgress, JobFinished) and is cancelled the same way:
cancelling the asyncio task (Ctrl-C under :func:`asyncio.run`, Textual's
``Worker.cancel()``) stops it and leaves it resumable. Blocking stages (the
folder scan, the audit's measures, the export's writes, bulk caption edits)
run in a thread through :func:`run_blocking`: the task's cancellation sets
their cancel token, checked at each event, and the task ends once the thread
has stopped. Enhance and caption take a ``cancel`` event as well: set, they
stop after the items in flight and return their report (``cancelled=True``).

**Selection rule (enhance).** A new result is selected for export with the
status ``pending`` unless the user already decided for that image (accepted
another variant, or rejected the enhancement): a pending result is exported
until the user rejects it. The CLI, ``prepare``, the TUI's ``b`` and the
``core.enhance`` plugin action all follow it, because they all call
:func:`enhance_images`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .cancellation import JobCancelled, cancellable_sink, run_blocking
from .errors import FluxgymCoachError
from .enhance.defaults import EnhanceDefaults, enhance_defaults
from .events import EventSink, null_sink
from .settings import load_settings, strip_credentials, update_settings  # no pydantic until used
from .statuses import ReviewStatus

if TYPE_CHECKING:  # pragma: no cover - imported lazily at run time
    from .audit.rules import AuditReport
    from .settings_models import DatasetSettings
    from .enhance.backends.base import EnhanceBackend, EnhanceParams
    from .captions.backends.base import CaptionBackend
    from .captions.bulk import BulkReport
    from .captions.job import CaptionReport
    from .dataset import Dataset, ScanReport
    from .export.fluxgym import ExportReport
    from .cache import ImageCache
    from .enhance.job import EnhanceReport
    from .export.prepare import PrepareReport

#: The Forge address used when the forge backend is asked for without a URL.
DEFAULT_FORGE_URL = "http://127.0.0.1:7860"


# -- scan -----------------------------------------------------------------------------------------
async def scan(dataset: "Dataset", on_event: EventSink = null_sink, *, headers: bool = False,
               plugins: "RunningPlugins | None" = None) -> "ScanReport":
    """Bring the store up to date with the folder; returns the :class:`ScanReport`.

    The observers of the dataset (its plugins, when ``plugins.toml`` sets
    some up and they are trusted) are notified of every image added or
    changed, and of every image in the store they were never told about
    (one first indexed by ``export``, ``audit``, ``caption`` or the TUI's
    watcher), through :func:`fluxgym_coach.plugins.loader.notify_scan`.
    ``plugins``: the plugins the caller already runs (the TUI's plugin
    session, :class:`RunningPlugins`) are told instead of a fresh load.

    The scan streams what it finds as events (``ItemsFound``, ``ItemsStored``, see
    :meth:`Dataset.scan <fluxgym_coach.dataset.Dataset.scan>`); ``headers`` adds the
    header pass (sizes of new images before they are read). The folder scan runs
    in a thread (:func:`run_blocking`): cancelling the task stops it at its next
    image, keeping the records it committed."""
    from .plugins.loader import scan_snapshot, scan_with_plugins

    def run(sink: EventSink) -> Awaitable["ScanReport"]:
        return run_blocking(dataset.scan, on_event=sink, headers=headers)

    if plugins is None:
        return await scan_with_plugins(dataset, on_event, run=run)
    snapshot = await asyncio.to_thread(scan_snapshot, plugins.project)
    report = await run(on_event)
    await plugins.notify_scan(report, snapshot)
    return report


class RunningPlugins(Protocol):
    """Plugins a front end keeps running (the TUI's ``PluginSession``): ``project`` (the
    :class:`~fluxgym_coach.plugins.Project`) and ``notify_scan(report, snapshot)``, which
    runs :func:`fluxgym_coach.plugins.loader.notify_scan` once the plugins have started."""

    project: Any

    async def notify_scan(self, report: "ScanReport", snapshot: Any) -> None: ...


def scan_blocking(dataset: "Dataset", on_event: EventSink = null_sink) -> "ScanReport":
    """:func:`scan` for synchronous code (a CLI command, a worker thread without a loop).

    Raises RuntimeError when called from a running event loop (await :func:`scan` there)."""
    return asyncio.run(scan(dataset, on_event))


# -- backends ---------------------------------------------------------------------------------------
def resolve_backend_name(name: str | None, api_urls: Sequence[str] | None) -> str:
    """The enhancement backend a job uses: ``auto`` is ``forge`` when a server is given,
    else stays ``auto`` (the registry's :func:`~fluxgym_coach.enhance.backends.base.auto_enhance_backend`
    picks Real-ESRGAN, the user's model file or the Pillow fallback); any other name
    is returned as given (the backend registry refuses unknown ones)."""
    name = name or "auto"
    if name == "auto":
        return "forge" if api_urls else "auto"
    return name


def backend_from_settings(settings: DatasetSettings | None = None, *, backend: str | None = None,
                          api_urls: Sequence[str] | None = None, api_auth: str | None = None,
                          **options: Any) -> "EnhanceBackend":
    """Build the enhancement backend for a job.

    What the user gave on this run (``backend``, ``api_urls``, ``api_auth``,
    backend ``options``) wins over the dataset's ``settings.enhance``; with
    neither, ``auto``. ``api_auth`` (``user:password``) is passed to the
    backend and never stored. Raises ValueError for an unknown backend name
    or option."""
    from .enhance.backends.base import get_enhance_backend

    saved = settings.enhance if settings is not None else None
    urls = list(api_urls or (saved.api_urls if saved else []))
    name = resolve_backend_name(backend or (saved.backend if saved else None), urls)
    if name == "forge":
        options = {"api_url": urls or [DEFAULT_FORGE_URL], **options}
        if api_auth:
            options["api_auth"] = api_auth
    return get_enhance_backend(name, **options)


#: Options the Forge interrogate captioner takes (the others are openai's).
_FORGE_CAPTION_OPTIONS = ("model", "url", "api_auth", "concurrency", "image_size", "timeout")


class ForgeOnlyOption(FluxgymCoachError, ValueError):
    """A Forge server URL (``url``) was given for a caption backend other than forge
    (the openai backend's server is its ``base_url``)."""
#: Saved options naming a local model folder, loaded with the model's own code.
_MODEL_PATH_OPTIONS = ("model_path",)


def caption_backend_choice(settings: DatasetSettings | None = None, *, backend: str | None = None,
                           dataset_root: str | Path | None = None,
                           **options: Any) -> tuple[str, dict[str, Any]]:
    """``(backend name, options)`` a caption job uses: ``backend`` and ``options`` given on
    this run (None values ignored), else the dataset's saved ``settings.caption`` (server
    and model included), else ``draft``. Saved options count only for the saved backend;
    ``model`` means ``model_path`` for florence2; forge keeps the options it takes.
    ``url`` and ``api_auth`` (a Forge server and its credentials) are for forge: with
    another backend a given ``url`` raises :class:`ForgeOnlyOption` and ``api_auth`` is
    ignored (it may come from the environment for the enhancement server).

    A saved model folder inside ``dataset_root`` is refused (ValueError): the store
    travels with the dataset, and such a model runs its own code when loaded; give
    the folder on the command line to use it anyway."""
    saved = settings.caption if settings is not None else None
    name = backend or (saved.backend if saved else "draft")
    merged = dict(saved.options) if saved is not None and saved.backend == name else {}
    given = {k: v for k, v in options.items() if v is not None}
    if name != "forge":
        if "url" in given:
            raise ForgeOnlyOption(f"a Forge server URL is for the forge caption backend; {name} "
                                  "takes its server as base_url")
        given.pop("api_auth", None)
    if name == "florence2" and "model" in given:
        given["model_path"] = given.pop("model")
    if dataset_root is not None:
        root = Path(dataset_root).resolve()
        for key in _MODEL_PATH_OPTIONS:
            if key in merged and key not in given and \
                    Path(str(merged[key])).expanduser().resolve().is_relative_to(root):
                raise ValueError(f"the saved caption model folder {merged[key]} is inside the dataset; "
                                 f"pass it on the command line (--model) to load it")
    merged.update(given)
    if name == "forge":
        merged = {k: v for k, v in merged.items() if k in _FORGE_CAPTION_OPTIONS}
    return name, merged


#: The option naming each caption backend's server (the one "server URL" a form asks for).
CAPTION_SERVER_OPTION = {"openai": "base_url", "forge": "url"}
#: The option naming each caption backend's model (florence2: a local model folder).
CAPTION_MODEL_OPTION = {"openai": "model", "forge": "model", "florence2": "model_path"}


def caption_server_options(backend: str, url: str | None = None, model: str | None = None) -> dict[str, Any]:
    """The caption backend options for one server URL and one model name, as a front end
    asks for them: openai ``base_url`` / ``model``, forge ``url`` / ``model``, florence2
    ``model_path``; the draft backend takes neither. Empty values are left out (the
    backend's own default applies). The inverse of :func:`caption_server_fields`."""
    pairs = ((CAPTION_SERVER_OPTION.get(backend), url), (CAPTION_MODEL_OPTION.get(backend), model))
    return {key: value for key, value in pairs if key and value}


def caption_server_fields(backend: str, options: dict[str, Any]) -> tuple[str, str]:
    """``(server URL, model)`` of saved caption ``options`` of ``backend`` (``""`` where
    none), to pre-fill a form; the inverse of :func:`caption_server_options`."""
    url = options.get(CAPTION_SERVER_OPTION.get(backend, ""), "") or options.get("base_url") \
        or options.get("url", "")
    model = options.get(CAPTION_MODEL_OPTION.get(backend, ""), "") or options.get("model") \
        or options.get("model_path", "")
    return str(url or ""), str(model or "")


def captioner_from_settings(settings: DatasetSettings | None = None, *, backend: str | None = None,
                            dataset_root: str | Path | None = None, **options: Any) -> "CaptionBackend":
    """Build the caption backend for a job (the choice of :func:`caption_backend_choice`).
    Raises ValueError for an unknown backend or option, or a refused saved model folder."""
    from .captions.job import get_caption_backend

    name, merged = caption_backend_choice(settings, backend=backend, dataset_root=dataset_root, **options)
    return get_caption_backend(name, **merged)


def remember_forge_pool(dataset: "Dataset", api_urls: Sequence[str]) -> None:
    """Save the Forge servers of this run (without credentials) as the dataset's pool."""
    update_settings(dataset.store, enhance={"api_urls": [strip_credentials(u) for u in api_urls]})


def result_cache(dataset: "Dataset", cache_dir: str | Path | None = None, *,
                 private: bool = False) -> "ImageCache":
    """The result cache a job on ``dataset`` uses: the shared user cache (or ``cache_dir``),
    or with ``private`` (``prepare --no-cache``) a cache of the dataset's own, in its
    store folder, so that no result is read from or shared with other datasets while
    the variants the job selects stay readable by a later export or the TUI."""
    from .cache import ImageCache

    return ImageCache(dataset.store.path.parent / "nocache-results") if private else ImageCache(cache_dir)


def learned_params(dataset: "Dataset", params: "EnhanceParams", *,
                   keep: Sequence[str] = ()) -> tuple["EnhanceParams", dict[str, Any], Any]:
    """``(params, changes, evidence)``: ``params`` with the enhancement defaults the
    dataset's reviews accepted most (:func:`fluxgym_coach.feedback.learn_defaults`),
    except the fields named in ``keep`` (what the user gave on this run wins).
    ``changes`` maps each field changed to its learned value; ``evidence`` is the
    :class:`~fluxgym_coach.feedback.SuggestedDefaults` (``decisions``, ``min_count``).
    Steps 1, 3 and 4 of :func:`enhance_defaults` (``prepare --learned-defaults``)."""
    found = enhance_defaults(dataset, params, keep=[*keep, "resolution"], last=False)
    return found.params, found.changes, found.learned


# -- jobs -------------------------------------------------------------------------------------------
def _sources(dataset: "Dataset", relpaths: Sequence[str] | None) -> list[Any]:
    from .export.prepare import source_of

    records = dataset.store.images()
    if relpaths is None:  # the whole dataset: its readable images
        return [source_of(dataset, r) for r in records if not r.error]
    wanted = set(relpaths)  # images asked for by name: an unreadable one fails with its reason
    return [source_of(dataset, r) for r in records if r.relpath in wanted]


def with_dataset_resolution(dataset: "Dataset", params: "EnhanceParams") -> "EnhanceParams":
    """``params`` with ``resolution`` set to the dataset's ``resolution`` setting when
    it is unset (the target of the default size rule, :mod:`fluxgym_coach.enhance.sizing`)."""
    if params.resolution is not None:
        return params
    return params.with_(resolution=load_settings(dataset.store).resolution)


async def enhance_images(dataset: "Dataset", relpaths: Sequence[str] | None, backend: "EnhanceBackend",
                         params: "EnhanceParams", *, cache: "ImageCache | None" = None,
                         select: bool = True, lookup: bool = True, on_event: EventSink = null_sink,
                         cancel: asyncio.Event | None = None) -> "EnhanceReport":
    """Enhance images of ``dataset`` (``relpaths``; None = every readable image in the store).

    Results go to the shared cache, are recorded as variants and, with
    ``select`` (default), selected for export by the rule of the module
    docstring. ``lookup=False`` recomputes cached results. The parameters are
    remembered as the dataset's last ones. Raises BackendError when the
    backend's pre-flight check fails; per-image problems are outcomes.

    Sizes: params without a ``scale_factor`` or ``target_short_side`` (the
    default) enlarge each image to the dataset's ``resolution`` setting (see
    :mod:`fluxgym_coach.enhance.sizing`: the scale its training bucket needs,
    capped; images already large enough are kept, ``report.large_enough``);
    an explicit ``scale_factor`` wins."""
    from .cache import ImageCache
    from .enhance.job import record_variants, run_enhance
    from .export.prepare import select_new_variants

    # store work in a thread: a front end may await this on its UI's event loop
    params = await asyncio.to_thread(with_dataset_resolution, dataset, params)
    await asyncio.to_thread(update_settings, dataset.store, enhance={"params": params.to_dict()})
    sources = await asyncio.to_thread(_sources, dataset, relpaths)
    own_cache = cache is None
    cache = cache or ImageCache()
    try:
        report = await run_enhance(sources, backend, params, cache, lookup=lookup,
                                   store=dataset.store, on_event=on_event, cancel=cancel)
    finally:
        if own_cache:
            cache.close()
    if select:
        await asyncio.to_thread(select_new_variants, dataset, report, backend.identity)
    else:
        await asyncio.to_thread(record_variants, dataset.store, report, backend.identity)
    return report


async def caption_images(dataset: "Dataset", relpaths: Sequence[str] | None, captioner: "CaptionBackend",
                         *, mode: str = "only-missing", trigger: str | None = None,
                         cache: "ImageCache | None" = None, on_event: EventSink = null_sink,
                         cancel: asyncio.Event | None = None) -> "CaptionReport":
    """Caption images of ``dataset`` with ``captioner`` (see :mod:`fluxgym_coach.captions.job`
    for ``mode``); ``trigger`` None means the dataset's trigger word. ``only-missing``
    and ``refresh`` are remembered for next time; ``overwrite`` (destructive) and
    ``propose`` (tag proposals) never are. Without ``relpaths``, ``report.unreadable``
    names every image of the store left out because it cannot be read (relpath ->
    reason), on the first run and every later one alike. The settings and the store
    are read and written in a thread: a front end awaits this on its UI's loop."""
    from .captions.job import run_caption

    settings = await asyncio.to_thread(load_settings, dataset.store)
    if trigger is None and mode != "propose":  # proposals are raw backend output
        trigger = settings.trigger
    if mode in ("only-missing", "refresh"):
        await asyncio.to_thread(update_settings, dataset.store, caption={"mode": mode})
    report = await run_caption(dataset, captioner, list(relpaths) if relpaths is not None else None,
                               mode=mode, trigger=trigger, cache=cache, on_event=on_event, cancel=cancel)
    if relpaths is None:  # images asked for by name that cannot be read are failed outcomes
        report.unreadable = await asyncio.to_thread(_unreadable, dataset)
    return report


def _unreadable(dataset: "Dataset") -> dict[str, str]:
    """relpath -> why, of every image in the store that cannot be read."""
    return {r.relpath: r.error for r in dataset.images() if r.error}


async def audit_dataset(dataset: "Dataset", *, resolution: int | None = None, trigger: str | None = None,
                        rescan: bool = True, on_event: EventSink = null_sink, **options: Any) -> "AuditReport":
    """Audit ``dataset`` (see :func:`fluxgym_coach.audit.rules.audit_dataset`); ``resolution``
    and ``trigger`` default to the dataset's settings. With ``rescan`` the folder is
    scanned first through :func:`scan` (plugins hear of new images)."""
    from .audit import rules as audit

    settings = await asyncio.to_thread(load_settings, dataset.store)
    if rescan:
        await scan(dataset, on_event)
    return await run_blocking(  # cancelling the task stops the measures at the next image
        audit.audit_dataset, dataset, resolution=resolution or settings.resolution,
        trigger=trigger if trigger is not None else settings.trigger, scan=False, on_event=on_event,
        **options)


async def edit_captions(dataset: "Dataset", relpaths: Sequence[str], transform: Callable[[str], str], kind: str,
                        *, include_missing: bool = False, held: dict[str, str] | None = None,
                        source: str = "cli", on_event: EventSink = null_sink) -> "BulkReport":
    """A bulk caption edit of ``relpaths`` as one undoable operation, each change recorded as
    a review decision (:func:`fluxgym_coach.captions.bulk.edit_captions`: ``transform`` is
    one of its edits, e.g. :func:`~fluxgym_coach.captions.bulk.trigger_first_edit`;
    ``held``: relpath -> why it is left unchanged). Runs in a thread (:func:`run_blocking`):
    cancelling the task stops it between images, the edits made so far stay one operation."""
    from .captions.bulk import edit_captions as run

    return await run_blocking(run, dataset, transform, kind, list(relpaths), include_missing=include_missing,
                              held=held, source=source, on_event=on_event)


def export_name(dataset: "Dataset", name: str | None = None) -> str:
    """The LoRA name of an export: ``name`` when given, else the one the dataset was last
    exported under (:attr:`ExportSettings.name <fluxgym_coach.settings.ExportSettings>`),
    else the dataset folder's name."""
    return name or load_settings(dataset.store).export.name or dataset.root.name


async def export_dataset(dataset: "Dataset", out_dir: str | Path, name: str | None, trigger: str | None = None,
                         *, resolution: int | None = None, repeats: int | None = None,
                         rescan: bool = True, only_accepted: bool = False, on_event: EventSink = null_sink,
                         **options: Any) -> "ExportReport":
    """Export ``dataset`` for Fluxgym / kohya (see :func:`fluxgym_coach.export.fluxgym.export_dataset`).

    ``name`` (None: :func:`export_name`), ``trigger``, ``resolution`` and ``repeats``
    default to the dataset's settings, and the values used are saved as its
    settings. With ``rescan`` the folder is scanned first through :func:`scan`.
    ``only_accepted``: only the images accepted in a review (:func:`accepted_images`;
    excluded ones are always left out). Raises ExportError before writing anything
    when the target or the arguments are unusable."""
    from .export import fluxgym as export

    settings = await asyncio.to_thread(load_settings, dataset.store)
    name = await asyncio.to_thread(export_name, dataset, name)
    trigger = trigger if trigger is not None else settings.trigger
    resolution = resolution or settings.resolution
    repeats = repeats or settings.repeats
    if rescan:
        await scan(dataset, on_event)
    if only_accepted:
        options["relpaths"] = await asyncio.to_thread(accepted_images, dataset)
    report = await run_blocking(export.export_dataset, dataset, out_dir, name, trigger,  # cancellable
                                resolution=resolution, repeats=repeats, on_event=on_event, **options)
    await asyncio.to_thread(update_settings, dataset.store, trigger=trigger, resolution=resolution, repeats=repeats,
                            export={"out_dir": str(out_dir), "name": name, "only_accepted": only_accepted,
                                    **({"vram": options["vram"]} if "vram" in options else {})})
    return report


def accepted_images(dataset: "Dataset") -> list[str]:
    """Relpaths of the images accepted in a review (selection status ``accepted``: the
    enhanced variant or the original the reviewer chose), in the store's order."""
    return [rel for rel, (_, status) in dataset.store.selection().items() if status == ReviewStatus.ACCEPTED]


async def prepare_dataset(dataset: "Dataset", out_dir: str | Path, name: str | None, trigger: str,
                          backend: "EnhanceBackend", **options: Any) -> "PrepareReport":
    """The main job: scan, enhance what is too small, export (see :mod:`fluxgym_coach.export.prepare`);
    ``name`` None is :func:`export_name`. The trigger word, resolution, repeats and where
    the export went are saved as the dataset's settings, as :func:`export_dataset` does."""
    from .export import prepare

    name = export_name(dataset, name)
    report = await prepare.prepare_dataset(dataset, out_dir, name, trigger, backend, **options)
    update_settings(dataset.store, trigger=trigger,
                    **{k: options[k] for k in ("resolution", "repeats") if k in options},
                    **({"export": {"out_dir": str(out_dir), "name": name,
                                   **({"vram": options["vram"]} if "vram" in options else {})}}
                       if report.export is not None else {}))
    return report


__all__ = ["CAPTION_MODEL_OPTION", "CAPTION_SERVER_OPTION", "DEFAULT_FORGE_URL", "ForgeOnlyOption",
           "JobCancelled", "RunningPlugins", "cancellable_sink", "run_blocking",
           "accepted_images", "audit_dataset", "backend_from_settings", "caption_backend_choice",
           "caption_images", "caption_server_fields", "caption_server_options", "captioner_from_settings",
           "EnhanceDefaults", "edit_captions", "enhance_defaults",
           "enhance_images", "export_dataset", "export_name", "learned_params", "prepare_dataset",
           "remember_forge_pool", "resolve_backend_name", "result_cache", "scan", "scan_blocking",
           "with_dataset_resolution"]
