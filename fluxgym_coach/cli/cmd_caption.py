"""``fluxgym-coach caption`` (the captioning job) and ``fluxgym-coach captions ...``
(lint, token counts, undoable bulk edits). Presentation only: the work is in
:mod:`fluxgym_coach.captions.job` and :mod:`fluxgym_coach.captions.text`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.table import Table

from ..captions import text as rules
from ..captions.job import BACKENDS, caption_status, dataset_trigger, save_default_backend
from ..captions.backends.base import CaptionBackendError
from .. import core
from ..core import scan_blocking
from ..dataset import Dataset, DatasetError
from ..settings import load_settings, strip_credentials, update_settings
from .common import (esc, EXIT_BACKEND, EXIT_FAILED, EXIT_OK, EXIT_USAGE, EventProgress, err, fail, out,
                     print_json, progress_sink, report_problems)
from .options import ApiAuth, ApiUrl, Json, Quiet, Strict, TriggerCheck

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ..captions.backends.base import CaptionBackend
    from ..captions.job import CaptionReport

DatasetArg = Annotated[Path, typer.Argument(help="Folder of images with <stem>.txt captions.")]
Images = Annotated[Optional[list[str]], typer.Option(
    "--image", "-i", help="Only this image (relpath as `scan` lists it); repeat for several.",
    show_default=False)]
Trigger = Annotated[Optional[str], typer.Option(
    "--trigger", "-t", help="Trigger word, put first in every caption (saved for the dataset; "
                            "later commands use it when omitted).", show_default=False)]


def open_dataset(path: Path, scan: bool = True) -> Dataset:
    """Open (and by default re-scan) a dataset, or exit 2 with the reason."""
    try:
        ds = Dataset(path)
    except DatasetError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if scan:
        scan_blocking(ds)  # plugins hear of the images it indexes
    return ds


def resolve_trigger(ds: Dataset, trigger: str | None, save: bool = True) -> str | None:
    """The trigger word given, else the one saved for the dataset; saves a given one."""
    if trigger is not None:
        trigger = trigger.strip()
        if not trigger or "\n" in trigger:
            raise fail("the trigger word must be a non-empty single line", EXIT_USAGE)
        if save:
            update_settings(ds.store, trigger=trigger)
        return trigger
    return dataset_trigger(ds)


def caption(
    ctx: typer.Context,
    dataset: DatasetArg,
    backend: Annotated[Optional[str], typer.Option(
        "--backend", "-b", help=f"Captioner: {', '.join(BACKENDS)}. Default: the dataset's saved "
                                "choice (--set-default), else draft.", show_default=False)] = None,
    only_missing: Annotated[bool, typer.Option(
        "--only-missing", help="Caption only images without a caption (the default).")] = False,
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="Also replace captions a captioner wrote that nobody edited "
                          "(e.g. drafts). User-written captions are kept.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Caption every image again. Old captions stay in the history "
                            "(`fluxgym-coach captions undo`).")] = False,
    trigger: Trigger = None,
    images: Images = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help="openai: model name on the server; forge: clip or deepdanbooru; "
                              "florence2: local model folder.", show_default=False)] = None,
    base_url: Annotated[Optional[str], typer.Option(
        "--base-url", help="openai: server URL, e.g. http://127.0.0.1:11434/v1 (Ollama).",
        show_default=False)] = None,
    api_key_env: Annotated[Optional[str], typer.Option(
        "--api-key-env", help="openai: environment variable holding the API key "
                              "(default OPENAI_API_KEY; the key is never printed).",
        show_default=False)] = None,
    prompt: Annotated[Optional[str], typer.Option(
        "--prompt", help="openai: user prompt template; placeholders {trigger} {tags} {filename} "
                         "{folder}.", show_default=False)] = None,
    system_prompt: Annotated[Optional[str], typer.Option(
        "--system-prompt", help="openai: system prompt.", show_default=False)] = None,
    max_tokens: Annotated[Optional[int], typer.Option(
        "--max-tokens", min=8, help="openai: longest answer, in tokens.", show_default=False)] = None,
    temperature: Annotated[Optional[float], typer.Option(
        "--temperature", min=0.0, max=2.0, help="openai: sampling temperature.",
        show_default=False)] = None,
    image_size: Annotated[Optional[int], typer.Option(
        "--image-size", min=64, help="openai: long side in px the image is downscaled to before "
                                     "sending.", show_default=False)] = None,
    timeout: Annotated[Optional[float], typer.Option(
        "--timeout", min=1.0, help="openai: seconds to wait for one answer.",
        show_default=False)] = None,
    concurrency: Annotated[Optional[int], typer.Option(
        "--concurrency", min=1, max=64, help="Requests in flight.", show_default=False)] = None,
    api_url: ApiUrl = None,
    api_auth: ApiAuth = None,
    set_default: Annotated[bool, typer.Option(
        "--set-default", help="Save this backend and its options as the dataset's default.")] = False,
    json_out: Json = False,
    strict: Strict = False,
    quiet: Quiet = False,
) -> None:
    """Caption the images of a dataset with a captioning backend.

    Resumable (run the same command again after an interruption) and cached
    by image digest + backend + prompt + model. Captions are written as
    UTF-8 sidecars with the trigger word first; every replaced caption stays
    in the history. The draft backend (offline) writes drafts to edit.
    Exit codes: 0 ok, 1 some image failed, 2 bad arguments, 3 backend
    unreachable or unusable. --backend forge asks the first --api-url server
    (default http://127.0.0.1:7860).

    Example: fluxgym-coach caption ./photos --backend openai --model gpt-4o-mini
    """
    mode = _mode(only_missing, refresh, overwrite)
    given = {k: ctx.params[k] for k in _CAPTIONER_OPTIONS}
    from_env = getattr(ctx.get_parameter_source("api_url"), "name", "") == "ENVIRONMENT"
    with open_dataset(dataset) as ds:
        trig = resolve_trigger(ds, trigger)
        captioner = _captioner(ds, backend, given, api_url, api_auth, set_default, from_env)
        _check_images(ds, images)
        with progress_sink(quiet or json_out) as sink:
            report = _run_caption(ds, captioner, images or None, mode, trig, sink)
    _show_caption(report, captioner.name, mode, sink, json_out)
    if report.fatal:
        err.print(f"[bold red]stopped:[/] {esc(report.fatal)}")
        raise typer.Exit(EXIT_BACKEND)
    failed = report.failed or report.unreadable or (strict and sink.problems.warnings)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def _mode(only_missing: bool, refresh: bool, overwrite: bool) -> str:
    """The caption mode of the flags (only-missing when none), or exit 2 for two at once."""
    if sum((only_missing, refresh, overwrite)) > 1:
        raise fail("choose one of --only-missing, --refresh, --overwrite", EXIT_USAGE)
    return "overwrite" if overwrite else "refresh" if refresh else "only-missing"


#: ``caption`` options passed to the captioner as they are (None: not given).
_CAPTIONER_OPTIONS = ("model", "base_url", "api_key_env", "prompt", "system_prompt", "max_tokens",
                      "temperature", "image_size", "concurrency", "timeout")


def _captioner(ds: Dataset, backend: str | None, given: dict[str, Any], api_urls: list[str] | None,
               api_auth: str | None, set_default: bool, urls_from_env: bool) -> CaptionBackend:
    """The caption backend of this run (:func:`fluxgym_coach.core.caption_backend_choice`:
    the options given over the dataset's saved choice), saved as the dataset's default
    with ``set_default``; exit 2 for an unknown backend or option. The forge captioner
    asks the first server of ``api_urls``; servers from ``$FLUXGYM_COACH_API_URL``
    (``urls_from_env``) are for Forge only, so other captioners ignore them."""
    settings = load_settings(ds.store)
    name = core.caption_backend_choice(settings, backend=backend)[0]
    if urls_from_env and name != "forge":
        api_urls = None
    elif name == "forge" and api_urls and len(api_urls) > 1:
        err.print(f"[yellow]note[/] the forge captioner asks one server: {esc(strip_credentials(api_urls[0]))}")
    api_url = api_urls[0] if api_urls else None
    try:
        name, options = core.caption_backend_choice(settings, backend=backend, dataset_root=ds.root,
                                                     url=api_url, api_auth=api_auth, **given)
        captioner = core.captioner_from_settings(settings, backend=backend, dataset_root=ds.root,
                                                 url=api_url, api_auth=api_auth, **given)
    except core.ForgeOnlyOption:
        raise fail("--api-url is for --backend forge; the openai backend takes --base-url",
                   EXIT_USAGE) from None
    except (ValueError, TypeError) as exc:
        raise fail(f"--backend {backend or settings.caption.backend}: {exc}", EXIT_USAGE) from None
    if set_default:
        save_default_backend(ds, name, options)
    return captioner


def _check_images(ds: Dataset, images: list[str] | None) -> None:
    """Exit 2 naming the --image values that are not images of the dataset."""
    missing = [r for r in (images or []) if ds.store.image(r) is None]
    if missing:
        raise fail(f"not in the dataset: {', '.join(missing)} (relpaths as `fluxgym-coach scan` "
                   "lists them)", EXIT_USAGE)


def _run_caption(ds: Dataset, captioner: CaptionBackend, images: list[str] | None, mode: str,
                 trigger: str | None, sink: EventProgress) -> CaptionReport:
    """Run :func:`fluxgym_coach.core.caption_images` to the end (the backend closed after);
    exit 3 when the backend cannot work, 130 on Ctrl-C."""
    async def go() -> CaptionReport:
        try:
            return await core.caption_images(ds, images, captioner, mode=mode, trigger=trigger,
                                             on_event=sink)
        finally:
            await captioner.aclose()

    try:
        return asyncio.run(go())
    except CaptionBackendError as exc:
        raise fail(exc.reason, EXIT_BACKEND) from None
    except KeyboardInterrupt:
        sink.progress.stop()  # the bars' last frame first, then the message
        err.print("interrupted: run the same command again to resume")
        raise typer.Exit(130) from None


def _show_caption(report: CaptionReport, backend: str, mode: str, sink: EventProgress,
                  json_out: bool) -> None:
    """Print the run's result: the JSON document, or the counts table, the problems by file
    (the unreadable images of the dataset included) and a note on drafts."""
    if json_out:
        print_json(report.to_dict())
        return
    table = Table(title=esc(f"Captions by {backend} ({mode})"), show_header=False)
    for status, n in sorted(report.counts().items()):
        table.add_row(status, str(n))
    if report.unreadable:
        table.add_row("unreadable (left out)", str(len(report.unreadable)))
    table.add_row("backend requests", str(report.backend_requests))
    if report.resumed:
        table.add_row("resumed", "yes: images done earlier were not redone")
    out.print(table)
    for rel, reason in report.unreadable.items():
        err.print(f"[red]unreadable[/] {esc(rel)}: {esc(reason)}", highlight=False)
    report_problems(sink.problems)
    drafts = [o for o in report.outcomes.values() if o.draft and o.status in ("captioned", "cached")]
    if drafts:
        err.print(f"[yellow]{len(drafts)} draft caption(s)[/]: they only state colours, "
                  "orientation and folder. Edit them in the TUI, or replace them later with "
                  "`fluxgym-coach caption DATASET --backend openai --refresh`.")


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
        colour = {"error": "red", "warning": "yellow", "info": "cyan"}
        for rel, fs in findings.items():
            for f in fs:
                table.add_row(esc(rel), f"[{colour[f.severity]}]{f.severity}[/]", f.code, esc(f.message))
        out.print(table if table.row_count else "[green]no findings[/]")
        if not all(counter.exact.values()):
            err.print("token counts are estimates: no local tokenizer found (see docs/captions.md)")
    code = EXIT_FAILED if "error" in worst or (strict and "warning" in worst) else EXIT_OK
    raise typer.Exit(code)


@captions_app.command("tokens")
def tokens_cmd(
    dataset: Annotated[Optional[Path], typer.Argument(help="Dataset folder (or use --text).")] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="Count this text instead.")] = None,
    json_out: Json = False,
) -> None:
    """CLIP-L (limit 77) and T5 (limit 512) token counts, per caption.

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
    if json_out:
        print_json(report.to_dict())
    else:
        out.print(f"{len(report.changed)} caption(s) changed, {report.unchanged} unchanged, "
                  f"{len(report.skipped)} skipped. Undo: fluxgym-coach captions undo DATASET "
                  f"--op {report.op_id}")
    raise typer.Exit(EXIT_OK)


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
    """Put the trigger word first in every caption (moved where it is already a tag); undoable.

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
    """Sort the tags of every caption (the first one, the trigger word, stays); undoable.

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
    """Undo a bulk operation (--op ID), or the last caption change of one image (--image).

    Without either, list the recent operations with their ids.

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
    """Who wrote each caption: missing, draft, generated (a captioner) or edited (a person).

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
    """Add ``caption`` and the ``captions`` group."""
    app.command("caption")(caption)
    app.add_typer(captions_app, name="captions")
