"""``fluxgym-coach tui DATASET``: the keyboard-driven review in the terminal."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from .common import EXIT_USAGE, fail
from .options import ApiAuth, ApiUrl, Backend, CacheDir

PREVIEW_ENV = "FLUXGYM_COACH_PREVIEW"


def register(app: typer.Typer) -> None:
    """Add the ``tui`` command."""

    @app.command("tui")
    def tui(
        dataset: Path = typer.Argument(..., help="The folder of images (and .txt captions) to review."),
        preview: str = typer.Option(
            "auto", "--preview", envvar=PREVIEW_ENV,
            help="Image preview: auto (detect kitty graphics, then Sixel, else half-block cells), "
                 "kitty, sixel, halfcell, unicode or off. Environment: " + PREVIEW_ENV + "."),
        api_url: ApiUrl = None,
        api_auth: ApiAuth = None,
        backend: Backend = "auto",
        cache_dir: CacheDir = None,
        no_scan: bool = typer.Option(False, "--no-scan", help="Do not rescan the folder at start."),
        serve: bool = typer.Option(
            False, "--serve", help="Serve the same app to a browser on 127.0.0.1 (textual-serve) "
                                   "instead of this terminal; over SSH: ssh -L PORT:127.0.0.1:PORT HOST."),
        port: int = typer.Option(8000, "--port", min=1, max=65535,
                                 help="Port of --serve (on 127.0.0.1 only)."),
    ) -> None:
        """Keyboard review: captions, enhancement, accept/reject, export.

        Works over SSH and in tmux. Press ? in the app for every key, ctrl+p for the
        command palette, q to quit. Decisions are stored: reopening restores them.
        With --serve the app runs in a browser instead (previews as half-blocks).

        Example: fluxgym-coach tui ./photos --api-url http://127.0.0.1:7860
        """
        from ..dataset import DatasetError

        name = _backend_name(backend, api_url)
        if serve:
            from ..tui.serve import ServeError, serve_app

            try:
                serve_app(dataset, port=port, api_url=api_url, api_auth=api_auth,
                          cache_dir=cache_dir, scan=not no_scan, backend=name)
            except (ServeError, DatasetError) as exc:
                raise fail(str(exc), EXIT_USAGE) from exc
            return
        _run_app(dataset, preview, api_url, api_auth, name, cache_dir, not no_scan)


def _backend_name(backend: str, api_url: list[str] | None) -> str:
    """The enhancement backend ``--backend`` and ``--api-url`` mean, as for every command
    (:func:`core.resolve_backend_name`); an unknown name is a usage error now, not when
    the first image is enhanced."""
    from ..core import resolve_backend_name
    from ..enhance.backends.base import BACKEND_NAMES

    name = resolve_backend_name(backend, api_url)
    if name not in BACKEND_NAMES:
        raise typer.BadParameter(f"{backend!r}: use one of {', '.join(BACKEND_NAMES)}",
                                 param_hint="--backend")
    return name


def _run_app(dataset: Path, preview: str, api_url: list[str] | None, api_auth: str | None,
             backend: str, cache_dir: Path | None, scan: bool) -> None:
    """Start the review app in this terminal (checks the preview mode and the terminal first)."""
    from ..dataset import DatasetError
    from ..tui.widgets.preview import PREVIEW_MODES  # imports textual-image: probes the terminal now

    if preview not in PREVIEW_MODES:
        raise fail(f"--preview {preview!r}: use one of {', '.join(PREVIEW_MODES)}", EXIT_USAGE)
    from ..tui.app import ReviewApp
    from ..tui.serve import served
    from ..tui.terminal import apply_colour_depth, current_terminal, use_real_window_size

    if served():  # a browser session of --serve: xterm.js shows 24-bit half-blocks
        preview = "halfcell" if preview == "auto" else preview
    else:
        apply_colour_depth(current_terminal())  # before the app reads COLORTERM
        use_real_window_size()  # a stale $COLUMNS would override the terminal's size

    try:
        app_ = ReviewApp(dataset, preview=preview, api_url=api_url, api_auth=api_auth, backend=backend,
                         cache_dir=cache_dir, scan=scan)
    except DatasetError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    if not served() and not (sys.stdin.isatty() and sys.stdout.isatty()):
        app_.dataset.close()
        raise fail("the review UI needs a terminal: run it in one (over SSH: ssh -t HOST "
                   "fluxgym-coach tui ...). Every action also exists as a command: see "
                   "fluxgym-coach --help.", EXIT_USAGE)
    app_.run()
