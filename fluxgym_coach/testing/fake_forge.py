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
the server stops, at most 60 s).

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
import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image, ImageOps, ImageStat

#: Upscaler names as A1111 1.10 lists them (None, Lanczos, Nearest first).
UPSCALERS = ["None", "Lanczos", "Nearest", "DAT x2", "DAT x3", "DAT x4", "ESRGAN_4x", "LDSR",
             "R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B", "ScuNET GAN", "ScuNET PSNR", "SwinIR 4x"]

#: Sampler names with aliases, as /samplers lists them.
SAMPLERS = [("DPM++ 2M", ["k_dpmpp_2m"]), ("DPM++ SDE", ["k_dpmpp_sde"]),
            ("DPM++ 2M SDE", ["k_dpmpp_2m_sde"]), ("Euler a", ["k_euler_a"]),
            ("Euler", ["k_euler"]), ("LMS", ["k_lms"]), ("Heun", ["k_heun"]),
            ("DPM2", ["k_dpm_2"]), ("DDIM", []), ("UniPC", [])]

JOB_PATHS = {"/sdapi/v1/extra-single-image", "/sdapi/v1/extra-batch-images",
             "/sdapi/v1/img2img", "/sdapi/v1/interrogate"}
#: Scheduler (name, label) pairs as Forge's /schedulers lists them (modules/sd_schedulers.py).
SCHEDULERS = [("automatic", "Automatic"), ("uniform", "Uniform"), ("karras", "Karras"),
              ("exponential", "Exponential"), ("sgm_uniform", "SGM Uniform"),
              ("align_your_steps", "Align Your Steps"), ("simple", "Simple"), ("beta", "Beta"),
              ("align_your_steps_GITS", "Align Your Steps GITS")]

GET_PATHS = {"/sdapi/v1/upscalers", "/sdapi/v1/samplers", "/sdapi/v1/schedulers", "/sdapi/v1/sd-models",
             "/sdapi/v1/options", "/sdapi/v1/progress"}
OTHER_POST_PATHS = {"/sdapi/v1/options", "/sdapi/v1/interrupt", "/sdapi/v1/skip"}


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


