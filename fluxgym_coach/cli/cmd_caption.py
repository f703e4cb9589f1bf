"""``fluxgym-coach caption`` (the captioning job), and the dataset helpers the caption,
captions, tags and metadata commands share. Presentation only: the work is in
:mod:`fluxgym_coach.core` (``caption_images``) and :mod:`fluxgym_coach.captions.job`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.table import Table

from ..captions.job import BACKENDS, dataset_trigger, save_default_backend
from .. import core
from ..core import scan_blocking
from ..dataset import Dataset
from ..settings import load_settings, strip_credentials, update_settings
from ..statuses import CaptionStatus
from .common import (esc, EXIT_BACKEND, EXIT_FAILED, EXIT_OK, EXIT_USAGE, EventProgress, err, fail, out,
                     print_json, progress_sink, report_problems, run_resumable)
from .options import ApiAuth, ApiUrl, Json, Quiet, Strict

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
    """Open (and by default re-scan) a dataset; a DatasetError exits 2 with the reason
    through the root group (:class:`fluxgym_coach.cli.LazyCommands`)."""
    ds = Dataset(path)
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

    return run_resumable(go(), sink)


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
    drafts = [o for o in report.outcomes.values() if o.draft and o.status in (CaptionStatus.CAPTIONED, CaptionStatus.CACHED)]
    if drafts:
        err.print(f"[yellow]{len(drafts)} draft caption(s)[/]: they only state colours, "
                  "orientation and folder. Edit them in the TUI, or replace them later with "
                  "`fluxgym-coach caption DATASET --backend openai --refresh`.")


def register(app: typer.Typer) -> None:
    """Add the ``caption`` command (the ``captions`` group is in :mod:`.cmd_captions`)."""
    app.command("caption")(caption)
