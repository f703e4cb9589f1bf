"""Finding, installing, loading and removing plugins; firing scan events.

Where plugins come from
-----------------------
* **built-ins**: ``core`` (enhance, caption, audit, export as actions) and
  ``similarity``; always loaded unless listed in ``disabled_builtins``.
* **folders**: a folder with an ``__init__.py`` that sets ``plugin_class``
  (and usually ``requirements.txt``), as in Panoptic. The folder itself is put
  on ``sys.path`` so ``from mon_plugin import MonPlugin`` (the seed's
  example) works, and the package is imported under a private name so
  relative imports work too. ``requirements.txt`` is installed with pip only
  when the user confirms (:func:`add_plugin`'s ``confirm``). A folder is
  imported only once the user trusted it with its current content
  (:mod:`.trust`; ``plugins add`` and ``plugins trust`` record it, outside the
  dataset): a ``plugins.toml`` shipped inside a dataset runs nothing by itself.
* **installed packages**: the entry-point group ``fluxgym_coach.plugins``;
  an entry point names either an :class:`APlugin` subclass or a module with
  ``plugin_class``.

Which plugins a dataset uses is its config, ``<dataset>/.fluxgym-coach/plugins.toml``::

    disabled_builtins = []
    [[plugins]]
    name = "hue"
    type = "folder"            # or "entry_point"
    source = "/path/to/hue_plugin"   # or the entry point's name

Loading never stops at a broken plugin: its error (with traceback) goes to
``project.load_errors`` and is raised as an error notification; whatever it
registered before failing is removed; the others load.
"""

import asyncio
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import shutil
import subprocess
import sys
import tomllib
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ..errors import FluxgymCoachError
from ..dataset import Dataset, ScanReport
from ..events import EventSink, null_sink
from ..store import STORE_DIRNAME
from .models import DeleteFolderConfirm, Notif, NotifType
from .plugin import APlugin, _slug
from . import trust
from .project import Project

ENTRY_POINT_GROUP = "fluxgym_coach.plugins"
CONFIG_FILENAME = "plugins.toml"
BUILTINS: dict[str, str] = {
    "core": "fluxgym_coach.plugins.builtin.core:CorePlugin",
    "similarity": "fluxgym_coach.plugins.builtin.similarity:SimilarityPlugin",
}


class PluginError(FluxgymCoachError):
    """A plugin cannot be added, found or installed (the message says what to do)."""


class PluginUntrusted(PluginError):
    """A folder plugin that the user has not trusted with its current content
    (see :mod:`.trust`); ``folder`` is its resolved path, ``command`` the shell
    command that trusts it. Nothing of the folder was imported."""

    def __init__(self, name: str, folder: Path):
        self.folder = folder
        self.command = trust.trust_command(folder)
        super().__init__(f"plugin {name!r} ({folder}) is not trusted: its code was not run. "
                         f"Read it, then trust it with: {self.command}")


@dataclass
class PluginSpec:
    """One configured plugin: ``name``, ``type`` (``"builtin"``, ``"folder"`` or
    ``"entry_point"``) and ``source`` (import path, folder, or entry point name)."""

    name: str
    type: str
    source: str

    def to_dict(self) -> dict[str, str]:
        """The TOML table of this spec."""
        return {"name": self.name, "type": self.type, "source": self.source}


@dataclass
class PluginConfig:
    """The plugins of one dataset (see module docstring)."""

    plugins: list[PluginSpec] = field(default_factory=list)
    disabled_builtins: list[str] = field(default_factory=list)

    def specs(self) -> list[PluginSpec]:
        """Built-ins (not disabled) then configured plugins."""
        builtins = [PluginSpec(n, "builtin", s) for n, s in BUILTINS.items() if n not in self.disabled_builtins]
        return builtins + list(self.plugins)


def config_path(root: str | Path) -> Path:
    """``<root>/.fluxgym-coach/plugins.toml``."""
    return Path(root) / STORE_DIRNAME / CONFIG_FILENAME


