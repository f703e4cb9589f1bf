"""Stable Diffusion Forge / AUTOMATIC1111 backend over the ``/sdapi/v1`` HTTP API.

Two layers:

* :class:`ForgeClient` (in :mod:`.forge_client`, re-exported here): one server, one :class:`httpx.AsyncClient`, one async
  method per endpoint (extras single/batch, img2img, interrogate, upscalers,
  samplers, sd-models, options, progress, interrupt, skip). It handles auth,
  timeouts, retries and error bodies; it knows nothing of datasets or caches.
* :class:`ForgeBackend`: the :class:`~fluxgym_coach.enhance.backends.base.EnhanceBackend`
  the pipeline drives. It checks a pool of servers before a job, resolves
  upscaler and sampler names, spreads batches over the live servers, moves a
  dead server's work to the others, and verifies every returned image
  (count, size, and content: matched to its input by luminance correlation) before
  handing it back.

Contract facts used here (``reference/sdapi.md``): jobs run one at a time per
server behind a FIFO lock, so a client keeps at most a couple of requests in
flight per server; extras output sizes are ``floor(w*s/8)*8`` per side, and the
``None`` upscaler does not resize; an unknown upscaler is a 500 ``could not find
upscaler named X``; ``/extra-batch-images`` may return fewer images than sent
(interrupt, skip) with a 200, so counts are always checked; img2img does not
take its size from the input image, so width and height are sent (multiples
of 8); a CLIP caption ending in ``<error>`` is a failure reported with 200;
error bodies carry ``detail`` (string or list), ``errors`` or ``message``, or
are plain text. There is no server-side timeout, so the read timeout is long
(10 minutes by default).

Auth is HTTP Basic, sent pre-emptively (A1111 sends no challenge). The
password is never printed, logged or put in an error message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ... import imaging
from .. import server_io
from .base import BackendError, EnhanceItem, EnhanceParams, round_scale
from .forge_client import (AUTH_ENV, DEFAULT_API_URL, SCHEDULER_SUFFIXES, ForgeClient, ForgeError,
                           ForgeUnreachable, error_detail, img2img_size, output_size, parse_auth,
                           redact_url, resolve_name, resolve_sampler)

__all__ = ["AUTH_ENV", "DEFAULT_API_URL", "SCHEDULER_SUFFIXES", "ForgeBackend", "ForgeClient",
           "ForgeError", "ForgeUnreachable", "error_detail", "img2img_size", "output_size",
           "parse_auth", "redact_url", "resolve_name", "resolve_sampler"]

log = logging.getLogger(__name__)


async def _nothing() -> None:
    return None


@dataclass(slots=True)
class _Server:
    client: ForgeClient
    alive: bool = True
    inflight: int = 0
    reason: str = ""
    abandoned: int = 0  # requests of ours cancelled (Ctrl-C) while the server had them
    # image counts of our extras requests on this server, in the order they were sent
    # (the server runs jobs in arrival order, so the first one is running or next)
    # (one-element lists: each request's own entry, removed by identity)
    extras_in_flight: list[list[int]] = field(default_factory=list)


class ForgeBackend:
    """Forge/A1111 implementation of :class:`~fluxgym_coach.enhance.backends.base.EnhanceBackend`.

    ``api_url``: one URL or several; several form a pool: chunks go to the
    live server with the fewest requests in flight, and a server that stops
    answering is dropped and its chunk re-sent to another one.
    ``api_auth``: ``"user:pass"`` (default ``$FLUXGYM_COACH_API_AUTH``), used
    for every server. Tuning: ``max_batch`` (images per extras request,
    default 8), ``max_request_bytes`` (input bytes per request, default
    32 MiB), ``per_server`` (requests in flight per server, default 2: the
    next one is encoded and uploaded while the server works), ``seed``
    (img2img seed; default -1 derives one per image from its digest, see
    :meth:`seed_for`), and the :class:`ForgeClient` tuning
    (``timeout``, ``connect_timeout``, ``retries``, ``backoff``,
    ``max_backoff``).

    Upscaling uses ``/extra-batch-images`` (``/extra-single-image`` for one
    image); colorization uses img2img at the image's size rounded to multiples
    of 8 with the colorize prompts, and the result is resized back to the
    input size. :attr:`warnings` collects notes for the user (a server
    dropped, a name corrected).
    """

    name = "forge"
    can_colorize = True

    def __init__(self, api_url: str | Sequence[str] = DEFAULT_API_URL, api_auth: str | None = None,
                 *, max_batch: int = 8, max_request_bytes: int = 32 * 1024**2, per_server: int = 2,
                 seed: int = -1, **client_tuning: Any):
        urls = [api_url] if isinstance(api_url, str) else list(api_url)
        urls = [u for u in (x.strip() for x in urls) if u] or [DEFAULT_API_URL]
        self.max_batch = max(1, int(max_batch))
        self.max_request_bytes = int(max_request_bytes)
        self.per_server = max(1, int(per_server))
        self.seed = seed
        self.servers = [_Server(ForgeClient(u, api_auth, **client_tuning)) for u in dict.fromkeys(urls)]
        self.concurrency = self.per_server * len(self.servers)
        self.identity = "forge/sdapi-v1@1"
        self.warnings: list[str] = []
        self.upscaler: str | None = None
        self.sampler: str | None = None
        self.scheduler: str | None = None
        self.checkpoint: str = ""
        self._interrupting = False

    def __repr__(self) -> str:
        return f"ForgeBackend({[s.client.url for s in self.servers]!r})"

    @property
    def urls(self) -> list[str]:
        """The server URLs (credentials removed)."""
        return [s.client.url for s in self.servers]

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)

    # -- pre-flight ------------------------------------------------------------------
    async def check(self, params: EnhanceParams) -> None:
        """Reach every server, drop the unreachable ones (with a warning), and
        resolve ``params.upscaler`` and (when colorizing) ``params.sampler_name``
        on the live ones. Raises BackendError when no server answers, a server
        refuses the credentials, or a name is unknown (closest names in the message)."""
        self._interrupting = False

        async def probe(server: _Server) -> tuple[_Server, Any]:
            try:
                c = server.client
                ups, samplers, opts = await asyncio.gather(
                    c.upscalers(), c.samplers() if params.colorize else _nothing(), c.options())
                return server, (ups, samplers or [], opts)
            except ForgeError as exc:
                return server, exc

        results = await asyncio.gather(*(probe(s) for s in self.servers))
        answers = []
        for server, res in results:
            api_off = isinstance(res, ForgeError) and res.status == 404 and len(self.servers) > 1
            if isinstance(res, ForgeUnreachable) or api_off:
                server.alive, server.reason = False, res.reason
                continue
            if isinstance(res, ForgeError):
                raise res
            server.alive = True
            answers.append((server, res))
        if not answers:
            reasons = "; ".join(s.reason for s in self.servers)
            raise ForgeUnreachable(f"no Forge/A1111 server answered: {reasons}", retryable=True)
        for server in self.servers:
            if not server.alive:
                self._warn(f"server {server.client.url} is unreachable and is left out of the pool")
        upscaler = sampler = None
        for server, (ups, samplers, opts) in answers:
            names = [u["name"] for u in ups]
            try:
                this_up = resolve_name("upscaler", params.upscaler, names)
                this_sampler = resolve_sampler(params.sampler_name, samplers) if params.colorize else None
            except BackendError as exc:
                if len(answers) == 1:
                    raise
                server.alive, server.reason = False, exc.reason
                self._warn(f"server {server.client.url} left out of the pool: {exc.reason}")
                continue
            upscaler = upscaler or this_up
            sampler = sampler or this_sampler
            self.checkpoint = self.checkpoint or str(opts.get("sd_model_checkpoint") or "")
        live = [s for s in self.servers if s.alive]
        if not live:
            raise BackendError("no server offers the requested upscaler/sampler: "
                               + "; ".join(s.reason for s in self.servers))
        if upscaler != params.upscaler:
            self._warn(f"upscaler {params.upscaler!r} is called {upscaler!r} on the server")
        if params.colorize and sampler != params.sampler_name:
            self._warn(f"sampler {params.sampler_name!r} is called {sampler!r} on the server")
        self.upscaler, self.sampler = upscaler, sampler
        self.concurrency = self.per_server * len(live)
        if params.colorize and params.scheduler:
            self.scheduler = await self._resolve_scheduler(live[0], params.scheduler)

    async def _resolve_scheduler(self, server: _Server, name: str) -> str:
        """The server's label for scheduler ``name`` (a label, a name or an alias);
        a server without ``/schedulers`` (A1111 before 1.9) gets it as given."""
        try:
            listed = await server.client.schedulers()
        except ForgeError as exc:
            if exc.status != 404:
                raise
            self._warn(f"{server.client.url} does not list schedulers; --scheduler {name!r} is "
                       f"sent as given")
            return name
        labels = [str(x.get("label") or x.get("name")) for x in listed]
        aliases = {str(a): str(x.get("label")) for x in listed
                   for a in [x.get("name"), *(x.get("aliases") or [])] if a}
        return resolve_name("scheduler", name, labels, aliases)

    def _upscaler(self, params: EnhanceParams) -> str:
        return self.upscaler or params.upscaler

    def cache_params(self, op: str, params: EnhanceParams, item: EnhanceItem) -> dict[str, Any]:
        """What decides the pixels: for ``"upscale"`` the scale, the server's
        upscaler name, the output size and format; for ``"colorize"`` the size,
        colorize prompts, denoising strength, steps, CFG scale, sampler and the
        server's checkpoint."""
        if op == "colorize":
            extra = {"scheduler": self.scheduler or params.scheduler} if params.scheduler else {}
            return {**extra, "op": op, "size": [item.width, item.height], "prompt": params.colorize_prompt,
                    "negative_prompt": params.colorize_negative_prompt,
                    "denoising_strength": params.denoising_strength, "steps": params.steps,
                    "cfg_scale": params.cfg_scale, "sampler": self.sampler or params.sampler_name,
                    "checkpoint": self.checkpoint,
                    "seed": self.seed if self.seed >= 0 else "from-digest", "format": params.output_format}
        upscaler = self._upscaler(params)
        return {"op": op, "scale": round_scale(item.scale), "upscaler": upscaler,
                "size": list(output_size(item.width, item.height, item.scale, upscaler)),
                "format": params.output_format}

    # -- server choice ------------------------------------------------------------------
    def _pick(self, avoid: set[int]) -> _Server | None:
        live = [s for s in self.servers if s.alive]
        fresh = [s for s in live if id(s) not in avoid]
        pool = fresh or live
        return min(pool, key=lambda s: s.inflight) if pool else None

    async def _on_pool(self, call: Any, extras_images: int = 0) -> Any:
        """Run ``call(client)`` on a live server; on ForgeUnreachable drop that server and
        try the next. Raises the last error when no server is left. ``extras_images``:
        the image count of an extras request, recorded for :meth:`progress_in_flight`."""
        tried: set[int] = set()
        last: ForgeError | None = None
        while True:
            server = self._pick(tried)
            if server is None or id(server) in tried:
                raise last or ForgeUnreachable("no Forge/A1111 server is left in the pool",
                                               retryable=True)
            tried.add(id(server))
            server.inflight += 1
            token = [extras_images]  # identity marks this request's entry
            if extras_images:
                server.extras_in_flight.append(token)
            try:
                return await call(server.client)
            except asyncio.CancelledError:
                server.abandoned += 1
                raise
            except ForgeUnreachable as exc:
                last = exc
                if self._interrupting:
                    raise
                if len([s for s in self.servers if s.alive]) > 1:
                    server.alive, server.reason = False, exc.reason
                    self._warn(f"server {server.client.url} stopped answering; its work moves to "
                               f"the other servers ({exc.reason})")
            finally:
                server.inflight -= 1
                if extras_images:
                    server.extras_in_flight[:] = [t for t in server.extras_in_flight if t is not token]

    # -- work -------------------------------------------------------------------------------
    def _finish(self, data: bytes, expected: tuple[int, int], params: EnhanceParams,
                name: str) -> bytes | BackendError:
        """Check one returned image (readable, expected size) and convert it to the output format."""
        try:
            im = imaging.open_image(data, name)
            if im.size != expected:
                return BackendError(f"server returned {im.width}x{im.height} for {name}, expected "
                                    f"{expected[0]}x{expected[1]}: results may be out of order, "
                                    f"not used")
            if (im.format or "").upper() == params.output_format:
                return data
            im.load()
            return imaging.encode(im, params.output_format)
        except imaging.ImageReadError as exc:
            return BackendError(f"server returned an unreadable image for {name} ({exc.reason})")

    async def upscale(self, items: Sequence[EnhanceItem], params: EnhanceParams) -> list[bytes | BackendError]:
        """Upscale ``items`` (all of one scale) in one extras request.

        Each image is sent as :func:`~fluxgym_coach.enhance.server_io.server_upload` makes it (our own
        8-bit PNG unless the file is already one every server decodes alike).
        Results are matched to their inputs by content (luminance correlation,
        :func:`~fluxgym_coach.enhance.server_io.match_results`), full batches included,
        and each one's size is checked; an input without a matching result gets
        a BackendError in its slot (retryable when the batch came back short or
        interrupted). After the job, ``/progress`` tells whether it was
        interrupted (by us, the web UI or another client): the last image it
        returned may then be a plain resize and is not used. A failed request
        raises BackendError once (never re-sent image by image)."""
        if not items:
            return []
        upscaler = self._upscaler(params)
        scale = items[0].scale
        if any(abs(i.scale - scale) > 1e-9 for i in items):
            raise ValueError("upscale() takes items of one scale per call")
        fields = ForgeClient.extras_fields(scale, upscaler)
        try:
            data = await asyncio.to_thread(lambda: [server_io.server_upload(i.data) for i in items])
        except imaging.ImageReadError as exc:
            raise BackendError(f"cannot prepare the upload: {exc.reason}") from exc
        names = [i.name for i in items]
        if len(items) == 1:
            job = (lambda c: self._job(c, c.extra_single_image(data[0], **fields), one=True))
        else:
            job = (lambda c: self._job(c, c.extra_batch_images(data, names, **fields)))
        got, interrupted = await self._on_pool(job, len(items))
        expected = [output_size(i.width, i.height, scale, upscaler) for i in items]
        return await asyncio.to_thread(self._assign, items, data, got, interrupted, expected, params)

    async def _job(self, client: "ForgeClient", request: Any, one: bool = False) -> tuple[list[bytes], bool]:
        """Await a job request on ``client``, then read whether the job was interrupted.

        Forge resets ``state.interrupted`` only when the next job begins, so a
        ``/progress`` read right after the answer tells whether ours was cut
        short (a later job of another client interrupted in the meantime also
        counts: the safe side). A failed read counts as not interrupted.

        The read races with a shared server's queue: another client's job can
        begin first, and its ``state.begin()`` clears the flag (the state names
        no job id), so ``False`` proves nothing. :meth:`_assign` therefore also
        refuses a model result that is exactly a Lanczos resize of its upload
        (:func:`~fluxgym_coach.enhance.server_io.is_plain_resize`): what an
        interrupted image is; the missing images after it fail the count check."""
        got = await request
        got = [got] if one else got
        try:
            state = (await asyncio.wait_for(client.progress(), timeout=10)).get("state", {})
        except (ForgeError, asyncio.TimeoutError):
            return got, False
        return got, bool(state.get("interrupted"))

    def _assign(self, items: Sequence[EnhanceItem], data: Sequence[bytes], got: Sequence[bytes],
                interrupted: bool, expected: Sequence[tuple[int, int]],
                params: EnhanceParams) -> list[bytes | BackendError]:
        """Match returned images to inputs by content and check each (CPU work)."""
        if len(got) > len(items):
            return [BackendError(f"server returned {len(got)} images for {len(items)}: results "
                                 f"not used", retryable=True) for _ in items]
        usable = len(got) - 1 if interrupted and got else len(got)
        sig_in = [server_io.signature(d) for d in data]
        sig_out = []
        for d in got[:usable]:
            try:
                sig_out.append(server_io.signature(d))
            except imaging.ImageReadError:
                sig_out.append(server_io.flat_signature())
        assigned = server_io.match_results(sig_in, sig_out)
        short = len(got) < len(items) or interrupted
        why = ("the job was interrupted" if self._interrupting or interrupted
               else "interrupted or skipped on the server")
        cut = ", the last one cut short and not used" if interrupted and got else ""
        upscaler = self._upscaler(params)
        check_plain = upscaler not in server_io.RESIZE_UPSCALERS
        out: list[bytes | BackendError] = []
        for k, item in enumerate(items):
            j = assigned[k]
            if j is not None and check_plain and server_io.is_plain_resize(data[k], got[j]):
                out.append(BackendError(  # interrupted, whatever /progress said (see _job)
                    f"{item.name} came back as a plain Lanczos resize, not a {upscaler} result: the job "
                    f"was interrupted on the server (by us, the web UI or another client); not used: "
                    f"run again to finish it", retryable=True))
            elif j is not None:
                out.append(self._finish(got[j], expected[k], params, item.name))
            elif short:
                out.append(BackendError(
                    f"server returned {len(got)} of {len(items)} images{cut} ({why}); {item.name} "
                    f"was not processed: run again to finish it", retryable=True))
            else:
                out.append(BackendError(self._mismatch(sig_in[k], sig_out[k], item.name)))
        return out

    @staticmethod
    def _mismatch(source: Any, own: Any, name: str) -> str:
        """Why no result matched ``name``: what is wrong with the one at its own position."""
        try:
            server_io.check_result(source, own, name)
        except server_io.ResultCheckError as exc:
            return exc.reason
        return (f"no image the server returned matches {name} alone (its result also resembles "
                f"another input's): results may be mixed up; not used")

    async def progress_in_flight(self) -> float:
        """How many images of our extras requests still in flight the servers have
        already finished (0 when unknown), read from ``GET /progress``.

        An extras job sets ``job_count`` to its image count and advances
        ``job_no`` as each image starts (Forge/A1111 ``run_postprocessing``), so
        ``job_no - 1`` images of the running job are done. The running job is
        taken to be our oldest extras request on that server, and only when its
        image count matches ``job_count`` (otherwise it is another client's job,
        or our img2img). One GET per busy server; errors count as 0."""
        async def one(server: _Server) -> float:
            if not server.alive or not server.extras_in_flight:
                return 0.0
            oldest = server.extras_in_flight[0][0]
            try:
                state = (await asyncio.wait_for(server.client.progress(), timeout=5)).get("state", {})
            except (ForgeError, asyncio.TimeoutError):
                return 0.0
            if not state.get("job") or int(state.get("job_count") or 0) != oldest:
                return 0.0
            return float(min(oldest, max(0, int(state.get("job_no") or 0) - 1)))

        return sum(await asyncio.gather(*(one(s) for s in self.servers)))

    def seed_for(self, item: EnhanceItem) -> int:
        """The img2img seed sent for ``item``: ``seed`` when one was given (>= 0),
        else the first 31 bits of the image's digest. A per-image seed keeps
        colorization reproducible (recomputing a cleared cache gives the same
        picture, with the same server and checkpoint) where Forge's -1 would
        draw a new random one each time."""
        if self.seed >= 0:
            return int(self.seed)
        return int(item.digest[:8], 16) & 0x7FFFFFFF if item.digest else 0

    async def colorize(self, item: EnhanceItem, params: EnhanceParams) -> bytes:
        """Colorize one black-and-white image with img2img (colorize prompts,
        denoising strength, steps, CFG scale, sampler); the result has the
        input's size and the output format. Raises BackendError."""
        width, height = img2img_size(item.width, item.height)
        sampler = self.sampler or params.sampler_name
        try:
            upload = await asyncio.to_thread(server_io.server_upload, item.data)
        except imaging.ImageReadError as exc:
            raise BackendError(f"cannot prepare the upload: {exc.reason}") from exc
        scheduler = self.scheduler or params.scheduler
        extra = {"scheduler": scheduler} if scheduler else {}
        got, interrupted = await self._on_pool(lambda c: self._job(c, c.img2img(
            upload, width=width, height=height, prompt=params.colorize_prompt,
            negative_prompt=params.colorize_negative_prompt,
            denoising_strength=params.denoising_strength, steps=params.steps,
            cfg_scale=params.cfg_scale, sampler_name=sampler, seed=self.seed_for(item), **extra),
            one=True))
        if interrupted:
            raise BackendError(f"the colorization of {item.name} was interrupted on the server; "
                               f"result not used: run again to finish it", retryable=True)
        data = got[0]

        def back_to_size() -> bytes:
            im = imaging.open_image(data, item.name)
            im.load()
            if im.size != (item.width, item.height):
                im = im.resize((item.width, item.height), imaging.Image.Resampling.LANCZOS)
            elif (im.format or "").upper() == params.output_format:
                return data
            return imaging.encode(im, params.output_format)

        try:
            return await asyncio.to_thread(back_to_size)
        except imaging.ImageReadError as exc:
            raise BackendError(f"server returned an unreadable image for {item.name} ({exc.reason})")

    async def interrupt(self, *, drain_s: float = 25.0, poll_s: float = 0.2) -> None:
        """Stop our work on every live server that has some: the running job and
        the ones of ours still queued behind it.

        ``/interrupt`` flags only the running job and the flag is reset when the
        next job starts (sdapi.md §6), so a request of ours waiting in the
        server's FIFO queue would still run in full after a single interrupt.
        This sends ``/interrupt`` at once, then polls ``/progress`` every
        ``poll_s`` seconds and interrupts each job that starts while requests
        of ours are still there: the ones in flight (until they return) and
        the ones cancelled by Ctrl-C (counted in ``abandoned``; one is taken
        off per job seen starting, and all when the server is seen idle).
        Gives up after ``drain_s`` seconds. Best effort: errors are ignored; a
        server where we have nothing running is not touched, so another
        client's job there goes on.
        """
        self._interrupting = True
        busy = [s for s in self.servers if s.alive and (s.inflight > 0 or s.abandoned)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_s

        async def send(server: _Server) -> None:
            try:
                await asyncio.wait_for(server.client.interrupt(), timeout=10)
            except (ForgeError, asyncio.TimeoutError):
                pass

        async def drain(server: _Server) -> None:
            await send(server)
            if server.abandoned:  # Ctrl-C: say why we are not gone yet
                log.warning("stopping the requests left on %s (press Ctrl-C again to leave "
                            "them running)", server.client.url)
            idle_polls = 0
            while (server.inflight > 0 or server.abandoned > 0) and loop.time() < deadline:
                await asyncio.sleep(poll_s)
                try:
                    state = (await asyncio.wait_for(server.client.progress(), timeout=10)).get("state", {})
                except (ForgeError, asyncio.TimeoutError):
                    break
                if not state.get("job"):
                    # Nothing running: the jobs we cancelled are over (the FIFO gap
                    # between two jobs is short, so wait for a second idle poll).
                    idle_polls += 1
                    if idle_polls >= 2 and server.inflight == 0:
                        server.abandoned = 0
                    continue
                idle_polls = 0
                if not state.get("interrupted"):  # a job started since our last interrupt
                    await send(server)
                    if server.inflight == 0 and server.abandoned > 0:
                        server.abandoned -= 1
            server.abandoned = 0

        await asyncio.gather(*(drain(s) for s in busy))

    async def aclose(self) -> None:
        """Close every client."""
        await asyncio.gather(*(s.client.aclose() for s in self.servers), return_exceptions=True)
