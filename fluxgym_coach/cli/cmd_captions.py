"""``fluxgym-coach captions ...``: caption rules (lint, token counts) and undoable bulk
edits. Presentation only: the work is in :mod:`fluxgym_coach.captions.text`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..captions import text as rules
from ..captions.job import caption_status
from ..findings import Severity
from .cmd_caption import DatasetArg, Images, Trigger, open_dataset, resolve_trigger
from .common import esc, EXIT_FAILED, EXIT_OK, EXIT_USAGE, err, fail, out, print_json
from .options import Json, Strict, TriggerCheck

captions_app = typer.Typer(help="Caption rules: lint, token counts and undoable bulk edits.\n\n"
                                "Example: fluxgym-coach captions lint ./photos --trigger ohwx",
                           no_args_is_help=True)


@captions_app.command("lint")
def lint_cmd(
    dataset: DatasetArg,
    trigger: TriggerCheck = None,
    min_words: Annotated[int, typer.Option("--min-words", min=0, help="Fewer words is too short.")] = 3,
    json_out: Json = False,
    strict: Strict = False,
) -> None:
    """Check every caption against the caption rules.

    Rules: missing/empty, UTF-8, one line, trigger word first, too short,
    CLIP-L (77) and T5 (512) token budgets, tags mixed with prose, repeated
    tags, filler words, duplicates across images, length outliers. Exit 1
    when a finding is an error (with --strict: a warning too).

    Example: fluxgym-coach captions lint ./photos --trigger ohwx --strict
    """
    ds = open_dataset(dataset)
    with ds:
        trig = resolve_trigger(ds, trigger, save=False)
        texts, encodings = {}, {}
        for rec in ds.images():
            if rec.error:
                continue
            cap = ds.read_caption(rec.relpath)
            texts[rec.relpath] = cap.text if cap else None
            encodings[rec.relpath] = cap.encoding if cap else None
        findings = rules.lint_many(texts, trig, encodings=encodings, min_words=min_words)
    counter = rules.default_counter()
    worst = {f.severity for fs in findings.values() for f in fs}
    if json_out:
        print_json({"trigger": trig, "exact_tokens": counter.exact,
                    "findings": {rel: [f.to_dict() for f in fs] for rel, fs in findings.items() if fs}})
    else:
        table = Table("image", "severity", "code", "message")
        colour = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
        for rel, fs in findings.items():
            for f in fs:
                table.add_row(esc(rel), f"[{colour[f.severity]}]{f.severity}[/]", f.code, esc(f.message))
        out.print(table if table.row_count else "[green]no findings[/]")
        if not all(counter.exact.values()):
            err.print("token counts are estimates: no local tokenizer found (see docs/captions.md)")
    code = EXIT_FAILED if Severity.ERROR in worst or (strict and Severity.WARNING in worst) else EXIT_OK
    raise typer.Exit(code)


@captions_app.command("tokens")
def tokens_cmd(
    dataset: Annotated[Optional[Path], typer.Argument(help="Dataset folder (or use --text).")] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="Count this text instead.")] = None,
    json_out: Json = False,
) -> None:
    """CLIP-L and T5 token counts per caption (limits 77 and 512).

    Exact with a local tokenizer, otherwise marked as estimates.

    Example: fluxgym-coach captions tokens --text "ohwx, a cat on a red sofa"
    """
    items: dict[str, str] = {}
    if text is not None:
        items["--text"] = text
    elif dataset is not None:
        ds = open_dataset(dataset)
        with ds:
            items = {r.relpath: r.caption or "" for r in ds.images() if not r.error}
    else:
        raise fail("give a DATASET or --text", EXIT_USAGE)
    counts = {k: rules.count_tokens(v) for k, v in items.items()}
    if json_out:
        print_json({k: c.to_dict() for k, c in counts.items()})
    else:
        table = Table("caption", "CLIP-L / 77", "T5 / 512")
        for k, c in counts.items():
            table.add_row(esc(k), f"{c.clip}{'' if c.clip_exact else ' ~'}", f"{c.t5}{'' if c.t5_exact else ' ~'}")
        out.print(table)
        if any(not (c.clip_exact and c.t5_exact) for c in counts.values()):
            err.print("~ = estimate (no local tokenizer found)")
    raise typer.Exit(EXIT_OK)


def _bulk_done(report: rules.BulkReport, json_out: bool) -> None:
    """Print a bulk edit's outcome; exit 1 when a caption could not be written (named on stderr)."""
    if json_out:
        print_json(report.to_dict())
    else:
        out.print(f"{len(report.changed)} caption(s) changed, {report.unchanged} unchanged, "
                  f"{len(report.skipped)} skipped"
                  + (f", {len(report.failed)} not written" if report.failed else "")
                  + f". Undo: fluxgym-coach captions undo DATASET --op {report.op_id}")
    for rel, why in report.failed.items():
        err.print(f"error {esc(rel)}: {esc(why)}")
    raise typer.Exit(EXIT_FAILED if report.failed else EXIT_OK)


@captions_app.command("prefix")
def prefix_cmd(dataset: DatasetArg, text: Annotated[str, typer.Argument(help="Text to put first.")],
               images: Images = None, json_out: Json = False) -> None:
    """Put TEXT first in every caption; undoable.

    A single tag such as the trigger word is moved to the front where it is
    already a tag, never doubled.

    Example: fluxgym-coach captions prefix ./photos ohwx
    """
    with open_dataset(dataset) as ds:
        _bulk_done(rules.bulk_prefix(ds, text, images or None), json_out)


