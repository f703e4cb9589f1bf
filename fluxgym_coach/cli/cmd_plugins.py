"""``fluxgym-coach plugins list|add|trust|untrust|remove|run``: the plugin catalogue from the command line.

Presentation only: loading, running and configuration live in
:mod:`fluxgym_coach.plugins`. ``run`` prints the :class:`ActionResult`
(groups with their images and scores, notifications, value), or JSON with
``--json``; it exits 1 when the result holds an error notification.
"""

import asyncio
import fnmatch
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..dataset import DatasetError
from ..plugins import (ActionContext, ActionError, ActionResult, PluginError, Project,
                       add_plugin, available_entry_points, load_plugins, read_config, remove_plugin,
                       scan_and_notify, to_jsonable)
from ..plugins import trust
from ..plugins.loader import BUILTINS
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err, fail, out, print_json
from .options import Json

DatasetArg = Annotated[Path, typer.Argument(help="Folder of images with <stem>.txt captions.")]

plugins_app = typer.Typer(help="Plugins (Panoptic-style): list, add, trust, remove, run actions.\n\n"
                               "A folder plugin runs only once you trust it (`plugins add` or `plugins trust`); "
                               "trust is kept in your user config folder and lapses when its files change."
                               "\n\nExample: fluxgym-coach plugins list ./photos",
                          no_args_is_help=True)


def _open(dataset: Path) -> Project:
    try:
        return Project.open(dataset)
    except DatasetError as exc:
        raise fail(str(exc), EXIT_USAGE) from None


def _report_load_errors(project: Project) -> None:
    for name, reason in project.load_errors.items():
        if name in project.untrusted:
            err.print(f"[yellow]plugin {escape(name)} not loaded:[/] {escape(reason)}")
        else:
            err.print(f"[red]plugin {escape(name)} failed to load:[/] {escape(reason)}")


@plugins_app.command("list")
def list_cmd(dataset: DatasetArg, as_json: Json = False) -> None:
    """List the dataset's plugins, their actions and installed plugins.

    Each action with its id, hooks and parameters.

    Example: fluxgym-coach plugins list ./photos --json
    """
    async def go() -> dict[str, Any]:
        with _open(dataset) as project:
            await load_plugins(project)
            config = read_config(dataset)
            plugins = []
            for name in list(BUILTINS) + [p.name for p in config.plugins]:
                plugin = project.plugins.get(name)
                spec = next((p for p in config.plugins if p.name == name), None)
                plugins.append({
                    "name": name, "type": spec.type if spec else "builtin",
                    "source": spec.source if spec else BUILTINS[name],
                    "status": "disabled" if name in config.disabled_builtins else
                              ("loaded" if plugin else "untrusted" if name in project.untrusted else "error"),
                    "error": project.load_errors.get(name),
                    "trust_command": project.untrusted.get(name),
                    "params": plugin.params.model_dump(mode="json") if plugin is not None and plugin.params else None,
                    "actions": [to_jsonable(d) for d in (plugin.registered_functions if plugin else [])],
                })
            return {"plugins": plugins,
                    "installed_entry_points": {n: ep.value for n, ep in available_entry_points().items()}}
    data = asyncio.run(go())
    if as_json:
        print_json(data)
        return
    for p in data["plugins"]:
        out.print(f"[bold]{escape(p['name'])}[/] ({escape(p['type'])}, {p['status']})  {escape(p['source'])}")
        if p["trust_command"]:
            out.print(f"  [yellow]not trusted: its code was not run. Read it, then trust it with:[/] "
                      f"{escape(p['trust_command'])}")
        elif p["error"]:
            out.print(f"  [red]{escape(p['error'])}[/]")
        for a in p["actions"]:
            params = ", ".join(f"{q['name']}:{q['type']}" + (f"={q['default_value']}" if q["default_value"] is not None else "")
                               for q in a["params"])
            out.print(escape(f"  {a['id']}  [{', '.join(a['hooks'])}]  ({params})  {a['description'] or ''}"))
    if data["installed_entry_points"]:
        out.print("installed (add with `plugins add DATASET NAME`): " + ", ".join(sorted(data["installed_entry_points"])))


