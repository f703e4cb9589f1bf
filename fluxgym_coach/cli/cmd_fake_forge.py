"""``fluxgym-coach fake-forge``: run the fake Forge / A1111 server for demos and manual tests."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..testing.fake_forge import FakeForge, Faults
from .common import esc, EXIT_USAGE, err, fail, out


def fake_forge(
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Port on 127.0.0.1 (0 picks a free one).")] = 7860,
    auth: Annotated[Optional[str], typer.Option(
        "--api-auth", help="Require HTTP Basic auth: user:password (several separated by commas), "
                           "like Forge's --api-auth.", show_default=False)] = None,
    dialect: Annotated[str, typer.Option("--dialect", help="Error bodies of 'forge' or 'a1111'.")]
    = "forge",
    latency: Annotated[float, typer.Option("--latency", min=0.0,
                                           help="Seconds each job takes (under the job lock).")] = 0.0,
    image_latency: Annotated[float, typer.Option("--image-latency", min=0.0,
                                                 help="Extra seconds per image processed.")] = 0.0,
    fail_on: Annotated[Optional[list[int]], typer.Option(
        "--fail-on", help="Answer 500 to this job number (1-based; repeatable).",
        show_default=False)] = None,
    drop_on: Annotated[Optional[list[int]], typer.Option(
        "--drop-on", help="Drop the connection of this job number (repeatable).",
        show_default=False)] = None,
    truncate_batch: Annotated[int, typer.Option("--truncate-batch", min=0,
                                                help="Return this many fewer images per batch.")] = 0,
    caption_error: Annotated[bool, typer.Option("--caption-error",
                                                help="CLIP captions end with <error>.")] = False,
) -> None:
    """Serve a fake Stable Diffusion Forge / A1111 API on 127.0.0.1 until Ctrl-C.

    Real HTTP with the real contract (job lock, size rules, error bodies):
    upscaling is done with Pillow, colorization is a visible tint, captions are
    made up. Point `fluxgym-coach enhance --api-url http://127.0.0.1:PORT` at it.

    Example: fluxgym-coach fake-forge --port 7861 --latency 0.5
    """
    if dialect not in ("forge", "a1111"):
        raise fail("--dialect must be forge or a1111", EXIT_USAGE)
    if auth and any(":" not in part for part in auth.split(",")):
        raise fail("--api-auth must look like user:password", EXIT_USAGE)
    faults = Faults(job_latency=latency, image_latency=image_latency, fail_on=set(fail_on or []),
                    drop_on=set(drop_on or []), truncate_batch=truncate_batch,
                    caption_error=caption_error)
    server = FakeForge(port, auth=auth, dialect=dialect, faults=faults)
    try:
        server.start()
    except OSError as exc:
        raise fail(f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}): pick another --port",
                   EXIT_USAGE) from None
    users = ", ".join(p.split(":", 1)[0] for p in auth.split(",")) if auth else ""
    out.print(esc(f"fake Forge API listening on {server.url}"
                  + (f" (basic auth for {users})" if users else "")), highlight=False)
    err.print("Ctrl-C to stop")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        out.print(f"served {server.job_requests} job requests")


def register(app: typer.Typer) -> None:
    """Add the ``fake-forge`` command to the CLI."""
    app.command("fake-forge", hidden=True)(fake_forge)  # a developer tool: not in --help
