"""``fluxgym-coach cache stats|clear``: inspect or empty the result cache."""

from __future__ import annotations

import typer

from ..cache import ImageCache
from .common import esc, out, print_json
from .options import CacheDir, Json

cache_app = typer.Typer(help="Inspect or empty the result cache shared by all datasets.\n\n"
                             "It holds the enhanced images (upscaled, colorized) of every job, so "
                             "the same image is never sent twice with the same settings.\n\nExample: fluxgym-coach cache stats", no_args_is_help=True)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} GiB"


@cache_app.command("stats")
def stats(cache_dir: CacheDir = None, json_out: Json = False) -> None:
    """Show where the cache is, how many results it holds and their size.

    Example: fluxgym-coach cache stats --json
    """
    s = ImageCache(cache_dir).stats()
    if json_out:
        print_json({"root": str(s.root), "entries": s.entries, "bytes": s.bytes,
                    "max_bytes": s.max_bytes})
        return
    out.print(f"cache   {esc(s.root)}\nentries {s.entries}\nsize    {_human(s.bytes)} of "
              f"{_human(s.max_bytes)} (least recently used results are removed beyond that)")


@cache_app.command("clear")
def clear(
    cache_dir: CacheDir = None,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_out: Json = False,
) -> None:
    """Remove every cached result (originals and exports are not touched).

    Selected enhanced variants will need to be computed again.

    Example: fluxgym-coach cache clear --yes
    """
    cache = ImageCache(cache_dir)
    if not yes and not typer.confirm(f"Remove all cached results in {cache.root}?"):
        raise typer.Exit(1)
    n = cache.clear()
    if json_out:
        print_json({"removed": n})
    else:
        out.print(f"removed {n} cached results from {esc(cache.root)}")


def register(app: typer.Typer) -> None:
    """Add the ``cache`` command group."""
    app.add_typer(cache_app, name="cache")
