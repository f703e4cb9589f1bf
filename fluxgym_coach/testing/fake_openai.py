"""A fake OpenAI-compatible chat server with vision, real HTTP on 127.0.0.1.

It speaks the subset of the OpenAI API that Ollama, vLLM, llama.cpp server and
LM Studio share and that the ``openai`` caption backend uses:

* ``GET  /v1/models``: ``{"object": "list", "data": [{"id": ..., "object": "model"}]}``
* ``POST /v1/chat/completions``: ``messages`` whose user content is a list of
  ``{"type": "text"}`` and ``{"type": "image_url", "image_url": {"url":
  "data:image/...;base64,..."}}`` parts. Each image is really decoded (Pillow),
  so a bad data URL gets a 400 like a real server. The answer is
  ``choices[0].message.content``, with ``finish_reason`` and ``usage``.

Switches (attributes, changeable while it runs) reproduce what real servers do:
``vision = False`` answers requests with images the way llama.cpp does for a
model started without its ``--mmproj`` (HTTP 500, "image input is not
supported"; set ``no_vision_status = 400`` for the vLLM/OpenAI style);
:meth:`fail_next` makes the next *n* chat requests fail with a status (500,
503, or 429 with ``Retry-After: 0``); ``latency`` (seconds) delays each answer; ``truncate`` answers with
``finish_reason = "length"``; ``api_key`` requires ``Authorization: Bearer``;
``basic_auth = "user:pass"`` requires HTTP Basic (a server behind a proxy);
``parallel`` (0: unlimited) is how many requests it works on at once, the
others wait, as Ollama's ``OLLAMA_NUM_PARALLEL`` or a vLLM batch limit (a
request holds its slot for the latency plus its own decoding and answer,
summed in :attr:`busy_seconds`);
``reasoning = True`` answers as OpenAI does for reasoning models (o-series,
gpt-5): HTTP 400 ``unsupported_parameter`` for ``max_tokens`` (use
``max_completion_tokens``) and ``unsupported_value`` for a ``temperature``
other than 1; ``think = True`` wraps each answer in ``<think>...</think>``
reasoning first, as DeepSeek-R1 or Qwen3 servers do.
``answer`` is a callable ``(prompt_text, images, body) -> str`` choosing the
reply; the default describes what it received (image size, gray or colour,
mean colour), so tests can tell the image really arrived.

Every request is recorded in :attr:`requests` (method, path, JSON body,
decoded image sizes, whether an Authorization header came). Use as a context
manager, or ``start()``/``stop()``; ``url`` is ``http://127.0.0.1:<port>/v1``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image

NO_VISION_MESSAGE = ("image input is not supported - hint: if this is unexpected, you may need "
                     "to provide the mmproj")
_DATA_URL = re.compile(r"^data:(image/[a-z0-9.+-]+);base64,(.*)$", re.IGNORECASE | re.DOTALL)


@dataclass(slots=True)
class ReceivedImage:
    """An image a request carried: its MIME type, decoded size, gray flag and mean colour."""

    mime: str
    width: int
    height: int
    is_gray: bool
    mean: tuple[int, int, int]
    n_bytes: int


@dataclass(slots=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    body: dict[str, Any] | None
    images: list[ReceivedImage] = field(default_factory=list)
    authorized: bool = False
    status: int = 0

    @property
    def prompt(self) -> str:
        """All text parts of the user messages, joined by newlines."""
        return "\n".join(_texts(self.body or {}, "user"))

    @property
    def system(self) -> str:
        """The system message text."""
        return "\n".join(_texts(self.body or {}, "system"))


def _texts(body: dict[str, Any], role: str) -> list[str]:
    out = []
    for m in body.get("messages") or []:
        if m.get("role") != role:
            continue
        content = m.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out += [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return out


def describe_answer(prompt: str, images: list[ReceivedImage], body: dict[str, Any]) -> str:
    """The default reply: what the server received, in caption words."""
    if not images:
        return "no image was received"
    im = images[0]
    kind = "black-and-white" if im.is_gray else "colour"
    return (f"The image shows a {kind} picture of {im.width}x{im.height} pixels "
            f"with mean colour {im.mean[0]} {im.mean[1]} {im.mean[2]}")


class FakeOpenAIServer:
    """See the module docstring. ``models``: model ids it serves."""

    def __init__(self, models: tuple[str, ...] = ("fake-vision",), port: int = 0):
        self.models = list(models)
        self.vision = True
        self.no_vision_status = 500
        self.latency = 0.0
        self.truncate = False
        self.api_key: str | None = None
        self.basic_auth: str | None = None
        self.parallel = 0
        self.reasoning = False
        self.think = False
        self._slots: threading.Semaphore | None = None
        self._slots_for = 0
        self.answer: Callable[[str, list[ReceivedImage], dict[str, Any]], str] = describe_answer
        self.requests: list[Recorded] = []
        self.max_in_flight = 0
        self.busy_seconds = 0.0  # time requests held a work slot, summed
        self._in_flight = 0
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL including ``/v1``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> "FakeOpenAIServer":
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-openai",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- switches ----------------------------------------------------------------------
    @contextmanager
    def slots(self) -> Iterator[None]:
        """Hold one of the ``parallel`` work slots (none when ``parallel`` is 0)."""
        with self._lock:
            if self.parallel and self._slots_for != self.parallel:
                self._slots, self._slots_for = threading.Semaphore(self.parallel), self.parallel
            slots = self._slots if self.parallel else None
        if slots is None:
            yield
            return
        with slots:
            yield

    def fail_next(self, n: int, status: int = 500) -> None:
        """Make the next ``n`` chat requests fail with HTTP ``status``."""
        with self._lock:
            self._failures += [status] * n

    @property
    def chat_requests(self) -> list[Recorded]:
        """Recorded ``/chat/completions`` requests."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # -- HTTP --------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_Handler,), {"fake": self})


