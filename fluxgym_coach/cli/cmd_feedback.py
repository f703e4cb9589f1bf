"""``fluxgym-coach feedback ...``: acceptance rates, suggested defaults, export and merge of decisions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..feedback import MIN_DECISIONS, acceptance_rates, export_decisions, import_decisions, learn_defaults
from ..store import Store, StoreError
from .common import esc, EXIT_FAILED, EXIT_OK, EXIT_USAGE, err, fail, out, print_json
from .options import Json

feedback_app = typer.Typer(help="Review decisions: acceptance rates, learned defaults, sharing."
                                "\n\nExample: fluxgym-coach feedback suggest ./photos",
                           no_args_is_help=True)

DatasetArg = Annotated[Path, typer.Argument(help="Dataset folder (its store holds the decisions).")]
Category = Annotated[Optional[str], typer.Option(
    "--category", help="Category pattern: bw|colour / small|large / photo|drawing, e.g. 'bw' or "
                       "'colour/small' ('*' matches any part).", show_default=False)]


def _store(dataset: Path) -> Store:
    if not dataset.is_dir():
        raise fail(f"{dataset}: not a folder. Pass the dataset folder.", EXIT_USAGE)
    try:
        return Store.for_dataset(dataset)
    except StoreError as exc:
        raise fail(str(exc), EXIT_USAGE) from None


def _value(v: object) -> str:
    s = str(v)
    return s if len(s) <= 48 else s[:45] + "..."


@feedback_app.command("stats")
def stats(dataset: DatasetArg, category: Category = None,
          pooled: Annotated[bool, typer.Option("--pooled", help="Pool all matching categories.")] = False,
          json_out: Json = False) -> None:
    """Acceptance rate of each setting, per image category.

    With the counts of accepted, rejected and reprocessed variants.

    Example: fluxgym-coach feedback stats ./photos --category bw
    """
    with _store(dataset) as store:
        rows = acceptance_rates(store, category, per_category=not pooled)
    if json_out:
        print_json([r.to_dict() for r in rows])
        raise typer.Exit(EXIT_OK)
    if not rows:
        out.print("no judged decisions yet: accept or reject enhanced variants (TUI or "
                  "`fluxgym-coach review`) first")
        return
    table = Table(title="Acceptance by setting")
    for col in ("category", "setting", "accepted", "rejected", "reprocessed", "rate", "lower bound"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(esc(r.category), esc(f"{r.param} = {_value(r.value)}"), str(r.accepted), str(r.rejected),
                      str(r.reprocessed), f"{r.rate:.0%}", f"{r.lower_bound:.0%}")
    out.print(table)


@feedback_app.command("suggest")
def suggest(dataset: DatasetArg, category: Category = None,
            min_count: Annotated[int, typer.Option("--min-count", min=1,
                                                   help="Fewest judged decisions a setting needs.")] = MIN_DECISIONS,
            json_out: Json = False) -> None:
    """The enhancement defaults users accept most.

    The shipped defaults are kept where the evidence is thin (--min-count).

    Example: fluxgym-coach feedback suggest ./photos --min-count 5
    """
    with _store(dataset) as store:
        s = learn_defaults(store, category, min_count=min_count)
    if json_out:
        print_json(s.to_dict())
        raise typer.Exit(EXIT_OK)
    if not s.learned:
        out.print(f"shipped defaults kept: {s.decisions} judged decisions, no setting has "
                  f"{min_count}+ decisions and a better acceptance than the default")
        return
    for param, value in s.changes.items():
        e = s.evidence[param]
        out.print(esc(f"{param} = {_value(value)}") + f"  (accepted {e.accepted}/{e.total}, {e.rate:.0%})")


@feedback_app.command("export")
def export(dataset: DatasetArg,
           out_path: Annotated[Optional[Path], typer.Option("--out", "-o", show_default=False,
                                                            help="File to write (default: stdout).")] = None,
           local_only: Annotated[bool, typer.Option("--local-only",
                                                    help="Leave out decisions imported from elsewhere.")] = False
           ) -> None:
    """Write the decisions as JSON Lines (for `feedback import`).

    To merge them into a dataset on another machine.

    Example: fluxgym-coach feedback export ./photos --out decisions.jsonl
    """
    with _store(dataset) as store:
        target = sys.stdout if out_path is None or str(out_path) == "-" else out_path
        n = export_decisions(store, target, include_imported=not local_only)
    if target is not sys.stdout:
        err.print(f"{n} decisions written to {esc(out_path)}")


@feedback_app.command("import")
def import_(dataset: DatasetArg,
            files: Annotated[list[Path], typer.Argument(help="JSON Lines files from `feedback export`.")],
            json_out: Json = False) -> None:
    """Merge exported decisions into this dataset's learning data.

    Decisions already present are skipped. Exit code 1 when some lines were invalid (the valid ones are merged), 2 when a file is unreadable.

    Example: fluxgym-coach feedback import ./photos decisions.jsonl
    """
    reports = {}
    with _store(dataset) as store:
        for f in files:
            try:
                reports[str(f)] = import_decisions(store, f)
            except OSError as exc:
                raise fail(f"{f}: cannot read it ({exc.strerror or exc})", EXIT_USAGE) from None
    bad = any(r.invalid for r in reports.values())
    if json_out:
        print_json({k: r.to_dict() for k, r in reports.items()})
    else:
        for name, r in reports.items():
            out.print(f"{esc(name)}: {r.added} added, {r.skipped} already present, {len(r.invalid)} invalid")
            for where, reason in list(r.invalid.items())[:20]:
                err.print(f"[yellow]invalid[/] {esc(where)}: {esc(reason)}")
    raise typer.Exit(EXIT_FAILED if bad else EXIT_OK)


def register(app: typer.Typer) -> None:
    """Add the ``feedback`` command group."""
    app.add_typer(feedback_app, name="feedback")
