"""The HTTP side of :class:`~fluxgym_coach.testing.fake_forge.FakeForge`: routes, request
validation, the job bodies (extras, img2img, interrogate) and Forge's upload conversion.

See :mod:`fluxgym_coach.testing.fake_forge` for the behaviour it reproduces.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image, ImageOps, ImageStat

if TYPE_CHECKING:
    from .fake_forge import FakeForge

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


class _HTTPError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class _Drop(Exception):
    """Close the connection without answering."""



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

    def _decode(self, name: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[Image.Image]]:
        """Validate and decode a job request (before the lock, as in the real code)."""
        fake = self.fake
        if name == "extra-single-image":
            return _extras_request(fake, body), [fake.decode_image(body.get("image", ""))]
        if name == "extra-batch-images":
            req = _extras_request(fake, body)
            lst = body.get("imageList")
            if not isinstance(lst, list):
                raise fake.validation_error("imageList", lst, "missing")
            for i, entry in enumerate(lst):
                for key in ("data", "name"):
                    if not isinstance(entry, dict) or key not in entry:
                        raise fake.validation_error(f"imageList.{i}.{key}", entry, "missing")
            return req, [fake.decode_image(e["data"]) for e in lst]
        if name == "img2img":
            init = body.get("init_images")
            if not init:
                raise fake.http_exception(404, "Init image not found")
            if len(init) > int(body.get("batch_size", 1) or 1):
                raise fake.server_error("Exception", "bad number of images passed")
            return {}, [fake.decode_image(init[0])]
        return {}, [fake.decode_image(body.get("image", ""))]

    def _job_body(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        fake = self.fake
        number = fake._take_job_number(path)
        faults = fake.faults
        name = path.rsplit("/", 1)[1]
        req, images = self._decode(name, body)
        with fake.job(number, name, len(images)):
            if number in faults.hang_on:
                fake._stopping.wait(60)
                raise _Drop()
            if number in faults.drop_on:
                raise _Drop()
            if number in faults.fail_on:
                raise fake.server_error("RuntimeError", f"simulated failure of job {number}")
            if name in ("extra-single-image", "extra-batch-images"):
                result = self._extras(number, name, req, images)
            elif name == "img2img":
                if number in faults.interrupt_on:
                    fake.interrupt()
                result = self._img2img(body, pillow95_rgb(images[0]))
            else:
                result = self._interrogate(body, images[0])
        if faults.response_delay:
            time.sleep(faults.response_delay)
        if fake.dead:
            raise _Drop()
        return 200, result

    def _extras(self, number: int, name: str, req: dict[str, Any], images: list[Image.Image]) -> Any:
        """The extras loop of ``run_postprocessing``: faults, interrupt, skip, fallback."""
        fake, faults = self.fake, self.fake.faults
        _check_upscalers(fake, req)
        outs: list[str] = []
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
            return {"image": outs[0], "html_info": _infotext(req)}
        if faults.truncate_batch:
            outs = outs[:max(0, len(outs) - faults.truncate_batch)]
        if faults.reverse_batch:
            outs = outs[::-1]
        return {"images": outs, "html_info": _infotext(req)}

    def _interrogate(self, body: dict[str, Any], im: Image.Image) -> dict[str, Any]:
        fake = self.fake
        model = body.get("model", "clip")
        if model not in ("clip", "deepdanbooru"):
            raise fake.http_exception(404, "Model not found")
        fake._work_on_image()
        with fake._state_lock:
            fake.images_processed += 1
        caption = _caption(pillow95_rgb(im), model)
        if fake.faults.caption_error and model == "clip":
            caption += ", <error>"
        return {"caption": caption}

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