class _Handler(BaseHTTPRequestHandler):
    """Request handler; ``fake`` is the server object (set by a subclass)."""

    fake: "FakeOpenAIServer"

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(self, status: int, payload: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error",
               code: str | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": code}})

    def _authorized(self) -> bool:
        return self.headers.get("Authorization", "").startswith("Bearer ")

    def _check_key(self) -> bool:
        if self.fake.basic_auth is not None:
            want = "Basic " + base64.b64encode(self.fake.basic_auth.encode()).decode()
            if self.headers.get("Authorization") != want:
                self._error(401, "Unauthorized", "invalid_request_error", "unauthorized")
                return False
            return True
        if self.fake.api_key is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {self.fake.api_key}":
            return True
        self._error(401, "Incorrect API key provided.", "invalid_request_error",
                    "invalid_api_key")
        return False

    def do_GET(self) -> None:  # noqa: N802
        rec = Recorded("GET", self.path, None, authorized=self._authorized())
        with self.fake._lock:
            self.fake.requests.append(rec)
        if not self._check_key():
            rec.status = 401
            return
        if self.path.rstrip("/") == "/v1/models":
            rec.status = 200
            self._send(200, {"object": "list", "data": [
                {"id": m, "object": "model", "owned_by": "fake"} for m in self.fake.models]})
        else:
            rec.status = 404
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = None
        rec = Recorded("POST", self.path, body, authorized=self._authorized())
        with self.fake._lock:
            self.fake.requests.append(rec)
            self.fake._in_flight += 1
            self.fake.max_in_flight = max(self.fake.max_in_flight, self.fake._in_flight)
        try:
            rec.status = self._chat(rec, body)
        finally:
            with self.fake._lock:
                self.fake._in_flight -= 1

    def _reject_legacy_params(self, body: dict[str, Any]) -> bool:
        if "max_tokens" in body:
            self._error(400, "Unsupported parameter: 'max_tokens' is not supported with this "
                             "model. Use 'max_completion_tokens' instead.",
                        code="unsupported_parameter")
            return True
        if body.get("temperature") not in (None, 1, 1.0):
            self._error(400, f"Unsupported value: 'temperature' does not support "
                             f"{body['temperature']} with this model. Only the default (1) "
                             f"value is supported.", code="unsupported_value")
            return True
        return False

    def _chat(self, rec: Recorded, body: Any) -> int:
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route {self.path}")
            return 404
        if not self._check_key():
            return 401
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._error(400, "request body must be JSON with a 'messages' list")
            return 400
        if self.fake.reasoning and self._reject_legacy_params(body):
            return 400
        # The whole work (decode, "inference", answer) holds one of the server's slots.
        with self.fake.slots():
            t0 = time.perf_counter()
            try:
                if self.fake.latency:
                    time.sleep(self.fake.latency)
                return self._answer(rec, body)
            finally:
                with self.fake._lock:
                    self.fake.busy_seconds += time.perf_counter() - t0

    def _answer(self, rec: Recorded, body: dict[str, Any]) -> int:
        with self.fake._lock:
            status = self.fake._failures.pop(0) if self.fake._failures else None
        if status is not None:
            if status == 429:
                self._send(429, {"error": {"message": "Rate limit reached, retry shortly.",
                                           "type": "requests", "code": "rate_limit_exceeded"}},
                           {"Retry-After": "0"})
            else:
                self._error(status, "The server had an error while processing your "
                                    "request.", "server_error")
            return status
        model = body.get("model")
        if model not in self.fake.models:
            self._error(404, f"The model `{model}` does not exist.", code="model_not_found")
            return 404
        urls = []
        for m in body["messages"]:
            content = m.get("content")
            if isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "image_url":
                        url = part.get("image_url")
                        urls.append(url.get("url") if isinstance(url, dict) else url)
        if urls and not self.fake.vision:
            self._error(self.fake.no_vision_status, NO_VISION_MESSAGE, "server_error"
                        if self.fake.no_vision_status >= 500 else "invalid_request_error")
            return self.fake.no_vision_status
        for url in urls:
            match = _DATA_URL.match(url or "")
            if not match:
                self._error(400, "image_url must be a base64 data URL (data:image/...;base64,...)")
                return 400
            try:
                data = base64.b64decode(match.group(2), validate=True)
                im = Image.open(io.BytesIO(data))
                im.load()
            except (binascii.Error, OSError, ValueError) as exc:
                self._error(400, f"could not decode the image: {exc}")
                return 400
            rgb = im.convert("RGB")
            px = np.asarray(rgb.resize((32, 32)), dtype=np.int16).reshape(-1, 3)
            mean = tuple(int(v) for v in px.mean(axis=0))
            gray = bool((px.max(axis=1) - px.min(axis=1) <= 12).all())
            rec.images.append(ReceivedImage(match.group(1).lower(), im.width, im.height, gray,
                                            mean, len(data)))  # type: ignore[arg-type]
        text = self.fake.answer(rec.prompt, rec.images, body)
        if self.fake.think:
            text = f"<think>\nThe user wants a caption. Let me look.\n</think>\n\n{text}"
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        finish = "stop"
        if self.fake.truncate or (isinstance(max_tokens, int) and len(text.split()) > max_tokens):
            finish = "length"
            if isinstance(max_tokens, int):
                text = " ".join(text.split()[:max_tokens])
        self._send(200, {
            "id": f"chatcmpl-{len(self.fake.requests)}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": len(text.split()),
                      "total_tokens": 100 + len(text.split())},
        })
        return 200