@plugins_app.command("add")
def add_cmd(
    dataset: DatasetArg,
    source: Annotated[str, typer.Argument(help="A plugin folder (with __init__.py setting plugin_class) "
                                               "or the name of an installed plugin (entry point).")],
    name: Annotated[Optional[str], typer.Option("--name", help="Name to give the plugin (default: "
                                                               "folder or entry point name).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Install requirements.txt without asking.")] = False,
) -> None:
    """Add a plugin to the dataset and trust its folder.

    A folder's requirements.txt is installed only after you confirm (or with --yes).

    Example: fluxgym-coach plugins add ./photos examples/plugins/hue_plugin
    """
    if not dataset.is_dir():
        raise fail(f"{dataset}: not a folder", EXIT_USAGE)

    def confirm(reqs: list[str]) -> bool:
        if yes:
            return True
        err.print("This plugin needs: " + ", ".join(reqs))
        return typer.confirm("Install them with pip now?", default=False)

    try:
        spec = add_plugin(dataset, source, name=name, confirm=confirm)
    except PluginError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    out.print(f"added plugin {spec.name} ({spec.type}: {spec.source})")


@plugins_app.command("trust")
def trust_cmd(folder: Annotated[Path, typer.Argument(
        help="A plugin folder named in a dataset's plugins.toml (as `plugins list` prints it).")]) -> None:
    """Trust a plugin folder, so datasets that name it may run it.

    Its current content is trusted: the record is kept in your user config
    folder, never in a dataset, keyed by the folder's resolved path and a
    SHA-256 of its files; once any file changes, the folder is untrusted
    again and has to be trusted anew.

    Example: fluxgym-coach plugins trust examples/plugins/hue_plugin
    """
    if not folder.is_dir():
        raise fail(f"{folder}: not a folder", EXIT_USAGE)
    if not (folder / "__init__.py").is_file():
        raise fail(f"{folder}: no __init__.py; a plugin folder needs one that sets plugin_class",
                   EXIT_USAGE)
    digest = trust.trust_folder(folder)
    out.print(f"trusted {escape(str(folder.resolve()))} (sha256 {digest[:16]}...), recorded in "
              f"{escape(str(trust.trust_path()))}")


@plugins_app.command("untrust")
def untrust_cmd(folder: Annotated[Path, typer.Argument(help="A plugin folder trusted before.")]) -> None:
    """Forget the trust of a plugin folder.

    Its code will not run until it is trusted again.

    Example: fluxgym-coach plugins untrust examples/plugins/hue_plugin
    """
    if trust.untrust_folder(folder):
        out.print(f"untrusted {escape(str(folder.resolve()))}")
    else:
        out.print(f"{escape(str(folder.resolve()))} was not trusted")


@plugins_app.command("remove")
def remove_cmd(dataset: DatasetArg,
               name: Annotated[str, typer.Argument(help="Plugin name (a built-in is disabled).")]) -> None:
    """Remove a plugin from the dataset, with its data and parameters.

    Its data folder and stored parameters go too; a built-in plugin is disabled.

    Example: fluxgym-coach plugins remove ./photos hue_plugin
    """
    try:
        spec = remove_plugin(dataset, name)
    except (PluginError, DatasetError) as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    out.print(f"{'disabled' if spec.type == 'builtin' else 'removed'} plugin {name}")


