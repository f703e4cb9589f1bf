"""``fluxgym-coach fake-openai``: run the fake OpenAI-compatible vision server for demos and manual tests."""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from ..testing.fake_openai import FakeOpenAIServer
from .common import esc, EXIT_USAGE, err, fail, out


def fake_openai(
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Port on 127.0.0.1 (0 picks a free one).")] = 8000,
    model: Annotated[Optional[list[str]], typer.Option(
        "--model", help="Model id it serves (repeatable; default fake-vision).",
        show_default=False)] = None,
    no_vision: Annotated[bool, typer.Option(
        "--no-vision", help="Refuse images like llama.cpp without --mmproj (HTTP 500).")] = False,
    latency: Annotated[float, typer.Option("--latency", min=0.0,
                                           help="Seconds before each answer.")] = 0.0,
    api_key: Annotated[Optional[str], typer.Option(
        "--require-key-env", help="Require the API key held in this environment variable.",
        show_default=False)] = None,
) -> None:
    """Serve a fake OpenAI-compatible chat API with vision on 127.0.0.1 until Ctrl-C.

    Real HTTP: /v1/models and /v1/chat/completions with base64 image data URLs
    (really decoded). The captions describe what arrived (size, gray or
    colour, mean colour). Point `fluxgym-coach caption DATASET --backend openai
    --model fake-vision --base-url http://127.0.0.1:PORT/v1` at it.

    Example: fluxgym-coach fake-openai --port 8001 --model fake-vision
    """
    import os

    try:
        server = FakeOpenAIServer(tuple(model or ["fake-vision"]), port=port)
    except OSError as exc:
        raise fail(f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}): pick another --port",
                   EXIT_USAGE) from None
    server.vision = not no_vision
    server.latency = latency
    if api_key:
        if not os.environ.get(api_key):
            raise fail(f"${api_key} is not set", EXIT_USAGE)
        server.api_key = os.environ[api_key]
    server.start()
    out.print(esc(f"fake OpenAI-compatible server listening on {server.url} "
                  f"(models: {', '.join(server.models)})"), highlight=False)
    err.print("Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        out.print(f"served {len(server.chat_requests)} chat requests")


def register(app: typer.Typer) -> None:
    """Add the ``fake-openai`` command to the CLI."""
    app.command("fake-openai", hidden=True)(fake_openai)  # a developer tool: not in --help