class _HTTPError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class _Drop(Exception):
    """Close the connection without answering."""


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
        httpd = ThreadingHTTPServer((self.host, self.port), handler)
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
        if req["resize_mode"] == 1 and req["upscaling_crop"]:
            canvas = Image.new("RGB", (tw, th), (0, 0, 0))
            canvas.paste(out, ((tw - size[0]) // 2, (th - size[1]) // 2))
            out = canvas
        return out


def pillow95_rgb(im: Image.Image) -> Image.Image:
    """``im.convert("RGB")`` as Pillow 9.5 does it: 16/32-bit integer and float
    values are clipped to 0..255 (newer Pillow versions may differ)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.clip(np.asarray(im, dtype=np.float64), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    return im.convert("RGB")


def _number(fake: FakeForge, body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise fake.validation_error(key, value, "number") from None


def _extras_request(fake: FakeForge, body: dict[str, Any]) -> dict[str, Any]:
    """Validate the extras fields (§2 ranges) and fill defaults."""
    req: dict[str, Any] = {}
    mode = body.get("resize_mode", 0)
    if mode not in (0, 1, "0", "1"):
        raise fake.validation_error("resize_mode", mode, "mode")
    req["resize_mode"] = int(mode)
    req["upscaling_resize"] = _number(fake, body, "upscaling_resize", 2)
    if not req["upscaling_resize"] > 0:
        raise fake.validation_error("upscaling_resize", body.get("upscaling_resize"), "gt0")
    for key in ("upscaling_resize_w", "upscaling_resize_h"):
        req[key] = int(_number(fake, body, key, 512))
        if req[key] < 1:
            raise fake.validation_error(key, body.get(key), "ge1")
    for key in ("extras_upscaler_2_visibility", "gfpgan_visibility", "codeformer_visibility",
                "codeformer_weight"):
        v = _number(fake, body, key, 0)
        if v < 0:
            raise fake.validation_error(key, body.get(key), "gt0")
        if v > 1:
            raise fake.validation_error(key, body.get(key), "unit")
    req["upscaling_crop"] = bool(body.get("upscaling_crop", True))
    req["upscaler_1"] = str(body.get("upscaler_1", "None"))
    req["upscaler_2"] = str(body.get("upscaler_2", "None"))
    return req


def _check_upscalers(fake: FakeForge, req: dict[str, Any]) -> None:
    for key in ("upscaler_1", "upscaler_2"):
        if req[key] not in fake.upscalers:
            raise fake.server_error("AssertionError", f"could not find upscaler named {req[key]}")


def _infotext(req: dict[str, Any]) -> str:
    s = req["upscaling_resize"] if req["resize_mode"] == 0 else \
        f"{req['upscaling_resize_w']}x{req['upscaling_resize_h']}"
    return f"<p>Postprocess upscale by: {s}, Postprocess upscaler: {req['upscaler_1']}</p>"


def _tint(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The fake colorization: a deterministic duotone from dark brown to pale teal."""
    gray = im.convert("L").resize(size, Image.Resampling.LANCZOS) if im.size != size else im.convert("L")
    return ImageOps.colorize(gray, black=(40, 22, 10), white=(235, 250, 245), mid=(200, 120, 60))


def _caption(im: Image.Image, model: str) -> str:
    rgb = im.convert("RGB")
    r, g, b = ImageStat.Stat(rgb).mean
    light = "bright" if (r + g + b) / 3 > 127 else "dark"
    hue = max((r, "red"), (g, "green"), (b, "blue"))[1]
    orient = "landscape" if im.width > im.height else "portrait" if im.height > im.width else "square"
    if model == "deepdanbooru":
        return ", ".join(sorted({light, f"{hue} theme", orient, "no humans", "photo \\(medium\\)"}))
    return f"a {light} {orient} photo with {hue} tones, {im.width}x{im.height}"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeForge
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by design
        return

    # -- plumbing ---------------------------------------------------------------------
    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(body, (bytes, str)):
            data = body.encode() if isinstance(body, str) else body
            ctype = "text/plain; charset=utf-8"
        else:
            data = json.dumps(body).encode()
            ctype = "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise _HTTPError(422, {"detail": [{"loc": ["body"], "msg": "JSON decode error",
                                               "type": "json_invalid"}]}) from None
        if not isinstance(body, dict):
            raise _HTTPError(422, {"detail": [{"loc": ["body"], "msg": "value is not a valid dict",
                                               "type": "type_error.dict"}]})
        return body

    def _check_auth(self) -> None:
        fake = self.fake
        if not fake.auth:
            return
        header = self.headers.get("Authorization", "")
        challenge = {"WWW-Authenticate": "Basic"} if fake.dialect == "forge" else {}
        if not header.startswith("Basic "):
            raise _HTTPError(401, {"detail": "Not authenticated"}, challenge)
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _HTTPError(401, {"detail": "Not authenticated"}, challenge) from None
        if (user, password) not in fake.auth:
            raise _HTTPError(401, {"detail": "Incorrect username or password"}, challenge)

    def _dispatch(self, method: str) -> None:
        fake = self.fake
        path = urlsplit(self.path).path
        with fake._state_lock:
            fake.requests.append((method, path))
        try:
            if fake.dead:
                raise _Drop()
            if path in ("/fake/stats", "/fake/reset"):
                if path == "/fake/reset":
                    fake.reset_counters()
                self._send(200, fake.stats())
                return
            if not path.startswith("/sdapi/"):
                raise _HTTPError(404, {"detail": "Not Found"})
            self._check_auth()
            known = JOB_PATHS | GET_PATHS | OTHER_POST_PATHS
            if path not in known:
                raise _HTTPError(404, {"detail": "Not Found"})
            if method == "GET" and path not in GET_PATHS or method == "POST" and \
                    path not in JOB_PATHS | OTHER_POST_PATHS:
                raise _HTTPError(405, {"detail": "Method Not Allowed"})
            body = self._body() if method == "POST" else {}
            if path in JOB_PATHS:
                status, result = self._job(path, body)
            else:
                status, result = 200, self._small(method, path, body)
            self._send(status, result)
        except _Drop:
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
        except _HTTPError as exc:
            try:
                self._send(exc.status, exc.body, exc.headers)
            except OSError:
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (cancelled request)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    # -- endpoints ---------------------------------------------------------------------
    def _small(self, method: str, path: str, body: dict[str, Any]) -> Any:
        fake = self.fake
        name = path.rsplit("/", 1)[1]
        if name == "upscalers":
            return [{"name": n, "model_name": None if n in ("None", "Lanczos", "Nearest") else n,
                     "model_path": None if n in ("None", "Lanczos", "Nearest") else
                     f"/models/ESRGAN/{n}.pth", "model_url": None,
                     "scale": 4.0 if n in ("None", "Lanczos", "Nearest") else
                     float(n[-2]) if n[-2:-1].isdigit() else 4.0} for n in fake.upscalers]
        if name == "samplers":
            return [{"name": n, "aliases": a, "options": {}} for n, a in SAMPLERS]
        if name == "schedulers":
            return [{"name": n, "label": label, "aliases": None, "default_rho": -1,
                     "need_inner_model": False} for n, label in SCHEDULERS]
        if name == "sd-models":
            return [{"title": fake.options["sd_model_checkpoint"], "model_name": "fake-sdxl",
                     "hash": "0123456789", "sha256": None, "filename": "/models/fake-sdxl.safetensors",
                     "config": None}]
        if name == "options":
            if method == "POST":
                ckpt = body.get("sd_model_checkpoint")
                if ckpt is not None and ckpt != fake.options["sd_model_checkpoint"]:
                    raise fake.server_error("RuntimeError", f"model {ckpt!r} not found")
                fake.options.update(body)
                return None
            return fake.options
        if name == "progress":
            return fake.progress()
        if name == "interrupt":
            fake.interrupt()
            return {}
        fake._skipped.set()
        return None

    def _job(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        fake = self.fake
        with fake._state_lock:
            fake._active_jobs += 1
        try:
            return self._job_body(path, body)
        finally:
            with fake._state_lock:
                fake._active_jobs -= 1

    def _job_body(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        fake = self.fake
        number = fake._take_job_number(path)
        faults = fake.faults
        name = path.rsplit("/", 1)[1]
        # Validation and decoding happen before the lock, as in the real code.
        if name == "extra-single-image":
            req = _extras_request(fake, body)
            images = [fake.decode_image(body.get("image", ""))]
        elif name == "extra-batch-images":
            req = _extras_request(fake, body)
            lst = body.get("imageList")
            if not isinstance(lst, list):
                raise fake.validation_error("imageList", lst, "missing")
            for i, entry in enumerate(lst):
                for key in ("data", "name"):
                    if not isinstance(entry, dict) or key not in entry:
                        raise fake.validation_error(f"imageList.{i}.{key}", entry, "missing")
            images = [fake.decode_image(e["data"]) for e in lst]
        elif name == "img2img":
            req = {}
            init = body.get("init_images")
            if not init:
                raise fake.http_exception(404, "Init image not found")
            if len(init) > int(body.get("batch_size", 1) or 1):
                raise fake.server_error("Exception", "bad number of images passed")
            images = [fake.decode_image(init[0])]
        else:
            req = {}
            images = [fake.decode_image(body.get("image", ""))]
        with fake.job(number, name, len(images)):
            if number in faults.hang_on:
                fake._stopping.wait(60)
                raise _Drop()
            if number in faults.drop_on:
                raise _Drop()
            if number in faults.fail_on:
                raise fake.server_error("RuntimeError", f"simulated failure of job {number}")
            if name in ("extra-single-image", "extra-batch-images"):
                _check_upscalers(fake, req)
                outs = []
                skipped = 0
                images = [im if im.mode in ("RGB", "RGBA") else pillow95_rgb(im) for im in images]
                for k, im in enumerate(images):
                    if fake._interrupted.is_set():
                        break
                    if number in faults.interrupt_on and k == faults.interrupt_at:
                        fake.interrupt()  # another client (or the web UI) presses Interrupt
                    if not fake._work_on_image():
                        # cut short during the model upscale: a plain resize, then the loop stops
                        outs.append(fake.encode_image(fake.upscale(im, {**req, "upscaler_1": "Lanczos"})))
                        break
                    outs.append(fake.encode_image(fake.upscale(im, req)))
                    with fake._state_lock:
                        fake.images_processed += 1
                    if fake._skipped.is_set() or faults.skip_index == len(outs) - 1 + skipped:
                        outs.pop()
                        skipped += 1
                        fake._skipped.clear()
                if name == "extra-single-image":
                    if not outs:  # interrupted: the real server still answers 200 with a resize
                        outs = [fake.encode_image(fake.upscale(images[0], req))]
                    result: Any = {"image": outs[0], "html_info": _infotext(req)}
                else:
                    if faults.truncate_batch:
                        outs = outs[:max(0, len(outs) - faults.truncate_batch)]
                    if faults.reverse_batch:
                        outs = outs[::-1]
                    result = {"images": outs, "html_info": _infotext(req)}
            elif name == "img2img":
                if number in faults.interrupt_on:
                    fake.interrupt()
                result = self._img2img(body, pillow95_rgb(images[0]))
            else:
                model = body.get("model", "clip")
                if model not in ("clip", "deepdanbooru"):
                    raise fake.http_exception(404, "Model not found")
                fake._work_on_image()
                with fake._state_lock:
                    fake.images_processed += 1
                caption = _caption(pillow95_rgb(images[0]), model)
                if faults.caption_error and model == "clip":
                    caption += ", <error>"
                result = {"caption": caption}
        if faults.response_delay:
            time.sleep(faults.response_delay)
        if fake.dead:
            raise _Drop()
        return 200, result

    def _img2img(self, body: dict[str, Any], im: Image.Image) -> dict[str, Any]:
        fake = self.fake
        width = int(body.get("width", 512) or 512)
        height = int(body.get("height", 512) or 512)
        steps = int(body.get("steps", 50) or 50)
        sampler = body.get("sampler_name") or body.get("sampler_index") or "Euler"
        known = [n for n, _ in SAMPLERS]
        for _, label in sorted(SCHEDULERS, key=lambda x: -len(x[1])):
            if sampler not in known and sampler.endswith(" " + label):
                sampler = sampler[: -len(label) - 1]  # a scheduler suffix is split off
        if sampler not in known:
            sampler = known[0]  # unknown names fall back to the first sampler
        fake._work_on_image()
        with fake._state_lock:
            fake.images_processed += 1
        out = _tint(im, (width, height))
        seed = int(body.get("seed", -1))
        seed = seed if seed >= 0 else 1234567
        with fake._state_lock:
            fake.img2img_seeds.append(int(body.get("seed", -1)))
            fake.img2img_samplers.append((body.get("sampler_name"), body.get("scheduler")))
        params = {k: v for k, v in body.items() if k != "init_images"}
        params["init_images"] = None
        info = {"seed": seed, "all_seeds": [seed], "width": width, "height": height,
                "sampler_name": sampler, "steps": steps, "cfg_scale": body.get("cfg_scale", 7.0),
                "denoising_strength": body.get("denoising_strength", 0.75),
                "prompt": body.get("prompt", ""), "negative_prompt": body.get("negative_prompt", ""),
                "sd_model_name": "fake-sdxl",
                "infotexts": [f"{body.get('prompt', '')}\nSteps: {steps}, Sampler: {sampler}"]}
        return {"images": [fake.encode_image(out)], "parameters": params, "info": json.dumps(info)}
