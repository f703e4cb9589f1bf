"""``fluxgym-coach tags ...``: the dataset's tag table, rename / merge / delete / add,
autocomplete and proposals. Presentation only: the work is in :mod:`fluxgym_coach.captions.tags`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Optional

import typer
from rich.table import Table

from .. import core
from ..captions import tags as tagging
from ..captions.backends.base import CaptionBackendError
from .cmd_caption import DatasetArg, Images, open_dataset
from .common import esc, EXIT_BACKEND, EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail, out, print_json, progress_sink
from .options import ApiAuth, ApiUrl, Json, Quiet

tags_app = typer.Typer(help="The dataset's tags: list, rename, merge, delete, add, propose.\n\n"
                            "Every change is undoable "
                            "(`fluxgym-coach captions undo DATASET --op ID`).\n\n"
                            "Example: fluxgym-coach tags list ./photos --exclude ohwx",
                       no_args_is_help=True)


@tags_app.command("list")
def list_cmd(
    dataset: DatasetArg,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows shown.")] = 50,
    exclude: Annotated[Optional[list[str]], typer.Option(
        "--exclude", help="Leave out this tag (e.g. the trigger word); repeatable.",
        show_default=False)] = None,
    json_out: Json = False,
) -> None:
    """The tag table: each tag with its image count, most used first.

    Example: fluxgym-coach tags list ./photos --limit 20 --exclude ohwx
    """
    with open_dataset(dataset) as ds:
        rows = tagging.tag_table(ds, exclude=exclude or ())
        total = len(ds.images())
    if json_out:
        print_json({"images": total, "tags": [r.to_dict() for r in rows[:limit]],
                    "distinct": len(rows)})
    else:
        table = Table("tag", "images", "share", title=f"{len(rows)} distinct tags on {total} images")
        for r in rows[:limit]:
            table.add_row(esc(r.tag), str(r.count), f"{r.count / max(total, 1):.0%}")
        out.print(table)
    raise typer.Exit(EXIT_OK)


def _done(report, json_out: bool) -> None:
    if json_out:
        print_json(report.to_dict())
    else:
        out.print(f"{len(report.changed)} caption(s) changed, {len(report.skipped)} skipped. "
                  f"Undo: fluxgym-coach captions undo DATASET --op {report.op_id}")
    raise typer.Exit(EXIT_OK)


@tags_app.command("rename")
def rename_cmd(dataset: DatasetArg, old: Annotated[str, typer.Argument(help="Tag to rename.")],
               new: Annotated[str, typer.Argument(help="New spelling.")],
               images: Images = None, json_out: Json = False) -> None:
    """Rename a tag in every caption carrying it (position kept).

    Example: fluxgym-coach tags rename ./photos "grey cat" "gray cat"
    """
    with open_dataset(dataset) as ds:
        try:
            _done(tagging.rename_tag(ds, old, new, images or None), json_out)
        except ValueError as exc:
            raise fail(str(exc), EXIT_USAGE) from None


@tags_app.command("merge")
def merge_cmd(dataset: DatasetArg,
              sources: Annotated[list[str], typer.Argument(help="Tags to merge, then the target.")],
              images: Images = None, json_out: Json = False) -> None:
    """Merge tags into the last one named.

    kitty and kitten become cat in the example below.

    Example: fluxgym-coach tags merge ./photos kitty kitten cat
    """
    if len(sources) < 2:
        raise fail("give at least one tag to merge and the target tag", EXIT_USAGE)
    with open_dataset(dataset) as ds:
        try:
            _done(tagging.merge_tags(ds, sources[:-1], sources[-1], images or None), json_out)
        except ValueError as exc:
            raise fail(str(exc), EXIT_USAGE) from None


@tags_app.command("delete")
def delete_cmd(dataset: DatasetArg, tag: Annotated[str, typer.Argument(help="Tag to remove.")],
               images: Images = None, json_out: Json = False) -> None:
    """Remove a tag from every caption carrying it.

    Example: fluxgym-coach tags delete ./photos watermark
    """
    with open_dataset(dataset) as ds:
        _done(tagging.delete_tag(ds, tag, images or None), json_out)


@tags_app.command("add")
def add_cmd(dataset: DatasetArg, tag: Annotated[str, typer.Argument(help="Tag to add.")],
            images: Images = None,
            position: Annotated[Optional[int], typer.Option(
                "--position", min=0, help="Index among the tags (1 = right after the trigger "
                                          "word); default: at the end.", show_default=False)] = None,
            json_out: Json = False) -> None:
    """Add a tag to the captions that lack it.

    Only the captions of --image when given, else every image's.

    Example: fluxgym-coach tags add ./photos outdoors -i chelsea.png --position 1
    """
    with open_dataset(dataset) as ds:
        rels = images or [r.relpath for r in ds.images() if not r.error]
        try:
            _done(tagging.add_tag(ds, tag, rels, position), json_out)
        except ValueError as exc:
            raise fail(str(exc), EXIT_USAGE) from None


@tags_app.command("complete")
def complete_cmd(dataset: DatasetArg, prefix: Annotated[str, typer.Argument(help="What was typed.")],
                 limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Most completions shown.")] = 10,
                 json_out: Json = False) -> None:
    """Autocomplete a tag from the dataset's own tags.

    What the TUI's caption editor offers.

    Example: fluxgym-coach tags complete ./photos ca
    """
    with open_dataset(dataset, scan=False) as ds:
        found = tagging.complete(ds, prefix, limit)
    if json_out:
        print_json(found)
    else:
        for t in found:
            out.print(esc(t))
    raise typer.Exit(EXIT_OK)


@tags_app.command("propose")
def propose_cmd(
    dataset: DatasetArg,
    image: Annotated[Optional[str], typer.Option("--image", "-i", help="Show proposals for this image.")] = None,
    backend: Annotated[Optional[str], typer.Option(
        "--backend", "-b", help="First ask a backend for tags on every image (nothing is written): "
                                "forge (deepdanbooru) or openai (tags prompt).", show_default=False)] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", show_default=False,
                                                 help="Backend model (openai).")] = None,
    base_url: Annotated[Optional[str], typer.Option(
        "--base-url", show_default=False, help="openai: server URL, e.g. http://127.0.0.1:11434/v1.")] = None,
    api_url: ApiUrl = None,
    api_auth: ApiAuth = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Most proposals per image.")] = 20,
    json_out: Json = False,
    quiet: Quiet = False,
) -> None:
    """Tag proposals per image; nothing is written.

    Proposals come from a tagger backend (deepdanbooru / VLM), the tags most
    images of the same folder carry, and the folder name.

    Example: fluxgym-coach tags propose ./photos --image chelsea.png
    """
    with open_dataset(dataset) as ds:
        if backend:
            if backend == "forge":
                given = {"model": model or "deepdanbooru", "url": api_url[0] if api_url else None,
                         "api_auth": api_auth}  # the first server: one tagger
            elif backend == "openai":
                given = {"model": model, "style": "tags", "base_url": base_url}
            else:
                given = {}
            try:  # the tagger's server and model are not saved: only this run's options count
                tagger = core.captioner_from_settings(None, backend=backend, **given)
            except (ValueError, TypeError) as exc:
                raise fail(f"--backend {backend}: {exc}", EXIT_USAGE) from None

            async def go():
                try:
                    return await core.caption_images(ds, [image] if image else None, tagger,
                                                     mode="propose", on_event=sink)
                finally:
                    await tagger.aclose()
            with progress_sink(quiet or json_out) as sink:
                try:
                    report = asyncio.run(go())
                except CaptionBackendError as exc:
                    raise fail(exc.reason, EXIT_BACKEND) from None
            if report.fatal:
                raise fail(report.fatal, EXIT_BACKEND)
            failed = bool(report.failed)
        else:
            failed = False
        try:
            result = tagging.propose_many(ds, [image] if image else None, limit)
        except LookupError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
    if json_out:
        print_json({rel: [p.to_dict() for p in ps] for rel, ps in result.items()})
    else:
        table = Table("image", "tag", "score", "from")
        for rel, ps in result.items():
            for p in ps:
                table.add_row(esc(rel), esc(p.tag), f"{p.score:.2f}", esc(", ".join(p.sources)))
        out.print(table)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def register(app: typer.Typer) -> None:
    """Add the ``tags`` group."""
    app.add_typer(tags_app, name="tags")
