"""A faithful fake of the Stable Diffusion Forge / A1111 HTTP API, real HTTP on 127.0.0.1.

It implements the subset that fluxgym-coach uses with the rules of the
contract in ``reference/sdapi.md`` (A1111 1.10 / Forge 2025):

* ``POST /sdapi/v1/extra-single-image`` and ``/extra-batch-images``: real
  upscaling with Pillow (Lanczos; ``Nearest`` with nearest-neighbour; the
  ``None`` upscaler does not resize). Output size for scale ``s`` is
  ``floor(w*s/8)*8 x floor(h*s/8)*8``; ``resize_mode`` 1 scales by
  ``max(W/w, H/h)`` and, with ``upscaling_crop``, pastes centred on a black
  ``W x H`` canvas. Model upscalers return RGB; Lanczos/Nearest keep RGBA.
  An unknown upscaler is ``500 could not find upscaler named X``.
* ``POST /sdapi/v1/img2img``: the "colorization" is a visible, deterministic
  sepia-to-teal tint of the grayscale image at ``width x height``.
* ``POST /sdapi/v1/interrogate``: a deterministic caption (``clip``) or tags
  (``deepdanbooru``); any other model is ``404 Model not found``.
* ``GET /sdapi/v1/upscalers``, ``/samplers``, ``/sd-models``, ``/options``
  (and ``POST /options``), ``/progress``; ``POST /interrupt`` and ``/skip``.
* HTTP Basic auth on every ``/sdapi`` route when ``auth`` is set; 422 bodies
  in FastAPI's shape (pydantic v1 for A1111, v2 for Forge); error bodies in
  either dialect (``dialect="forge"`` or ``"a1111"``); the
  ``data:image/...;base64,`` prefix rule for input images.

**Locking.** Every job (extras, img2img, interrogate) runs under one FIFO
lock, strictly one at a time in arrival order, as ``queue_lock`` does in the
real servers; GETs, ``/interrupt`` and ``/skip`` answer at once while a job
runs. Images are decoded before the lock, as in the real extras code.

**Why the standard library server.** :class:`http.server.ThreadingHTTPServer`
gives one real thread per connection, which is the real servers' model (sync
handlers in a thread pool behind a process-wide lock), needs no dependency,
and lets a fault switch close a socket without any response (a dropped
connection), which an ASGI server does not allow.

**Fault switches** (:class:`Faults`, changeable while the server runs):
``job_latency`` seconds per job plus ``image_latency`` per image processed
(the server "works" while holding the lock; :attr:`FakeForge.busy_seconds`
adds it up), ``fail_on`` (500 on these job numbers, 1-based), ``drop_on``
(close the connection without answering these job numbers),
``truncate_batch`` (return this many fewer images from a batch, still 200),
``skip_index`` (drop the batch item at this index, as ``/skip`` does),
``response_delay`` (a slow response: wait this long after the job, outside
the lock, before answering), ``caption_error`` (CLIP captions end with
``<error>``), ``interrupt_on`` (these job numbers are interrupted by
"another client" while image ``interrupt_at`` is processed: as on the real
servers that image comes back as a plain Lanczos resize, the rest of a batch
is dropped, the answer is a 200 and ``/progress`` says ``interrupted`` until
the next job begins), ``reverse_batch`` (a full batch comes back in reverse
order), ``hang_on`` (these job numbers never answer: the handler waits until
the server stops, at most 60 s), ``next_job_at_once`` (another client's job
begins the moment each job ends, before its answer is read: ``/progress``
then says ``interrupted: false`` even for a job that was interrupted, the
race of a shared server).

**Model upscalers are told apart from a plain resize**, as on a real server:
a model name (anything but ``None``, ``Lanczos``, ``Nearest``) gives a
Lanczos resize plus an unsharp mask (the "restored detail"), so a client can
recognise the plain Lanczos resize that an interrupted image comes back as.

**Uploads are converted as Forge converts them** (Pillow 9.5 rules,
``modules/postprocessing.py`` and ``api.py``): extras keep RGB and RGBA and
turn every other mode into RGB with ``convert("RGB")``, which clips 16-bit
and 32-bit values to 0..255 (a raw 16-bit scan becomes white);
img2img and interrogate convert everything to RGB the same way.

Outside the real API, ``GET /fake/stats`` returns the counters and ``POST
/fake/reset`` zeroes them (for a server running in another process).

Use it as a context manager::

    with FakeForge(faults=Faults(job_latency=0.05)) as server:
        client_url = server.url
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from PIL import Image, ImageFilter, ImageOps

from .fake_forge_api import (GET_PATHS, JOB_PATHS, OTHER_POST_PATHS, SAMPLERS, SCHEDULERS, UPSCALERS,
                             _Drop, _Handler, _HTTPError, pillow95_rgb)

__all__ = ["SAMPLERS", "SCHEDULERS", "UPSCALERS", "FakeForge", "FifoLock", "Faults", "pillow95_rgb",
           "GET_PATHS", "JOB_PATHS", "OTHER_POST_PATHS", "_Drop", "_HTTPError"]


@dataclass
class Faults:
    """Fault switches; see the module docstring. Times are seconds; job numbers count
    job requests (extras, img2img, interrogate) from 1 in arrival order."""

    job_latency: float = 0.0
    image_latency: float = 0.0
    fail_on: set[int] = field(default_factory=set)
    drop_on: set[int] = field(default_factory=set)
    truncate_batch: int = 0
    skip_index: int | None = None
    response_delay: float = 0.0
    caption_error: bool = False
    interrupt_on: set[int] = field(default_factory=set)
    interrupt_at: int = 0
    reverse_batch: bool = False
    hang_on: set[int] = field(default_factory=set)
    next_job_at_once: bool = False


class FifoLock:
    """A lock granted strictly in arrival order (tickets), like the real ``queue_lock``."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0
        self._serving = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Wait for this caller's turn, hold the lock for the block, pass it on."""
        with self._cond:
            ticket = self._next
            self._next += 1
            while self._serving != ticket:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._serving += 1
                self._cond.notify_all()


