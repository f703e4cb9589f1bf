"""One Forge / AUTOMATIC1111 server over the ``/sdapi/v1`` HTTP API: :class:`ForgeClient`.

One :class:`httpx.AsyncClient`, one async method per endpoint (extras
single/batch, img2img, interrogate, upscalers, samplers, schedulers,
sd-models, options, progress, interrupt, skip). It handles auth, timeouts,
retries and error bodies; it knows nothing of datasets or caches. The
contract facts it relies on are listed in :mod:`fluxgym_coach.enhance.backends.forge`
(``reference/sdapi.md``). Also here: the error types, the name resolution of
upscalers, samplers and schedulers, and the extras size rules.

Auth is HTTP Basic, sent pre-emptively (A1111 sends no challenge). The
password is never printed, logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import base64
import difflib
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from typing import Any

import httpx
from tenacity import (AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt,
                      wait_exponential)

from .base import BackendError

log = logging.getLogger(__name__)

DEFAULT_API_URL = "http://127.0.0.1:7860"
#: Environment variable read for ``user:pass`` when no ``api_auth`` is given.
AUTH_ENV = "FLUXGYM_COACH_API_AUTH"

#: Scheduler names that may follow a sampler name (``"DPM++ 2M Karras"``).
#: Forge's scheduler labels and aliases (``modules/sd_schedulers.py``), longest first so
#: ``"Align Your Steps GITS"`` wins over ``"Align Your Steps"``.
SCHEDULER_SUFFIXES = tuple(sorted((
    "Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "SGMUniform",
    "KL Optimal", "Align Your Steps", "Align Your Steps GITS", "Align Your Steps 11",
    "Align Your Steps 32", "Simple", "Normal", "DDIM", "Beta", "Turbo"), key=len, reverse=True))

#: 500 messages that say the request itself is wrong: repeating it cannot help.
_DETERMINISTIC_500 = ("invalid encoded image", "could not find upscaler", "bad number of images",
                      "not allowed", "not found")


class ForgeError(BackendError):
    """A Forge/A1111 request failed. ``status`` is the HTTP status (None when no
    response came), ``url`` the server, ``detail`` the server's own message."""

    def __init__(self, reason: str, *, status: int | None = None, url: str = "", detail: str = "",
                 retryable: bool = False, fatal: bool = False):
        super().__init__(reason, retryable=retryable, fatal=fatal)
        self.status, self.url, self.detail = status, url, detail


class ForgeUnreachable(ForgeError):
    """No usable HTTP response from the server (refused, reset, dropped, timed out)."""


def error_detail(response: httpx.Response) -> str:
    """The server's message from an error response, in either dialect.

    Reads ``detail`` (a string, or FastAPI's 422 list rendered as
    ``field: message``), then ``errors``/``message``/``error``, then the plain
    text of a non-JSON body (cut to 300 characters).
    """
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] or response.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list):
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    loc = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                    parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
                else:
                    parts.append(str(item))
            if parts:
                return "; ".join(parts)
        if isinstance(detail, str) and detail:
            return detail
        for key in ("errors", "message", "error"):
            value = body.get(key)
            if value:
                return str(value)
    return json.dumps(body)[:300]


def parse_auth(api_auth: str | None) -> httpx.BasicAuth | None:
    """``"user:pass"`` (or ``$FLUXGYM_COACH_API_AUTH`` when None) as httpx Basic auth.

    Raises ValueError (without echoing the password) when there is no ``:``.
    """
    value = api_auth if api_auth is not None else os.environ.get(AUTH_ENV)
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user:
        raise ValueError("API auth must look like user:password (as given to Forge's --api-auth)")
    return httpx.BasicAuth(user, password)


def redact_url(url: str) -> str:
    """The URL without any ``user:pass@`` part, for messages."""
    return re.sub(r"//[^/@]*@", "//", url)