def read_config(root: str | Path) -> PluginConfig:
    """The dataset's plugin config (empty when the file does not exist).
    Raises PluginError for a file that is not valid TOML."""
    path = config_path(root)
    if not path.exists():
        return PluginConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise PluginError(f"{path}: {exc}. Fix or delete the file.") from exc
    specs = [PluginSpec(str(p["name"]), str(p.get("type", "folder")), str(p["source"]))
             for p in data.get("plugins", [])]
    return PluginConfig(specs, [str(n) for n in data.get("disabled_builtins", [])])


def write_config(root: str | Path, config: PluginConfig) -> None:
    """Write the dataset's plugin config (atomically)."""
    from ..fsutil import atomic_write_text
    path = config_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, tomli_w.dumps({"disabled_builtins": config.disabled_builtins,
                                           "plugins": [s.to_dict() for s in config.plugins]}))


def available_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed plugins: entry point name -> entry point of group ``fluxgym_coach.plugins``."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def read_requirements(folder: str | Path) -> list[str]:
    """Requirement lines of ``<folder>/requirements.txt`` (comments and blanks dropped)."""
    path = Path(folder) / "requirements.txt"
    if not path.exists():
        return []
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def install_requirements(folder: str | Path, confirm: Callable[[list[str]], bool]) -> bool:
    """Install ``requirements.txt`` of a folder plugin with pip, if ``confirm(requirements)``
    says yes. Returns True when there was nothing to install or pip succeeded,
    False when the user declined. Raises PluginError when pip fails (its output
    in the message)."""
    reqs = read_requirements(folder)
    if not reqs:
        return True
    if not confirm(reqs):
        return False
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-r",
           str(Path(folder) / "requirements.txt")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PluginError(f"pip could not install the requirements of {folder}:\n"
                          f"{(proc.stdout + proc.stderr)[-3000:]}")
    return True


def _import_folder(folder: Path, name: str) -> Any:
    init = folder / "__init__.py"
    if not init.is_file():
        raise PluginError(f"{folder}: no __init__.py; a plugin folder needs one that sets plugin_class")
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:8]
    module_name = f"fluxgym_coach_plugin_{''.join(c if c.isalnum() else '_' for c in name)}_{digest}"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(module_name, init, submodule_search_locations=[str(folder)])
    if spec is None or spec.loader is None:
        raise PluginError(f"{init}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _class_from(obj: Any, where: str) -> type[APlugin]:
    cls = getattr(obj, "plugin_class", obj) if inspect.ismodule(obj) else obj
    if cls is obj and inspect.ismodule(obj):
        raise PluginError(f"{where}: the module does not set plugin_class")
    if not (inspect.isclass(cls) and issubclass(cls, APlugin)):
        raise PluginError(f"{where}: plugin_class must be a subclass of "
                          f"fluxgym_coach.plugins.APlugin, got {cls!r}")
    return cls


def resolve_class(spec: PluginSpec) -> tuple[type[APlugin], str]:
    """(plugin class, plugin path) of a spec. Raises PluginError or the import's error;
    :class:`PluginUntrusted`, before importing anything, for a folder the user has
    not trusted with its current content (see :mod:`.trust`)."""
    if spec.type == "builtin":
        if spec.source not in BUILTINS.values():  # a dataset's plugins.toml cannot name any module
            raise PluginError(f"plugin {spec.name!r}: {spec.source!r} is not a built-in plugin "
                              f"(built-ins: {', '.join(BUILTINS)})")
        module_name, _, attr = spec.source.partition(":")
        module = importlib.import_module(module_name)
        return _class_from(getattr(module, attr), spec.source), str(Path(module.__file__ or "").parent)
    if spec.type == "folder":
        folder = Path(spec.source)
        if not trust.is_trusted(folder):
            raise PluginUntrusted(spec.name, folder.expanduser().resolve())
        return _class_from(_import_folder(folder, spec.name), str(folder)), str(folder)
    if spec.type == "entry_point":
        eps = available_entry_points()
        if spec.source not in eps:
            raise PluginError(f"no installed plugin {spec.source!r} in entry-point group {ENTRY_POINT_GROUP}; "
                              f"installed: {sorted(eps) or 'none'}")
        ep = eps[spec.source]
        obj = ep.load()
        module = sys.modules.get(ep.module)
        path = str(Path(module.__file__).parent) if module is not None and getattr(module, "__file__", None) else ep.value
        return _class_from(obj, f"entry point {ep.name} = {ep.value}"), path
    raise PluginError(f"plugin {spec.name!r}: unknown type {spec.type!r} (builtin, folder or entry_point)")


def _unload(project: Project, name: str) -> None:
    project.registry.remove_owner(name)
    project.remove_listeners(name)
    project.plugins.pop(name, None)


def _failed(project: Project, spec: PluginSpec, exc: BaseException) -> None:
    _unload(project, spec.name)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, PluginUntrusted):
        project.load_errors[spec.name] = str(exc)
        project.untrusted[spec.name] = exc.command
        project.notify(Notif(NotifType.WARNING, name=f"plugin {spec.name} not trusted", message=str(exc),
                             data={"spec": spec.to_dict(), "trust_command": exc.command}))
        return
    project.load_errors[spec.name] = f"{type(exc).__name__}: {exc}"
    project.notify(Notif(NotifType.ERROR, name=f"plugin {spec.name} failed to load",
                         message=f"{type(exc).__name__}: {exc}", data={"traceback": tb, "spec": spec.to_dict()}))