class _QuietServer(ThreadingHTTPServer):
    """The standard threading server, minus the traceback it prints when a client
    drops its connection (a client that timed out or was cancelled: normal here)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class FakeForge:
    """The fake server. ``port`` 0 picks a free port; ``auth`` is ``"user:pass"``
    (several separated by commas) or None; ``dialect`` is ``"forge"`` or
    ``"a1111"``; ``upscalers`` replaces the default list (``None``, ``Lanczos``
    and ``Nearest`` are always added first).

    Counters (read them in tests and benchmarks): :attr:`job_requests`
    (job POSTs received, including failed ones), :attr:`jobs_by_path`,
    :attr:`images_processed`, :attr:`busy_seconds` (time spent holding the job
    lock), :attr:`max_parallel_jobs` (must stay 1), :attr:`job_order` (job
    numbers in the order they got the lock), :attr:`interrupts`,
    :attr:`requests` (every request as ``(method, path)``).
    """

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", auth: str | None = None,
                 dialect: str = "forge", faults: Faults | None = None,
                 upscalers: list[str] | None = None, samples_format: str = "png"):
        if dialect not in ("forge", "a1111"):
            raise ValueError(f"dialect must be 'forge' or 'a1111', got {dialect!r}")
        self.host, self.port = host, port
        self.auth = {tuple(p.split(":", 1)) for p in auth.split(",")} if auth else set()
        self.dialect = dialect
        self.faults = faults or Faults()
        names = upscalers if upscalers is not None else UPSCALERS[3:]
        extra = sorted((n for n in names if n not in ("None", "Lanczos", "Nearest")), key=str.lower)
        self.upscalers = ["None", "Lanczos", "Nearest", *extra]
        self.options: dict[str, Any] = {
            "sd_model_checkpoint": "fake-sdxl.safetensors [0123456789]",
            "samples_format": samples_format, "ESRGAN_tile": 192,
            "realesrgan_enabled_models": ["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"],
        }
        self.lock = FifoLock()
        self._state_lock = threading.Lock()
        self._interrupted = threading.Event()
        self._stopping = threading.Event()
        self._skipped = threading.Event()
        self.job_requests = 0
        self.jobs_by_path: dict[str, int] = {}
        self.images_processed = 0
        self.img2img_seeds: list[int] = []  # the seed field of each img2img request
        self.img2img_samplers: list[tuple[Any, Any]] = []  # (sampler_name, scheduler) sent
        self.busy_seconds = 0.0
        self.max_parallel_jobs = 0
        self._running = 0
        self._active_jobs = 0
        self.job_order: list[int] = []
        self.interrupts = 0
        self.requests: list[tuple[str, str]] = []
        self._progress: dict[str, Any] = {"job": "", "job_count": 0, "job_no": 0, "done": 0, "total": 0}
        self._httpd: ThreadingHTTPServer | None = None
        self.dead = False
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> "FakeForge":
        """Bind and serve in a background thread; returns self."""
        handler = type("Handler", (_Handler,), {"fake": self})
        httpd = _QuietServer((self.host, self.port), handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name=f"fake-forge:{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        self._stopping.set()
        if self._httpd is not None:
            self._interrupted.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def kill(self) -> None:
        """Simulate a crashed server: stop listening and drop every open connection
        without an answer, including the one of a running job."""
        self.dead = True
        self.stop()

    def serve_forever(self) -> None:
        """Serve until interrupted (for the ``fake-forge`` command); starts if needed."""
        if self._httpd is None:
            self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def __enter__(self) -> "FakeForge":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def idle(self) -> bool:
        """True when no job runs or waits for the job lock (requests of a client that
        went away still run, as on the real servers)."""
        with self._state_lock:
            return self._active_jobs == 0

    def reset_counters(self) -> None:
        """Zero every counter (the fault switches stay)."""
        with self._state_lock:
            self.job_requests = 0
            self.jobs_by_path = {}
            self.images_processed = 0
            self.busy_seconds = 0.0
            self.max_parallel_jobs = 0
            self.job_order = []
            self.interrupts = 0
            self.requests = []
            self.img2img_seeds = []
            self.img2img_samplers = []

    def stats(self) -> dict[str, Any]:
        """The counters as a dict (also served at ``GET /fake/stats``; ``POST /fake/reset``
        zeroes them): for benchmarks that run the server in another process."""
        with self._state_lock:
            return {"job_requests": self.job_requests, "jobs_by_path": dict(self.jobs_by_path),
                    "images_processed": self.images_processed, "busy_seconds": self.busy_seconds,
                    "max_parallel_jobs": self.max_parallel_jobs, "interrupts": self.interrupts}

    # -- error bodies ---------------------------------------------------------------
    def http_exception(self, status: int, detail: str) -> _HTTPError:
        """An HTTPException in this server's dialect."""
        if self.dialect == "a1111":
            return _HTTPError(status, {"error": "HTTPException", "detail": detail, "body": "",
                                       "errors": ""})
        return _HTTPError(status, {"detail": detail})

    def server_error(self, exc_class: str, message: str) -> _HTTPError:
        """A 500 from an unhandled exception in this server's dialect."""
        key = "errors" if self.dialect == "a1111" else "message"
        return _HTTPError(500, {"error": exc_class, "detail": "", "body": "", key: message})

    def validation_error(self, field_name: str, value: Any, kind: str) -> _HTTPError:
        """A FastAPI 422 for one body field (pydantic v1 for A1111, v2 for Forge)."""
        loc = ["body", *field_name.split(".")]
        msgs = {
            "gt0": ("ensure this value is greater than 0", "value_error.number.not_gt",
                    "Input should be greater than 0", "greater_than"),
            "ge1": ("ensure this value is greater than or equal to 1", "value_error.number.not_ge",
                    "Input should be greater than or equal to 1", "greater_than_equal"),
            "mode": ("unexpected value; permitted: 0, 1", "value_error.const",
                     "Input should be 0 or 1", "literal_error"),
            "unit": ("ensure this value is less than or equal to 1", "value_error.number.not_le",
                     "Input should be less than or equal to 1", "less_than_equal"),
            "missing": ("field required", "value_error.missing", "Field required", "missing"),
            "number": ("value is not a valid number", "type_error.float",
                       "Input should be a valid number", "float_parsing"),
        }[kind]
        if self.dialect == "a1111":
            item: dict[str, Any] = {"loc": loc, "msg": msgs[0], "type": msgs[1]}
        else:
            item = {"type": msgs[3], "loc": loc, "msg": msgs[2], "input": value,
                    "url": f"https://errors.pydantic.dev/2.8/v/{msgs[3]}"}
        return _HTTPError(422, {"detail": [item]})

    # -- shared job machinery ---------------------------------------------------------
    def _take_job_number(self, path: str) -> int:
        with self._state_lock:
            self.job_requests += 1
            self.jobs_by_path[path] = self.jobs_by_path.get(path, 0) + 1
            return self.job_requests

    @contextmanager
    def job(self, number: int, name: str, total: int) -> Iterator[None]:
        """Hold the FIFO job lock for one job, with the fault switches and counters applied."""
        with self.lock.hold():
            start = time.perf_counter()
            with self._state_lock:
                self._running += 1
                self.max_parallel_jobs = max(self.max_parallel_jobs, self._running)
                self.job_order.append(number)
                # extras: job_count = the image count, job_no advanced as each image
                # starts (run_postprocessing calls nextjob() per image)
                self._progress = {"job": name, "job_count": total if name.startswith("extra") else 1,
                                  "job_no": 0, "done": 0, "total": total}
            self._interrupted.clear()
            self._skipped.clear()
            try:
                if self.faults.job_latency:
                    self._interrupted.wait(self.faults.job_latency)
                yield
            finally:
                with self._state_lock:
                    self._running -= 1
                    self.busy_seconds += time.perf_counter() - start
                    self._progress = {"job": "", "job_count": 0, "job_no": 0, "done": 0, "total": 0}
                if self.faults.next_job_at_once:  # shared.state.begin() of the next job resets the flags
                    self._interrupted.clear()
                    self._skipped.clear()

    def _work_on_image(self) -> bool:
        """Spend the per-image latency; False when the job was interrupted."""
        with self._state_lock:
            if self._progress["job"].startswith("extra"):
                self._progress["job_no"] += 1
        if self.faults.image_latency:
            self._interrupted.wait(self.faults.image_latency)
        with self._state_lock:
            self._progress["done"] += 1
        return not self._interrupted.is_set()

    def progress(self) -> dict[str, Any]:
        """The /progress body."""
        p = dict(self._progress)
        frac = p["done"] / p["total"] if p["total"] else 0.0
        return {"progress": round(frac, 4) if p["job"] else 0.0,
                "eta_relative": 0.0,
                "state": {"skipped": self._skipped.is_set(), "interrupted": self._interrupted.is_set(),
                          "stopping_generation": False, "job": p["job"], "job_count": p["job_count"],
                          "job_timestamp": "20250101000000", "job_no": p["job_no"],
                          "sampling_step": p["done"], "sampling_steps": p["total"]},
                "current_image": None, "textinfo": None}

    def interrupt(self) -> None:
        """Flag the running job to stop (the flag is reset when the next job starts)."""
        with self._state_lock:
            self.interrupts += 1
        self._interrupted.set()

    # -- image helpers -------------------------------------------------------------------
    def decode_image(self, value: Any) -> Image.Image:
        """Decode a request image by the contract's rules; 500 ``Invalid encoded image`` else."""
        if not isinstance(value, str) or not value:
            raise self.http_exception(500, "Invalid encoded image")
        if value.startswith(("http://", "https://")):
            raise self.http_exception(500, "Request to local resource not allowed")
        if value.startswith("data:image/"):
            try:
                value = value.split(";")[1].split(",")[1]
            except IndexError:
                raise self.http_exception(500, "Invalid encoded image") from None
        elif value.startswith("data:") or value[:1].isspace():
            raise self.http_exception(500, "Invalid encoded image")
        try:
            raw = base64.b64decode(value, validate=False)
            im = Image.open(io.BytesIO(raw))
            im.load()
        except (binascii.Error, OSError, ValueError, Image.DecompressionBombError):
            raise self.http_exception(500, "Invalid encoded image") from None
        return ImageOps.exif_transpose(im)

    def encode_image(self, im: Image.Image) -> str:
        """Encode as raw base64 (no prefix) in option ``samples_format``."""
        fmt = str(self.options.get("samples_format", "png")).upper()
        fmt = "JPEG" if fmt in ("JPG", "JPEG") else fmt
        if fmt == "JPEG" and im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        buf = io.BytesIO()
        im.save(buf, fmt, **({"compress_level": 1} if fmt == "PNG" else {}))
        return base64.b64encode(buf.getvalue()).decode("ascii")

    def upscale(self, im: Image.Image, req: dict[str, Any]) -> Image.Image:
        """Apply the extras size rules of the contract to one image."""
        name = req["upscaler_1"]
        w, h = im.size
        if req["resize_mode"] == 1:
            tw, th = req["upscaling_resize_w"], req["upscaling_resize_h"]
            s = max(tw / w, th / h)
        else:
            tw = th = 0
            s = req["upscaling_resize"]
        if name == "None":
            return im
        if name not in ("Lanczos", "Nearest") and im.mode != "RGB":
            im = im.convert("RGB")
        size = (max(8, math.floor(w * s / 8) * 8), max(8, math.floor(h * s / 8) * 8))
        method = Image.Resampling.NEAREST if name == "Nearest" else Image.Resampling.LANCZOS
        out = im.resize(size, method)
        if name not in ("Lanczos", "Nearest"):  # a "model": not a plain resize (module docstring)
            out = out.filter(ImageFilter.UnsharpMask(radius=1.5, percent=80, threshold=0))
        if req["resize_mode"] == 1 and req["upscaling_crop"]:
            canvas = Image.new("RGB", (tw, th), (0, 0, 0))
            canvas.paste(out, ((tw - size[0]) // 2, (th - size[1]) // 2))
            out = canvas
        return out