@captions_app.command("trigger-first")
def trigger_first_cmd(dataset: DatasetArg, trigger: Trigger = None, images: Images = None,
                      json_out: Json = False) -> None:
    """Put the trigger word first in every caption; undoable.

    Where it is already a tag it is moved to the front, never doubled.

    Example: fluxgym-coach captions trigger-first ./photos --trigger ohwx
    """
    with open_dataset(dataset) as ds:
        word = resolve_trigger(ds, trigger)
        if not word:
            raise fail("no trigger word: give --trigger WORD (it is saved for the dataset)", EXIT_USAGE)
        _bulk_done(rules.bulk_trigger_first(ds, word, images or None), json_out)


@captions_app.command("suffix")
def suffix_cmd(dataset: DatasetArg, text: Annotated[str, typer.Argument(help="Text to append.")],
               images: Images = None, json_out: Json = False) -> None:
    """Append TEXT to every caption; undoable.

    Example: fluxgym-coach captions suffix ./photos ", film grain"
    """
    with open_dataset(dataset) as ds:
        _bulk_done(rules.bulk_suffix(ds, text, images or None), json_out)


@captions_app.command("replace")
def replace_cmd(
    dataset: DatasetArg,
    pattern: Annotated[str, typer.Argument(help="Regular expression (or text with --literal).")],
    replacement: Annotated[str, typer.Argument(help="Replacement (\\1 for groups).")],
    literal: Annotated[bool, typer.Option("--literal", help="Plain text, not a regex.")] = False,
    ignore_case: Annotated[bool, typer.Option("--ignore-case", "-I",
                                              help="Match regardless of letter case.")] = False,
    images: Images = None, json_out: Json = False,
) -> None:
    """Find and replace in every caption; undoable.

    Example: fluxgym-coach captions replace ./photos "grey" "gray" --literal
    """
    with open_dataset(dataset) as ds:
        try:
            report = rules.bulk_replace(ds, pattern, replacement, images or None, regex=not literal,
                                        ignore_case=ignore_case)
        except ValueError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        _bulk_done(report, json_out)


@captions_app.command("sort-tags")
def sort_cmd(dataset: DatasetArg,
             by: Annotated[str, typer.Option("--by", help="alpha or frequency.")] = "alpha",
             keep_first: Annotated[int, typer.Option("--keep-first", min=0,
                                                     help="Tags left in place at the start.")] = 1,
             images: Images = None, json_out: Json = False) -> None:
    """Sort the tags of every caption; undoable.

    The first tags (--keep-first, 1: the trigger word) stay in place.

    Example: fluxgym-coach captions sort-tags ./photos --by frequency
    """
    with open_dataset(dataset) as ds:
        try:
            report = rules.bulk_sort_tags(ds, images or None, keep_first=keep_first, by=by)
        except ValueError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        _bulk_done(report, json_out)


@captions_app.command("dedup-tags")
def dedup_cmd(dataset: DatasetArg, images: Images = None, json_out: Json = False) -> None:
    """Remove repeated tags from every caption; undoable.

    Example: fluxgym-coach captions dedup-tags ./photos
    """
    with open_dataset(dataset) as ds:
        _bulk_done(rules.bulk_dedup_tags(ds, images or None), json_out)


@captions_app.command("undo")
def undo_cmd(
    dataset: DatasetArg,
    op: Annotated[Optional[str], typer.Option("--op", help="Operation id to undo as a whole.")] = None,
    image: Annotated[Optional[str], typer.Option("--image", "-i", help="Undo this image's last change.")] = None,
    json_out: Json = False,
) -> None:
    """Undo a bulk operation, or one image's last caption change.

    --op ID undoes an operation as a whole, --image REL one image's last
    change; without either, the recent operations are listed with their ids.

    Example: fluxgym-coach captions undo ./photos --image chelsea.png
    """
    with open_dataset(dataset, scan=False) as ds:
        if image:
            try:
                restored = ds.undo_caption(image)
            except LookupError as exc:
                raise fail(str(exc), EXIT_USAGE) from None
            if json_out:
                print_json({"image": image, "restored": restored})
            else:
                out.print(esc(f"{image}: restored {restored!r}") if restored is not None
                          else esc(f"{image}: caption removed (there was none before)"))
            raise typer.Exit(EXIT_OK)
        if not op:
            ops = rules.operations(ds)
            if json_out:
                print_json(ops)
            else:
                table = Table("operation", "images", "undone")
                for o in ops:
                    table.add_row(esc(o["op_id"]), str(o["images"]), str(o["undone"]))
                out.print(table)
            raise typer.Exit(EXIT_OK)
        try:
            report = rules.undo_operation(ds, op)
        except LookupError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        if json_out:
            print_json(report.to_dict())
        else:
            out.print(f"{len(report.changed)} caption(s) restored; {len(report.skipped)} left "
                      "(edited after the operation)")
    raise typer.Exit(EXIT_OK)


@captions_app.command("status")
def status_cmd(dataset: DatasetArg, json_out: Json = False) -> None:
    """Who wrote each caption: missing, draft, generated or edited.

    generated: a captioner wrote it; edited: a person wrote or changed it.

    Example: fluxgym-coach captions status ./photos --json
    """
    with open_dataset(dataset) as ds:
        statuses = {r.relpath: caption_status(ds, r.relpath) for r in ds.images() if not r.error}
    if json_out:
        print_json(statuses)
    else:
        table = Table("image", "caption")
        for rel, st in statuses.items():
            table.add_row(esc(rel), st)
        out.print(table)
    raise typer.Exit(EXIT_OK)


def register(app: typer.Typer) -> None:
    """Add the ``captions`` group."""
    app.add_typer(captions_app, name="captions")