def instantiate_plugin(project: Project, spec: PluginSpec) -> APlugin | None:
    """First, synchronous half of loading: import the plugin and build it (its
    ``__init__`` registers its actions). Failures are recorded like
    :func:`load_plugin`'s. Call :func:`start_plugin` next."""
    try:
        cls, path = resolve_class(spec)
        plugin = cls(project=project, plugin_path=path, name=spec.name)
        if not isinstance(plugin, APlugin):
            raise PluginError(f"{spec.name}: plugin_class did not build an APlugin")
    except Exception as exc:
        _failed(project, spec, exc)
        return None
    project.plugins[spec.name] = plugin
    project.load_errors.pop(spec.name, None)
    project.untrusted.pop(spec.name, None)
    return plugin


async def start_plugin(project: Project, plugin: APlugin) -> bool:
    """Second half of loading: ``await plugin.start()``; on failure the plugin is
    unloaded and reported. Returns True when it started."""
    try:
        await plugin.start()
    except Exception as exc:
        _failed(project, PluginSpec(plugin.name, "loaded", plugin.path), exc)
        return False
    return True


async def load_plugin(project: Project, spec: PluginSpec) -> APlugin | None:
    """Load and start one plugin; on failure record it in ``project.load_errors``,
    raise an error notification, undo its registrations and return None."""
    plugin = instantiate_plugin(project, spec)
    if plugin is None or not await start_plugin(project, plugin):
        return None
    return plugin


def instantiate_plugins(project: Project, config: PluginConfig | None = None) -> list[APlugin]:
    """:func:`instantiate_plugin` for every plugin of the config (synchronous: a
    front end can list the actions at once and start the plugins in the background)."""
    config = config or read_config(project.base_path)
    built = []
    for spec in config.specs():
        if spec.name not in project.plugins:
            plugin = instantiate_plugin(project, spec)
            if plugin is not None:
                built.append(plugin)
    return built


async def load_plugins(project: Project, config: PluginConfig | None = None) -> dict[str, str]:
    """Load every plugin of the dataset's config (built-ins first).
    Returns ``project.load_errors`` (name -> error) for the ones that failed."""
    config = config or read_config(project.base_path)
    for spec in config.specs():
        if spec.name in project.plugins:
            continue
        await load_plugin(project, spec)
    return dict(project.load_errors)


async def open_project(root: str | Path, workers: int = 4) -> Project:
    """Open the dataset at ``root`` and load its plugins (errors in ``load_errors``)."""
    project = Project.open(root, workers=workers)
    await load_plugins(project)
    return project


