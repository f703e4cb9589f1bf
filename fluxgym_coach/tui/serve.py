"""``fluxgym-coach tui DATASET --serve``: the review app in a browser, through textual-serve.

textual-serve runs a web server whose every browser session starts the app as
a child process (``fluxgym-coach tui DATASET`` with Textual's web driver) and
relays it to xterm.js over a websocket. It listens on 127.0.0.1 only: from
another machine, tunnel it (``ssh -L 8000:127.0.0.1:8000 HOST``, then open
http://127.0.0.1:8000). Credentials (``--api-auth``) reach the child through
its environment, never its command line.
"""

from __future__ import annotations

import errno
import os
import shlex
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import FluxgymCoachError
from ..cli.options import API_AUTH_ENV

HOST = "127.0.0.1"
#: The driver textual-serve gives the app's child process.
WEB_DRIVER = "textual.drivers.web_driver:WebDriver"


class ServeError(FluxgymCoachError):
    """The server cannot start (port taken, textual-serve missing); the message says why."""


def served() -> bool:
    """This process is an app session started by textual-serve (Textual's web driver)."""
    return os.environ.get("TEXTUAL_DRIVER", "") == WEB_DRIVER


def app_command(dataset: Path, *, api_url: str | Sequence[str] | None = None, cache_dir: Path | None = None,
                scan: bool = True, backend: str | None = None) -> str:
    """The shell command textual-serve runs per browser session (this Python, this package);
    ``api_url``: one server or a pool, ``backend``: the resolved ``--backend``."""
    args = [sys.executable, "-m", "fluxgym_coach", "tui", str(dataset.resolve()),
            "--preview", "halfcell"]
    for url in [api_url] if isinstance(api_url, str) else api_url or []:
        args += ["--api-url", url]
    if backend:
        args += ["--backend", backend]
    if cache_dir:
        args += ["--cache-dir", str(Path(cache_dir).resolve())]
    if not scan:
        args.append("--no-scan")
    return shlex.join(args)


def _check_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(f"port {port} on {HOST} is in use: choose another with --port") from exc
            raise ServeError(f"cannot listen on {HOST}:{port}: {exc.strerror}") from exc


def serve_app(dataset: Path, *, port: int = 8000, api_url: str | Sequence[str] | None = None,
              api_auth: str | None = None, cache_dir: Path | None = None, scan: bool = True,
              backend: str | None = None) -> None:
    """Serve the review app of ``dataset`` on http://127.0.0.1:``port`` until Ctrl-C.

    Raises :class:`~fluxgym_coach.dataset.DatasetError` for a folder that is not
    a dataset (checked before serving) and :class:`ServeError` when the port is
    taken or textual-serve is not installed.
    """
    from ..dataset import Dataset

    Dataset(dataset).close()  # a bad folder fails here, not in every browser session
    try:
        from textual_serve.server import Server
    except ImportError as exc:
        raise ServeError("--serve needs textual-serve: pip install textual-serve") from exc
    _check_port(port)
    if api_auth:
        os.environ[API_AUTH_ENV] = api_auth  # inherited by the sessions, not on their command line
    server = Server(app_command(dataset, api_url=api_url, cache_dir=cache_dir, scan=scan, backend=backend),
                    host=HOST, port=port, title=f"fluxgym-coach: {Path(dataset).name}")
    print(f"Serving the review of {dataset} on http://{HOST}:{port} (Ctrl-C stops). "
          f"From another machine: ssh -L {port}:{HOST}:{port} HOST, then open http://{HOST}:{port}",
          flush=True)
    server.serve()