def _parse_params(params: list[str]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for item in params:
        if "=" not in item:
            raise fail(f"--param {item!r}: use NAME=VALUE", EXIT_USAGE)
        key, value = item.split("=", 1)
        inputs[key.strip()] = value
    return inputs


def _select(project: Project, patterns: list[str] | None) -> list[int] | None:
    if not patterns:
        return None
    instances = project.instances()
    ids = []
    for pat in patterns:
        matched = [i.id for i in instances if i.relpath == pat or fnmatch.fnmatch(i.relpath, pat)]
        if not matched:
            raise fail(f"--images {pat!r} matches no readable image of the dataset", EXIT_USAGE)
        ids += [i for i in matched if i not in ids]
    return ids


def result_to_json(project: Project, result: ActionResult) -> dict[str, Any]:
    """The JSON form of a result, with each group's images also given as relpaths."""
    data = to_jsonable(result)
    rel_by_id = {i.id: i.relpath for i in project.instances()}
    rel_by_sha = {i.sha1: i.relpath for i in project.instances()}
    for g in data.get("groups") or []:
        if g.get("ids"):
            g["relpaths"] = [rel_by_id.get(i) for i in g["ids"]]
        elif g.get("sha1s"):
            g["relpaths"] = [rel_by_sha.get(s) for s in g["sha1s"]]
    return data


def _print_result(data: dict[str, Any]) -> None:
    for g in data.get("groups") or []:
        score = g.get("score")
        title = g.get("name") or "Group"
        if score:
            title += f"  (score {score['value']:g}: {score['description']})"
        table = Table(title=escape(title), title_justify="left")
        table.add_column("image")
        scores = g.get("scores")
        if scores:
            table.add_column(scores["description"] or "score", justify="right")
        for n, rel in enumerate(g.get("relpaths") or []):
            row = [escape(str(rel))]
            if scores:
                row.append(f"{scores['values'][n]:g}")
            table.add_row(*row)
        out.print(table)
    colours = {"error": "red", "warning": "yellow", "info": "green", "debug": "dim"}
    for n in data.get("notifs") or []:
        c = colours.get(n["type"], "white")
        out.print(f"[{c}]{n['type']}[/] " + escape(f"{n.get('name') or ''}: {n.get('message') or ''}"))
        if n["type"] == "error" and isinstance(n.get("data"), dict) and n["data"].get("traceback"):
            err.print(n["data"]["traceback"])
        for f in n.get("functions") or []:
            out.print(f"  suggested: {f['message']} -> plugins run DATASET {f['function']}")
    if data.get("value") is not None:
        out.print("value: " + json.dumps(data["value"], default=str))


@plugins_app.command("run")
def run_cmd(
    dataset: DatasetArg,
    action: Annotated[str, typer.Argument(help="NAME.ACTION as `plugins list` shows it.")],
    images: Annotated[Optional[list[str]], typer.Option(
        "--image", "--images", "-i", help="Images to act on (relpath or glob; repeat). Default: all.",
        show_default=False)] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", help="Action parameter NAME=VALUE (repeat).", show_default=False)] = None,
    no_scan: Annotated[bool, typer.Option("--no-scan", help="Do not re-scan the folder first.")] = False,
    as_json: Json = False,
) -> None:
    """Run a plugin action on the dataset and print its result.

    The result: groups of images, notifications and a value.

    Example: fluxgym-coach plugins run ./photos core.audit --param resolution=1024
    """
    inputs = _parse_params(param or [])

    async def go() -> tuple[dict[str, Any], bool]:
        with _open(dataset) as project:
            await load_plugins(project)
            _report_load_errors(project)
            if not no_scan:
                await scan_and_notify(project)
                await project.task_queue.join()
            ids = _select(project, images)
            try:
                result = await project.call_action(action, ActionContext(instance_ids=ids, ui_inputs=inputs))
            except ActionError as exc:
                raise fail(str(exc), EXIT_USAGE) from None
            errors = await project.task_queue.join()
            for e in errors:
                err.print(f"[red]task failed:[/] {e.name}: {e.message}")
            return result_to_json(project, result), result.has_error or bool(errors)
    data, failed = asyncio.run(go())
    if as_json:
        print_json(data)
    else:
        _print_result(data)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def register(app: typer.Typer) -> None:
    """Add the ``plugins`` command group to the CLI."""
    app.add_typer(plugins_app, name="plugins")


__all__ = ["register", "result_to_json"]