def add_plugin(root: str | Path, source: str, name: str | None = None,
               confirm: Callable[[list[str]], bool] = lambda reqs: False) -> PluginSpec:
    """Add a plugin to the dataset's config: a folder path, or the name of an
    installed entry point. A folder is trusted with its current content (see
    :mod:`.trust`: the user named it). For a folder, ``requirements.txt`` is installed only
    if ``confirm(requirements)`` returns True; when declined the plugin is
    still added (it loads if its requirements are already present).
    Raises PluginError for an unknown source, a duplicate name or a pip failure."""
    config = read_config(root)
    folder = Path(source).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        if not (folder / "__init__.py").is_file():
            raise PluginError(f"{folder}: no __init__.py; a plugin folder needs one that sets plugin_class")
        spec = PluginSpec(name or folder.name, "folder", str(folder))
    else:
        eps = available_entry_points()
        if source not in eps:
            raise PluginError(f"{source!r} is neither a plugin folder nor an installed plugin "
                              f"(entry points: {sorted(eps) or 'none'})")
        spec = PluginSpec(name or source, "entry_point", source)
    if spec.name in BUILTINS:
        raise PluginError(f"{spec.name!r} is the name of a built-in plugin; pass another name")
    if any(p.name == spec.name for p in config.plugins):
        raise PluginError(f"a plugin named {spec.name!r} is already configured; remove it first")
    if spec.type == "folder":
        install_requirements(spec.source, confirm)
        trust.trust_folder(spec.source)  # the user named this folder: its current content is trusted
    config.plugins.append(spec)
    write_config(root, config)
    return spec


def remove_plugin(root: str | Path, name: str, project: Project | None = None) -> PluginSpec:
    """Remove a plugin from the config, delete its data folder and stored data
    (params...). A built-in is disabled instead. Raises PluginError if unknown."""
    config = read_config(root)
    if name in BUILTINS:
        if name not in config.disabled_builtins:
            config.disabled_builtins.append(name)
        spec = PluginSpec(name, "builtin", BUILTINS[name])
    else:
        matches = [p for p in config.plugins if p.name == name]
        if not matches:
            raise PluginError(f"no plugin {name!r} in {config_path(root)}")
        spec = matches[0]
        config.plugins = [p for p in config.plugins if p.name != name]
    write_config(root, config)
    if project is not None:
        plugin = project.plugins.get(name)
        _unload(project, name)
        project.delete_plugin_data(name)
        shutil.rmtree(plugin.data_path if plugin else project.data_root / _slug(name), ignore_errors=True)
    else:
        with Project.open(root) as proj:
            proj.delete_plugin_data(name)
            shutil.rmtree(proj.data_root / _slug(name), ignore_errors=True)
    return spec


@dataclass
class ScanSnapshot:
    """What the store held before a scan: ``ids`` (relpath -> instance id) and
    ``folders`` (folder path -> folder id); see :func:`notify_scan`."""

    ids: dict[str, int]
    folders: dict[str, int]


def scan_snapshot(project: Project) -> ScanSnapshot:
    """Take the snapshot :func:`notify_scan` needs; call it just before ``Dataset.scan``
    (synchronous: fine in a worker thread)."""
    return ScanSnapshot({r["relpath"]: r["id"] for r in project.store.execute("SELECT id, relpath FROM images")},
                        {f.path: f.id for f in project.folders()})


def _never_announced(project: Project) -> set[str]:
    """Readable images whose current content the import listeners were never told of."""
    project.store.ensure_schema("plugins")
    rows = project.store.execute(
        "SELECT i.relpath FROM images i LEFT JOIN plugin_imported p ON p.relpath = i.relpath "
        "WHERE i.error IS NULL AND (p.digest IS NULL OR p.digest != i.digest)")
    return {r["relpath"] for r in rows}


