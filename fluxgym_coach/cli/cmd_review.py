"""``fluxgym-coach review DATASET --accept/--reject IMAGES``: review decisions for scripts."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..core import scan_blocking
from ..dataset import Dataset
from ..feedback import ACCEPT, REJECT, REPROCESS, Decision, decisions, record_decision
from ..statuses import ReviewStatus
from .common import esc, EXIT_USAGE, fail, out, print_json
from .options import Json


def _expand(patterns: list[str] | None, relpaths: list[str]) -> list[str]:
    """Relpaths matching each pattern, in order; raises typer.Exit(2) for a pattern matching nothing."""
    picked: list[str] = []
    for raw in patterns or []:
        for pattern in (p.strip() for p in raw.split(",")):
            if not pattern:
                continue
            hits = [r for r in relpaths if r == pattern or fnmatch.fnmatchcase(r, pattern)]
            if not hits:
                raise fail(f"no image matches {pattern!r}: give a path relative to the dataset "
                           "folder or a glob such as '*.png'", EXIT_USAGE)
            picked.extend(h for h in hits if h not in picked)
    return picked


def review(
    dataset: Annotated[Path, typer.Argument(help="Folder of images with <stem>.txt captions.")],
    accept: Annotated[Optional[list[str]], typer.Option("--accept", show_default=False,
                      help="Accept these images (relpaths or globs; repeat or comma-separate).")] = None,
    reject: Annotated[Optional[list[str]], typer.Option("--reject", show_default=False,
                      help="Reject these images: they are left out of the export.")] = None,
    reprocess: Annotated[Optional[list[str]], typer.Option("--reprocess", show_default=False,
                         help="Mark these images for reprocessing with other settings.")] = None,
    variant: Annotated[str, typer.Option("--variant", help="What is judged: 'latest' (the newest "
                       "enhanced variant, or the original when there is none) or 'original'.")] = "latest",
    json_out: Json = False,
) -> None:
    """Record review decisions from a script, or show the review state.

    Each decision is stored with the image digest, the variant, its
    parameters and backend, and the time (the same record the TUI writes), and
    feeds the learning loop (`fluxgym-coach feedback suggest`). Accept selects
    the judged variant for export; reject leaves the image out. Without
    --accept/--reject/--reprocess it lists every image's status.

    Exit code: 0, or 2 for a pattern matching no image or a bad --variant.

    Example: fluxgym-coach review ./photos --accept '*.png' --reject blurry.jpg
    """
    if variant not in ("latest", "original"):
        raise fail(f"--variant must be 'latest' or 'original', not {variant!r}", EXIT_USAGE)
    ds = Dataset(dataset)  # a DatasetError exits 2 with the reason (cli.LazyCommands)
    with ds:
        scan_blocking(ds)  # plugins hear of the images it indexes
        relpaths = [r.relpath for r in ds.images()]
        plan = [(ACCEPT, _expand(accept, relpaths)), (REJECT, _expand(reject, relpaths)),
                (REPROCESS, _expand(reprocess, relpaths))]
        recorded = []
        for name, rels in plan:
            for rel in rels:
                variants = ds.store.variants(rel) if variant == "latest" else []
                v = variants[0] if variants else None
                d = Decision(rel, name, variant=v.cache_key if v else None,
                             params=dict(v.params) if v and name != REPROCESS else {},
                             backend=v.backend if v else None, source="cli")
                record_decision(ds.store, d)
                recorded.append({"relpath": rel, "decision": name, "variant": d.variant,
                                 "category": d.category, "id": d.id})
        selection = ds.store.selection()
        last = {d.relpath: d for d in decisions(ds.store)}
    if json_out:
        print_json({"dataset": str(ds.root), "recorded": recorded,
                    "status": {rel: {"status": selection.get(rel, (None, ReviewStatus.UNREVIEWED))[1],
                                     "variant": selection.get(rel, (None, ""))[0],
                                     "last_decision": last[rel].decision if rel in last else None}
                               for rel in relpaths}})
        raise typer.Exit(0)
    if recorded:
        for r in recorded:
            out.print(f"{r['decision']:<10} {esc(r['relpath'])}"
                      + (f" (variant {r['variant'][:12]})" if r["variant"] else " (original)"))
        return
    table = Table(title=f"Review state of {esc(ds.root)}")
    for col in ("image", "status", "exported variant", "last decision"):
        table.add_column(col, overflow="fold")
    for rel in relpaths:
        key, status = selection.get(rel, (None, ReviewStatus.UNREVIEWED))
        table.add_row(esc(rel), status, key[:12] if key else "original",
                      last[rel].decision if rel in last else "")
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``review`` command."""
    app.command("review")(review)