def output_size(width: int, height: int, scale: float, upscaler: str = "Lanczos") -> tuple[int, int]:
    """The size Forge's extras return for scale ``scale``: each side floored to a
    multiple of 8 (at least 8); unchanged for the ``None`` upscaler."""
    if upscaler == "None":
        return width, height
    return (max(8, math.floor(width * scale / 8) * 8), max(8, math.floor(height * scale / 8) * 8))


def img2img_size(width: int, height: int) -> tuple[int, int]:
    """img2img width and height for an image: each side rounded to the nearest multiple of 8."""
    return max(8, int(round(width / 8)) * 8), max(8, int(round(height / 8)) * 8)


def _squash(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


def resolve_name(kind: str, name: str, valid: Sequence[str],
                 aliases: dict[str, str] | None = None) -> str:
    """The server's spelling of ``name`` among ``valid`` (an upscaler or sampler).

    Exact names win; then an alias; then the single valid name equal to
    ``name`` ignoring case, spaces, ``_`` and ``-`` (so the seed's
    ``"R-ESRGAN_4x+"`` is ``"R-ESRGAN 4x+"``). Anything else raises
    BackendError naming the closest valid names.
    """
    if name in valid:
        return name
    if aliases and name in aliases:
        return aliases[name]
    matches = [v for v in valid if _squash(v) == _squash(name)]
    if len(matches) == 1:
        return matches[0]
    close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else f"available: {', '.join(valid)}"
    raise BackendError(f"unknown {kind} {name!r} on the server; {hint}")


def resolve_sampler(name: str, samplers: Sequence[dict[str, Any]]) -> str:
    """A sampler name as the server knows it; a trailing scheduler (``Karras``...) is kept."""
    valid = [s["name"] for s in samplers]
    aliases = {a: s["name"] for s in samplers for a in (s.get("aliases") or [])}
    if name in valid:
        return name
    for suffix in SCHEDULER_SUFFIXES:
        if name.lower().endswith(" " + suffix.lower()) and len(name) > len(suffix) + 1:
            base = name[: -len(suffix) - 1]
            try:
                return f"{resolve_name('sampler', base, valid, aliases)} {suffix}"
            except BackendError:
                break
    return resolve_name("sampler", name, valid, aliases)


def _encode_images(images: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(b).decode("ascii") for b in images]


def _decode_image(b64: str) -> bytes:
    if b64.startswith("data:"):
        b64 = b64.split(",", 1)[1]
    return base64.b64decode(b64)


class ForgeClient:
    """Async client of one Forge/A1111 server.

    ``api_url``: base URL (``http://host:7860``). ``api_auth``: ``"user:pass"``
    for ``--api-auth`` servers (default ``$FLUXGYM_COACH_API_AUTH``).
    Tuning: ``timeout`` (read timeout of job requests, s; default 600, jobs can
    take minutes), ``connect_timeout`` (s, default 10), ``retries`` (attempts
    for requests that are safe to repeat, default 3), ``backoff`` (first wait,
    s, doubling, at most ``max_backoff``).

    Every method raises :class:`ForgeUnreachable` when no response comes after
    the retries, and :class:`ForgeError` for an error status (message from the
    body, in either dialect). Use as ``async with ForgeClient(url) as c:``.
    """

    def __init__(self, api_url: str = DEFAULT_API_URL, api_auth: str | None = None, *,
                 timeout: float = 600.0, connect_timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.5, max_backoff: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        url = api_url.strip().rstrip("/")
        if not re.match(r"^https?://", url):
            url = "http://" + url
        self.url = redact_url(url)
        self.answered = False  # set once the server has sent any response
        self.retries = max(1, retries)
        self.backoff, self.max_backoff = backoff, max_backoff
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._short = httpx.Timeout(min(timeout, 30.0), connect=connect_timeout)
        self._http = httpx.AsyncClient(base_url=url, auth=parse_auth(api_auth), timeout=self._timeout,
                                       transport=transport,
                                       limits=httpx.Limits(max_connections=8,
                                                           max_keepalive_connections=4))

    def __repr__(self) -> str:
        return f"ForgeClient({self.url!r})"

    async def __aenter__(self) -> "ForgeClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    # -- plumbing ------------------------------------------------------------------
    def _retryable(self, exc: BaseException, job: bool) -> bool:
        if isinstance(exc, httpx.TimeoutException):
            # A job that timed out is still queued or running on the server:
            # sending it again would only queue a duplicate behind it.
            return not job or isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
        if isinstance(exc, httpx.TransportError):
            return True
        return isinstance(exc, ForgeError) and exc.retryable

    async def _request(self, method: str, path: str, *, payload: Any = None,
                       params: dict[str, Any] | None = None, job: bool = False,
                       repeatable: bool = True) -> Any:
        """Send one request (retrying when allowed) and return the decoded JSON body."""
        content = None
        headers = {}
        if payload is not None:
            content = await asyncio.to_thread(lambda: json.dumps(payload).encode())
            headers["Content-Type"] = "application/json"
        timeout = self._timeout if job else self._short

        async def once() -> httpx.Response:
            response = await self._http.request(method, path, content=content, params=params,
                                                headers=headers, timeout=timeout)
            self.answered = True
            if response.status_code >= 400:
                raise self._error(response, path)
            return response

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.info("retrying %s %s%s after %s", method, self.url, path, _describe_exc(exc))

        try:
            async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(self.retries if repeatable else 1),
                    wait=wait_exponential(multiplier=self.backoff, max=self.max_backoff),
                    retry=retry_if_exception(lambda e: self._retryable(e, job)),
                    before_sleep=log_retry, reraise=True):
                with attempt:
                    response = await once()
        except httpx.TimeoutException as exc:
            raise ForgeUnreachable(
                f"{self.url} did not answer {path} in time ({_describe_exc(exc)}); the server may "
                f"be overloaded or hung: raise --timeout (now {self._timeout.read:.0f} s) or use smaller "
                f"batches", url=self.url,
                retryable=True) from None
        except httpx.TransportError as exc:
            raise self._unreachable(exc, path) from None
        self.answered = True
        if not response.content:
            return None
        try:
            return await asyncio.to_thread(json.loads, response.content)
        except ValueError:
            raise ForgeError(f"{self.url}{path} answered with non-JSON data: is this really a "
                             f"Forge/A1111 API?", status=response.status_code, url=self.url) from None

    def _unreachable(self, exc: httpx.TransportError, path: str) -> ForgeUnreachable:
        """The error for a request that got no response: a server that never
        accepted a connection is not started (or has no API); one that has
        answered before, or dropped a connection it had accepted, went away."""
        what = _describe_exc(exc)
        if isinstance(exc, httpx.ConnectError) and not self.answered:
            reason = (f"cannot reach the Forge/A1111 API at {self.url} ({what}): start it with "
                      f"--api (or check --api-url)")
        elif isinstance(exc, httpx.ConnectError):
            reason = (f"{self.url} answered earlier but now refuses connections ({what}): the "
                      f"server stopped or restarted; see its console, then run again")
        else:
            reason = (f"{self.url} closed the connection during {path} without an answer ({what}): "
                      f"the server crashed or restarted, ran out of memory, or a proxy cut the "
                      f"request; see the server's console, then run again")
        return ForgeUnreachable(reason, url=self.url, retryable=True)

    def _error(self, response: httpx.Response, path: str) -> ForgeError:
        status = response.status_code
        detail = error_detail(response)
        where = f"{self.url}{path}"
        if status == 401:
            reason = (f"{self.url} refused the credentials ({detail}): pass --api-auth user:pass "
                      f"(or set {AUTH_ENV}) matching the server's --api-auth")
        elif status == 404 and detail == "Not Found":
            reason = (f"{where} does not exist: start Forge/A1111 with --api (or --nowebui), "
                      f"and check --api-url")
        elif status == 422:
            reason = f"{where} rejected the request parameters: {detail}"
        else:
            reason = f"{where} failed with HTTP {status}: {detail}"
        deterministic = any(s in detail.lower() for s in _DETERMINISTIC_500)
        retryable = status >= 500 and not deterministic
        # The request itself is wrong (or refused): every other request of the job would be too.
        fatal = status in (401, 403, 404, 405, 422) or (status >= 500 and deterministic)
        return ForgeError(reason, status=status, url=self.url, detail=detail, retryable=retryable,
                          fatal=fatal)

    # -- small endpoints ---------------------------------------------------------------
    async def upscalers(self) -> list[dict[str, Any]]:
        """``GET /sdapi/v1/upscalers``: ``[{"name", "model_name", "model_path", "model_url", "scale"}]``."""
        return list(await self._request("GET", "/sdapi/v1/upscalers") or [])

    async def upscaler_names(self) -> list[str]:
        """The upscaler names (exact, case-sensitive), ``None``/``Lanczos``/``Nearest`` first."""
        return [u["name"] for u in await self.upscalers()]

    async def schedulers(self) -> list[dict[str, Any]]:
        """``GET /sdapi/v1/schedulers``: ``[{"name", "label", "aliases", ...}]`` (Forge, A1111 1.9+)."""
        return list(await self._request("GET", "/sdapi/v1/schedulers") or [])

    async def samplers(self) -> list[dict[str, Any]]:
        """``GET /sdapi/v1/samplers``: ``[{"name", "aliases", "options"}]``."""
        return list(await self._request("GET", "/sdapi/v1/samplers") or [])

    async def sd_models(self) -> list[dict[str, Any]]:
        """``GET /sdapi/v1/sd-models``: checkpoints, ``[{"title", "model_name", "hash", ...}]``."""
        return list(await self._request("GET", "/sdapi/v1/sd-models") or [])

    async def options(self) -> dict[str, Any]:
        """``GET /sdapi/v1/options``: the server settings as a flat dict."""
        return dict(await self._request("GET", "/sdapi/v1/options") or {})

    async def set_options(self, values: dict[str, Any]) -> None:
        """``POST /sdapi/v1/options``; an unknown checkpoint raises ForgeError (500)."""
        await self._request("POST", "/sdapi/v1/options", payload=values, job=True)

    async def progress(self, skip_current_image: bool = True) -> dict[str, Any]:
        """``GET /sdapi/v1/progress``: ``{"progress": 0..1, "eta_relative": s, "state": {...}}``.

        Poll at most once a second (polling may trigger a preview decode)."""
        return dict(await self._request("GET", "/sdapi/v1/progress",
                                        params={"skip_current_image": str(skip_current_image).lower()})
                    or {})

    async def interrupt(self) -> None:
        """``POST /sdapi/v1/interrupt``: flag the running job to stop (not retried)."""
        await self._request("POST", "/sdapi/v1/interrupt", repeatable=False)

    async def skip(self) -> None:
        """``POST /sdapi/v1/skip``: skip the current item of the running job (not retried)."""
        await self._request("POST", "/sdapi/v1/skip", repeatable=False)

    # -- jobs ----------------------------------------------------------------------------
    @staticmethod
    def extras_fields(scale: float, upscaler: str, **more: Any) -> dict[str, Any]:
        """The extras request fields for upscaling by ``scale`` with ``upscaler``
        (``resize_mode`` 0, no second upscaler, no face restoration)."""
        fields = {"resize_mode": 0, "upscaling_resize": float(scale), "upscaler_1": upscaler,
                  "upscaler_2": "None", "extras_upscaler_2_visibility": 0,
                  "gfpgan_visibility": 0, "codeformer_visibility": 0, "codeformer_weight": 0,
                  "show_extras_results": True, "upscale_first": False}
        fields.update(more)
        return fields

    async def extra_single_image(self, image: bytes, **fields: Any) -> bytes:
        """``POST /sdapi/v1/extra-single-image``: one image (file bytes) -> result bytes.

        ``fields`` are the extras fields (see :meth:`extras_fields`)."""
        encoded = (await asyncio.to_thread(_encode_images, [image]))[0]
        body = await self._request("POST", "/sdapi/v1/extra-single-image",
                                   payload={**fields, "image": encoded}, job=True)
        if not isinstance(body, dict) or not body.get("image"):
            raise ForgeError(f"{self.url}/sdapi/v1/extra-single-image returned no image", url=self.url)
        return await asyncio.to_thread(_decode_image, body["image"])

    async def extra_batch_images(self, images: Sequence[bytes], names: Sequence[str] | None = None,
                                 **fields: Any) -> list[bytes]:
        """``POST /sdapi/v1/extra-batch-images``: several images in one job.

        Returns the images the server sent back, in input order. The server
        may return *fewer* (an interrupt truncates, a skip drops one) with a
        200: the caller must compare the count."""
        encoded = await asyncio.to_thread(_encode_images, images)
        names = list(names) if names is not None else [f"{i}.png" for i in range(len(images))]
        payload = {**fields, "imageList": [{"data": d, "name": n} for d, n in zip(encoded, names)]}
        body = await self._request("POST", "/sdapi/v1/extra-batch-images", payload=payload, job=True)
        if not isinstance(body, dict) or not isinstance(body.get("images"), list):
            raise ForgeError(f"{self.url}/sdapi/v1/extra-batch-images returned no image list",
                             url=self.url)
        return await asyncio.to_thread(lambda: [_decode_image(b) for b in body["images"]])

    async def img2img(self, image: bytes, *, width: int, height: int, prompt: str = "",
                      negative_prompt: str = "", denoising_strength: float = 0.75, steps: int = 20,
                      cfg_scale: float = 7.0, sampler_name: str | None = None, seed: int = -1,
                      **extra: Any) -> bytes:
        """``POST /sdapi/v1/img2img`` with one init image; returns the first result's bytes.

        ``width``/``height`` (px) must be multiples of 8 (see :func:`img2img_size`);
        the server does not take them from the image. ``extra`` adds fields
        (``override_settings``, ``scheduler``, ...)."""
        encoded = (await asyncio.to_thread(_encode_images, [image]))[0]
        payload = {"init_images": [encoded], "width": int(width), "height": int(height),
                   "prompt": prompt, "negative_prompt": negative_prompt,
                   "denoising_strength": float(denoising_strength), "steps": int(steps),
                   "cfg_scale": float(cfg_scale), "sampler_name": sampler_name, "seed": int(seed),
                   "batch_size": 1, "n_iter": 1, "resize_mode": 0, "send_images": True,
                   "save_images": False, **extra}
        body = await self._request("POST", "/sdapi/v1/img2img", payload=payload, job=True)
        if not isinstance(body, dict) or not body.get("images"):
            raise ForgeError(f"{self.url}/sdapi/v1/img2img returned no image", url=self.url)
        return await asyncio.to_thread(_decode_image, body["images"][0])

    async def interrogate(self, image: bytes, model: str = "clip") -> str:
        """``POST /sdapi/v1/interrogate``: a caption of ``image`` (file bytes).

        ``model`` is ``"clip"`` (a sentence) or ``"deepdanbooru"`` (comma-separated
        tags). Raises ForgeError when the server cannot caption, including the
        CLIP failure that comes back as a 200 caption ending in ``<error>``."""
        encoded = (await asyncio.to_thread(_encode_images, [image]))[0]
        body = await self._request("POST", "/sdapi/v1/interrogate",
                                   payload={"image": encoded, "model": model}, job=True)
        caption = body.get("caption") if isinstance(body, dict) else None
        if not isinstance(caption, str):
            raise ForgeError(f"{self.url}/sdapi/v1/interrogate returned no caption", url=self.url)
        if caption.rstrip().endswith("<error>"):
            raise ForgeError(f"{self.url} failed to caption with {model} (the caption ends with "
                             f"<error>; see the server console)", url=self.url, detail=caption)
        return caption.strip()


def _describe_exc(exc: BaseException | None) -> str:
    if exc is None:
        return "no error"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