async def notify_scan(project: Project, report: ScanReport, snapshot: ScanSnapshot) -> None:
    """Fire the plugin events of a finished scan (run it on the loop the plugins use).

    ``on_instance_import`` listeners get every added or changed image, and every
    image they were never told of (one first indexed by another command); when
    images are gone their property values are dropped, folders left empty
    are removed and ``on_folder_delete`` listeners get a
    :class:`DeleteFolderConfirm` (folders left without images, the ids the
    removed images had, their relpaths). Listener errors become error
    notifications.
    """
    project.reconcile_instances()  # values of removed images go, even when the store reuses an id
    changed = set(report.added) | set(report.updated) | _never_announced(project)
    if changed:
        instances = [i for i in project.instances() if i.relpath in changed]
        await project.fire_instance_import(instances)
        project.store.executemany(
            "INSERT INTO plugin_imported(relpath, digest) VALUES (?, ?) "
            "ON CONFLICT(relpath) DO UPDATE SET digest = excluded.digest",
            [(i.relpath, i.sha1) for i in instances])
    if report.removed:
        removed_ids = [snapshot.ids[r] for r in report.removed if r in snapshot.ids]
        still = set()
        for r in project.store.execute("SELECT relpath FROM images"):
            path = r["relpath"].rsplit("/", 1)[0] if "/" in r["relpath"] else ""
            while True:
                still.add(path)
                if path == "":
                    break
                path = path.rsplit("/", 1)[0] if "/" in path else ""
        gone = sorted((p for p in snapshot.folders if p not in still and p != ""), key=len, reverse=True)
        if gone:
            project.store.execute(f"DELETE FROM plugin_folders WHERE path IN ({','.join('?' * len(gone))})", gone)
        await project.fire_folder_delete(DeleteFolderConfirm(
            deleted_folders=[snapshot.folders[p] for p in gone], deleted_instances=removed_ids,
            relpaths=list(report.removed)))


#: How a scan is run: ``run(on_event)`` awaits the folder scan (default: ``Dataset.scan`` in a thread).
ScanRunner = Callable[[EventSink], Awaitable[ScanReport]]


async def scan_and_notify(project: Project, on_event: EventSink = null_sink,
                          run: ScanRunner | None = None) -> ScanReport:
    """Scan the dataset and fire the plugin events: what front ends call instead of
    ``Dataset.scan``. Runs :meth:`Dataset.scan` in a thread, then :func:`notify_scan`.
    Returns the scan's :class:`ScanReport`.

    A front end that scans in a worker thread takes ``snap = scan_snapshot(project)``
    before ``dataset.scan(...)`` and then runs ``notify_scan(project, report, snap)``
    on the event loop (Textual: ``app.call_from_thread(notify_scan, project, report, snap)``).
    """
    snapshot = scan_snapshot(project)
    report = await (run(on_event) if run is not None else asyncio.to_thread(project.dataset.scan, on_event))
    await notify_scan(project, report, snapshot)
    return report


async def scan_with_plugins(dataset: Dataset, on_event: EventSink = null_sink,
                            run: ScanRunner | None = None) -> ScanReport:
    """Scan ``dataset``, firing its plugins' scan events when it has a plugin config.

    Without ``.fluxgym-coach/plugins.toml`` (no plugin set up for this
    dataset) this is a plain :meth:`Dataset.scan` in a thread: a scan stays
    cheap for everyone who never used plugins. With it, the dataset's plugins
    are loaded, :func:`scan_and_notify` runs, and the plugin tasks it queued
    (e.g. similarity vectors of new images) are awaited. Plugin load failures
    and task errors are added to the report's ``warnings`` under
    ``"plugin <name>"``, so every front end shows them. ``run(on_event)`` runs the
    folder scan itself (:func:`fluxgym_coach.core.scan` passes a cancellable one).
    """
    if not config_path(dataset.root).exists():
        return await (run(on_event) if run is not None else asyncio.to_thread(dataset.scan, on_event))
    project = Project(dataset)
    try:
        await load_plugins(project)
        report = await scan_and_notify(project, on_event, run)
        for name, reason in project.load_errors.items():
            report.warnings[f"plugin {name}"] = reason if name in project.untrusted else f"failed to load: {reason}"
        for error in await project.task_queue.join():
            report.warnings[f"plugin task {error.name}"] = error.message
        return report
    finally:
        project.close()


__all__ = ["scan_with_plugins", "BUILTINS", "CONFIG_FILENAME", "ENTRY_POINT_GROUP", "PluginConfig", "PluginError", "PluginSpec",
           "PluginUntrusted",
           "add_plugin", "available_entry_points", "config_path", "install_requirements", "instantiate_plugin",
           "instantiate_plugins", "load_plugin", "start_plugin",
           "load_plugins", "open_project", "read_config", "read_requirements", "remove_plugin",
           "resolve_class", "scan_and_notify", "scan_snapshot", "notify_scan", "ScanSnapshot", "write_config"]
