"""Caption backend for any OpenAI-compatible chat server with vision.

Works with Ollama (``http://127.0.0.1:11434/v1``), vLLM, llama.cpp server, LM
Studio and hosted APIs: one ``POST {base_url}/chat/completions`` per image,
with a system message and a user message made of the rendered prompt and the
image as a ``data:image/jpeg;base64,...`` URL. The image is EXIF-transposed,
flattened to RGB and downscaled so its long side is at most ``image_size`` px
(in a thread), then JPEG-encoded.

**Errors.** A server that cannot read images answers in its own words
(llama.cpp: HTTP 500 "image input is not supported ... mmproj"; vLLM/OpenAI:
HTTP 400 "... is not a multimodal model" / "image_url is only supported by
certain models"; LM Studio: "Model does not support images"): these become a
fatal :class:`CaptionBackendError` saying to pick a vision model, never
retried. HTTP 429, 5xx, time-outs and refused connections are retried
(``retries`` times, exponential back-off from ``retry_wait`` seconds, or the
server's ``Retry-After`` up to 60 s, with tenacity); a server still unreachable after that stops the job. 401/403
(bad or missing API key) and an unknown model stop it at once.

**API key.** Read from the environment variable named by ``api_key_env``
(default ``OPENAI_API_KEY``) and sent as ``Authorization: Bearer``; it is
never part of the identity, the cache key, a message or ``repr``.

**Basic auth.** A ``base_url`` with ``user:pass@`` (a server behind a proxy)
is split: the credentials go to HTTP Basic auth and :attr:`base_url` keeps
the URL without them, so they are never printed or stored. Without them in
the URL, ``user:pass`` is read from ``$FLUXGYM_COACH_OPENAI_AUTH``.

**Reasoning models.** OpenAI's o-series and gpt-5 reject ``max_tokens`` and
any ``temperature`` but the default with HTTP 400 (``unsupported_parameter``
/ ``unsupported_value``). On that error only, the request is sent once more
with ``max_completion_tokens`` and no ``temperature``, and the captioner
keeps that form for the rest of its life; other servers (Ollama, llama.cpp)
keep getting ``max_tokens``. A ``<think>...</think>`` block (DeepSeek-R1,
Qwen3) is removed from answers.

**Images** are sent as JPEG (``jpeg_quality``) of the pixels made by
:func:`fluxgym_coach.enhance.server_io.server_image` (16-bit and float scans scaled
by their real range, alpha flattened onto white, ``L`` for grayscale),
downscaled to ``image_size``, encoded in a thread by :meth:`prepare` while
other requests are in flight.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from tenacity import (AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt,
                      wait_exponential)

from .. import text as caption_rules
from ... import imaging
from ...enhance import server_io
from .base import (CaptionBackendError, CaptionRequest, CaptionResult, render_template,
                   validate_template)

DEFAULT_BASE_URL = "http://127.0.0.1:11434/v1"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_SYSTEM_PROMPT = (
    "You write captions for a LoRA training dataset. Describe only what is visible: the "
    "subject, its pose or action, clothing or materials, the setting, lighting, camera angle "
    "and style. Write plain prose on one line, without lists, quotes, or openings such as "
    "'The image shows'.")
DEFAULT_PROMPT = "Write one caption for this image, in one or two sentences."
DEFAULT_TAGS_PROMPT = ("List the visible content of this image as comma-separated booru-style "
                       "tags, most important first, lower case, no sentences.")

_NO_VISION = re.compile(
    r"mmproj|not a multimodal|does not support (?:image|vision)|(?:image|vision|multimodal)"
    r"[^.]*(?:not supported|unsupported|only supported|not enabled)|"
    r"(?:not support|unsupported)[^.]*(?:image|vision)",
    re.IGNORECASE)


def normalise_base_url(url: str) -> str:
    """``http://host:port`` -> ``http://host:port/v1``; a URL with a path is kept
    (``/v1`` or a hosted API's own prefix); trailing ``/`` and a pasted
    ``/chat/completions`` removed. Raises ValueError for a non-HTTP URL."""
    url = url.strip().rstrip("/")
    if url.endswith("/chat/completions"):
        url = url[: -len("/chat/completions")]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"base URL {url!r} is not an http(s) URL, e.g. http://127.0.0.1:11434/v1")
    return url if parts.path not in ("", "/") else url + "/v1"


#: Environment variable read for ``user:pass`` when ``base_url`` carries none.
AUTH_ENV = "FLUXGYM_COACH_OPENAI_AUTH"

_LEGACY_PARAM = re.compile(r"max_tokens|temperature", re.IGNORECASE)
_UNSUPPORTED = re.compile(r"unsupported|not supported|does not support|only the default",
                          re.IGNORECASE)
_THINK = re.compile(r"<think>.*?</think>", re.IGNORECASE | re.DOTALL)


def split_credentials(url: str) -> tuple[str, httpx.BasicAuth | None]:
    """``http://user:pass@host/v1`` -> ``("http://host/v1", BasicAuth(user, pass))``;
    a URL without credentials gets ``$FLUXGYM_COACH_OPENAI_AUTH`` (or None)."""
    parts = urlsplit(url.strip())
    auth = None
    if parts.username is not None or "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        url = urlunsplit(parts._replace(netloc=host))
        auth = httpx.BasicAuth(unquote(user), unquote(password))
    elif os.environ.get(AUTH_ENV):
        user, sep, password = os.environ[AUTH_ENV].partition(":")
        if not sep:
            raise ValueError(f"${AUTH_ENV} must look like user:password")
        auth = httpx.BasicAuth(user, password)
    return url, auth


def redact_url(url: str) -> str:
    """``url`` without any ``user:pass@`` part (for messages and stored settings)."""
    return split_credentials(url)[0] if "@" in url else url


def strip_reasoning(text: str) -> str:
    """An answer without its reasoning: ``<think>...</think>`` blocks removed, and
    everything up to a lone ``</think>`` (servers whose template opens the block)."""
    text = _THINK.sub("", text)
    if "</think>" in text.lower():
        text = text[text.lower().rindex("</think>") + len("</think>"):]
    return text.strip()


def image_data_url(path: Any, max_side: int, quality: int = 90) -> str:
    """An image file as a JPEG data URL of our own 8-bit conversion
    (:func:`fluxgym_coach.enhance.server_io.server_image`: upright, ``L`` or ``RGB``,
    16-bit and float scaled by their real range, alpha flattened on white),
    long side at most ``max_side`` px, JPEG ``quality``. JPEG, not PNG: a
    vision model resizes the image to its own tiles anyway, and a 1024 px
    photo encodes ~30x faster and ~6x smaller. CPU work: call it in a thread.
    Raises ImageReadError."""
    im = imaging.open_image(path)
    try:
        if im.format == "JPEG":
            im.draft("RGB", (max_side, max_side))
        out = server_io.server_image(im)
        if max(out.size) > max_side:
            out = out.copy() if out is im else out
            out.thumbnail((max_side, max_side), imaging.Image.Resampling.LANCZOS, reducing_gap=3.0)
        buf = io.BytesIO()
        out.save(buf, "JPEG", quality=quality)
    except (OSError, ValueError) as exc:
        raise imaging.ImageReadError(path, imaging._explain(exc)) from exc
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _server_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300]
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)[:300]
    if isinstance(err, str):
        return err[:300]
    return str(body)[:300]


class OpenAICaptioner:
    """Captions from an OpenAI-compatible chat server (see the module docstring).

    ``model`` (required): the model name as the server knows it. ``prompt`` and
    ``system_prompt``: templates with ``{trigger}``, ``{tags}``, ``{filename}``,
    ``{folder}``. ``max_tokens``: longest answer. ``temperature``: sampling.
    ``image_size``: long side in px sent. ``concurrency``: requests in flight.
    ``style``: ``"prose"`` or ``"tags"`` (tags: answer normalised to a
    comma-separated list; the default prompt asks for tags). ``timeout``:
    seconds per request. Raises ValueError for bad settings.
    """

    name = "openai"
    is_draft = False

    def __init__(self, model: str | None = None, base_url: str = DEFAULT_BASE_URL, *,
                 api_key_env: str = DEFAULT_API_KEY_ENV, system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                 prompt: str | None = None, max_tokens: int = 300, temperature: float = 0.2,
                 image_size: int = 1024, concurrency: int = 2, retries: int = 3,
                 retry_wait: float = 1.0, timeout: float = 180.0, jpeg_quality: int = 90,
                 style: str = "prose"):
        if not model:
            raise ValueError("the openai backend needs a model name (--model, e.g. llava or "
                             "qwen2.5vl for Ollama)")
        if style not in ("prose", "tags"):
            raise ValueError(f"style must be 'prose' or 'tags', not {style!r}")
        if not 64 <= int(image_size) <= 8192:
            raise ValueError(f"image size must be within 64..8192 px, got {image_size}")
        if max_tokens < 1 or concurrency < 1 or retries < 0:
            raise ValueError("max_tokens and concurrency must be >= 1, retries >= 0")
        self.model = model
        url, self._auth = split_credentials(base_url)
        self.base_url = normalise_base_url(url)
        self._completion_params = False  # True once the server asked for max_completion_tokens
        self.api_key_env = api_key_env
        self.system_prompt = validate_template(system_prompt, "system prompt")
        self.prompt = validate_template(prompt or (DEFAULT_TAGS_PROMPT if style == "tags"
                                                   else DEFAULT_PROMPT))
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.image_size = int(image_size)
        self.concurrency = int(concurrency)
        self.retries = int(retries)
        self.retry_wait = float(retry_wait)
        self.timeout = float(timeout)
        self.jpeg_quality = int(jpeg_quality)
        self.style = style
        self.identity = f"openai/{model}@1"
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"OpenAICaptioner(model={self.model!r}, base_url={self.base_url!r})"

    # -- plumbing -------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env, "").strip()
        return {"Authorization": f"Bearer {key}"} if key and self._auth is None else {}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                auth=self._auth, timeout=httpx.Timeout(self.timeout, connect=10.0),
                limits=httpx.Limits(max_connections=self.concurrency + 1))
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def cache_params(self, request: CaptionRequest) -> dict[str, Any]:
        """Model, rendered prompts, sampling settings and image size (not the URL or key)."""
        return {"model": self.model, "system": render_template(self.system_prompt, request),
                "prompt": render_template(self.prompt, request), "max_tokens": self.max_tokens,
                "temperature": self.temperature, "image_size": self.image_size, "style": self.style}

    def _unreachable(self, exc: Exception) -> CaptionBackendError:
        return CaptionBackendError(
            f"cannot reach the OpenAI-compatible server at {self.base_url} ({type(exc).__name__}: "
            f"{exc}): start it (e.g. `ollama serve`) or fix --base-url", retryable=True, fatal=True)

    def _auth_error(self, resp: httpx.Response) -> CaptionBackendError:
        have = "is set" if os.environ.get(self.api_key_env) else "is not set"
        return CaptionBackendError(
            f"the server at {self.base_url} refused the request (HTTP {resp.status_code}: "
            f"{_server_message(resp)}); the API key comes from ${self.api_key_env}, which {have}",
            fatal=True)

    async def list_models(self) -> list[str]:
        """Model ids from ``GET /models`` (empty when the server has no such route).
        Raises CaptionBackendError (fatal) when unreachable or the key is refused."""
        try:
            resp = await self._http().get(f"{self.base_url}/models", headers=self._headers())
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if resp.status_code in (401, 403):
            raise self._auth_error(resp)
        if resp.status_code != 200:
            return []
        try:
            return [str(m.get("id")) for m in resp.json().get("data", []) if isinstance(m, dict)]
        except (ValueError, AttributeError):
            return []

    async def check(self) -> None:
        """The server answers and accepts the key (an unlisted model is left to the first request)."""
        await self.list_models()

    # -- captioning -----------------------------------------------------------------------
    def _classify(self, resp: httpx.Response) -> CaptionBackendError:
        message = _server_message(resp)
        status = resp.status_code
        if status in (400, 422, 500, 501) and _NO_VISION.search(message):
            return CaptionBackendError(
                f"the model {self.model!r} at {self.base_url} does not accept images (no vision "
                f"support; server said: {message}). Use a vision model (e.g. qwen2.5vl, llava, "
                "gemma3 with its mmproj) and try again", fatal=True)
        if status in (401, 403):
            return self._auth_error(resp)
        if status == 400 and _LEGACY_PARAM.search(message) and _UNSUPPORTED.search(message):
            err = CaptionBackendError(f"the server rejected the request (HTTP 400: {message})")
            err.legacy_params = True  # type: ignore[attr-defined]
            return err
        if status == 404 and "model" in message.lower():
            return CaptionBackendError(
                f"the server at {self.base_url} has no model {self.model!r} ({message}); "
                "list its models with GET /v1/models and pass one with --model", fatal=True)
        if status == 429 or status >= 500:
            err = CaptionBackendError(f"server busy or failing (HTTP {status}: {message})",
                                      retryable=True)
            try:
                err.retry_after = min(float(resp.headers.get("Retry-After", "")), 60.0)
            except ValueError:
                pass
            return err
        return CaptionBackendError(f"the server rejected the request (HTTP {status}: {message})")

    async def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        content = json.dumps(payload)  # ~1 ms even with the image: cheaper than a thread hop
        try:
            resp = await self._http().post(f"{self.base_url}/chat/completions", content=content,
                                           headers={**self._headers(), "Content-Type": "application/json"})
        except httpx.TimeoutException as exc:
            raise CaptionBackendError(f"no answer within {self.timeout:.0f} s from {self.base_url} "
                                      "(raise --timeout or lower --image-size)", retryable=True) from exc
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if resp.status_code != 200:
            raise self._classify(resp)
        try:
            return resp.json()
        except ValueError as exc:
            raise CaptionBackendError(f"the server answered with invalid JSON: {resp.text[:200]}",
                                      retryable=True) from exc

    async def prepare(self, request: CaptionRequest) -> str:
        """The image as a PNG data URL (encoded in a thread). Raises CaptionBackendError."""
        try:
            return await asyncio.to_thread(image_data_url, request.path, self.image_size,
                                           self.jpeg_quality)
        except imaging.ImageReadError as exc:
            raise CaptionBackendError(f"{request.relpath}: {exc.reason}") from exc

    async def caption(self, request: CaptionRequest) -> CaptionResult:
        """Caption one image (see the module docstring for errors)."""
        url = request.prepared or await self.prepare(request)
        try:
            body = await self._send(self._payload(request, url))
        except CaptionBackendError as exc:
            if not getattr(exc, "legacy_params", False) or self._completion_params:
                raise
            self._completion_params = True  # a reasoning model: ask once more its way
            body = await self._send(self._payload(request, url))
        return self._result(body)

    def _payload(self, request: CaptionRequest, url: str) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": render_template(self.system_prompt, request)},
                {"role": "user", "content": [
                    {"type": "text", "text": render_template(self.prompt, request)},
                    {"type": "image_url", "image_url": {"url": url}},
                ]},
            ],
            "stream": False,
        }
        if self._completion_params:
            payload["max_completion_tokens"] = self.max_tokens
        else:
            payload["max_tokens"] = self.max_tokens
            payload["temperature"] = self.temperature
        return payload

    async def _send(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST with retries on retryable errors (see the module docstring)."""
        body: dict[str, Any] = {}
        backoff = wait_exponential(multiplier=self.retry_wait, max=30)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            after = getattr(exc, "retry_after", None)
            return after if after is not None else backoff(state)

        async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.retries + 1),
                wait=wait,
                retry=retry_if_exception(lambda e: isinstance(e, CaptionBackendError) and e.retryable),
                reraise=True):
            with attempt:
                body = await self._post(payload)
        return body

    def _result(self, body: dict[str, Any]) -> CaptionResult:
        try:
            choice = body["choices"][0]
            content = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise CaptionBackendError(f"unexpected answer from the server (no choices[0].message."
                                      f"content): {str(body)[:200]}") from exc
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        text = caption_rules.clean_generated(strip_reasoning(str(content or "")))
        warnings = []
        if choice.get("finish_reason") == "length":
            warnings.append(f"the answer was cut off at --max-tokens {self.max_tokens}; the caption "
                            "may end mid-sentence")
        tags: list[str] = []
        if self.style == "tags":
            tags = [t.lower().strip(" .") for t in caption_rules.split_tags(text.replace(";", ","))]
            tags = caption_rules.split_tags(caption_rules.dedup_tags(", ".join(tags)))
            text = caption_rules.join_tags(tags)
        return CaptionResult(text=text, tags=tags, warnings=warnings,
                             model=str(body.get("model") or self.model))
