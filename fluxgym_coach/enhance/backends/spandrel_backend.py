"""The user's own upscaler models (``.pth`` / ``.safetensors``) through spandrel on PyTorch.

`spandrel <https://github.com/chaiNNer-org/spandrel>`_ (the loader ComfyUI
and chaiNNer use) recognises a model's architecture from its state dict
(ESRGAN/RRDBNet, Real-ESRGAN Compact, SPAN, SwinIR, HAT, DAT, ...), so the
files users already have work as they are: Forge / A1111 ``models/ESRGAN/``,
ComfyUI ``models/upscale_models/``, 4x-UltraSharp and the like. Nothing is
downloaded.

``--upscaler`` is a path to a model file, or a name (file name, with or
without extension, any letter case) looked up in ``--models-dir`` or, without
it, in :func:`default_model_dirs`. Runs on CUDA when PyTorch sees a GPU, else
on the CPU; in half precision (fp16) on CUDA when the architecture supports
it. Tiling, progress and cancel as in :mod:`fluxgym_coach.enhance.backends.superres`.

Needs the optional extra: ``pip install "fluxgym-coach[spandrel]"`` (PyTorch
and spandrel). Importing this module does not import PyTorch.
"""

from __future__ import annotations

import asyncio
import os
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from .base import BackendError, EnhanceItem, EnhanceParams
from .superres import ModelInfo, SuperResBackend

MODEL_SUFFIXES = (".pth", ".safetensors", ".pt", ".ckpt")
MODELS_DIR_ENV = "FLUXGYM_COACH_MODELS_DIR"
#: Folders, relative to a Forge / A1111 / ComfyUI install, that hold upscalers.
_APP_MODEL_DIRS = ("models/ESRGAN", "models/RealESRGAN", "models/upscale_models")
_APPS = ("stable-diffusion-webui-forge", "stable-diffusion-webui", "sd-webui-forge", "webui", "ComfyUI",
         "comfyui", "fluxgym")
CPU_TILE, GPU_TILE = 192, 512
INSTALL_HINT = 'the spandrel backend needs PyTorch and spandrel: pip install "fluxgym-coach[spandrel]"'


def default_model_dirs(fluxgym: str | Path | None = None) -> list[Path]:
    """Existing upscaler folders: ``$FLUXGYM_COACH_MODELS_DIR``, then Forge / A1111 /
    ComfyUI ``models/ESRGAN``, ``models/RealESRGAN`` and ``models/upscale_models``
    inside and beside a Fluxgym install (``fluxgym``, the working folder) and in
    the usual places (home, ``~/pinokio/api``, ``/workspace``)."""
    roots: list[Path] = []
    if os.environ.get(MODELS_DIR_ENV):
        roots.append(Path(os.environ[MODELS_DIR_ENV]).expanduser())
    bases = [Path(fluxgym).expanduser() if fluxgym else None, Path.cwd(), Path.home(),
             Path.home() / "pinokio" / "api", Path("/workspace")]
    found: list[Path] = [r for r in roots if r.is_dir()]
    for base in filter(None, bases):
        for root in (base, base.parent, *(base / app for app in _APPS), *(base.parent / app for app in _APPS)):
            for sub in _APP_MODEL_DIRS:
                d = root / sub
                if d.is_dir() and d.resolve() not in {f.resolve() for f in found}:
                    found.append(d)
    return found


def list_models(dirs: list[Path]) -> list[Path]:
    """Model files (:data:`MODEL_SUFFIXES`) directly inside ``dirs``, sorted by name."""
    out = []
    for d in dirs:
        try:
            out.extend(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES)
        except OSError:
            continue
    return sorted(out, key=lambda p: p.name.lower())


def find_model(upscaler: str, models_dir: str | Path | None = None) -> Path | None:
    """The model file ``upscaler`` names: a path to an existing file, or a name found
    in ``models_dir`` (default :func:`default_model_dirs`). None when it names no
    file (e.g. a bundled Real-ESRGAN name). Raises BackendError for a model path
    (known suffix or a folder in it) that does not exist."""
    text = upscaler.strip()
    path = Path(text).expanduser()
    looks_like_path = path.suffix.lower() in MODEL_SUFFIXES or os.sep in text or "/" in text
    if path.is_file():
        return path
    dirs = [Path(models_dir).expanduser()] if models_dir else default_model_dirs()
    want = text.lower()
    for p in list_models(dirs):
        if want in (p.name.lower(), p.stem.lower()):
            return p
    if looks_like_path:
        where = ", ".join(str(d) for d in dirs) or "no upscaler folder found"
        raise BackendError(f"upscaler model {text}: no such file (looked in {where}; "
                           f"pass a path or --models-dir DIR)")
    return None


def _digest(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return h.hexdigest()


class SpandrelBackend(SuperResBackend):
    """Any spandrel-supported upscaler file on PyTorch (see the module docstring); an
    :class:`~fluxgym_coach.enhance.backends.base.EnhanceBackend`.

    ``models_dir``: where names are looked up. ``device``: ``"cuda"``,
    ``"cuda:N"`` or ``"cpu"`` (default: CUDA when available). ``half``: fp16
    (default: on CUDA when the architecture supports it). ``tile``: tile side in
    input px (default 192 on the CPU, 512 on CUDA). Raises BackendError when
    PyTorch or spandrel is not installed.
    """

    name = "spandrel"

    def __init__(self, models_dir: str | Path | None = None, device: str | None = None,
                 tile: int | None = None, half: bool | None = None, gpu: int | str | None = None):
        try:
            import spandrel
            import torch
        except ImportError as exc:
            raise BackendError(f"{INSTALL_HINT} ({exc})") from None
        self._torch, self._spandrel = torch, spandrel
        if device is None and gpu is not None and str(gpu).lower() not in ("auto", "cpu", "-1"):
            device = f"cuda:{int(gpu)}"
        elif device is None and str(gpu).lower() in ("cpu", "-1"):
            device = "cpu"
        self.torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.device = self.torch_device.type
        super().__init__(tile or (GPU_TILE if self.device == "cuda" else CPU_TILE))
        self.models_dir = models_dir
        self.half_wanted = half
        self.identity = (f"spandrel/{metadata.version('spandrel')}-torch-"
                         f"{torch.__version__.split('+')[0]}@1")
        self._models: dict[tuple[str, int, int], tuple[ModelInfo, Any]] = {}
        self._loaded: Any = None
        self._half = False
        self._lock = threading.Lock()

    @property
    def label(self) -> str:  # type: ignore[override]
        """The model files that ran and the device."""
        models = ", ".join(sorted(self.models_used)) or "model"
        return f"{models} (spandrel on {self.device}{', fp16' if self._half else ''})"

    def _load(self, path: Path) -> tuple[ModelInfo, Any]:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        with self._lock:
            if key not in self._models:
                try:
                    desc = self._spandrel.ModelLoader().load_from_file(str(path))
                except Exception as exc:  # noqa: BLE001 - spandrel raises many types for a bad file
                    raise BackendError(f"{path.name}: not a model spandrel can load ({exc})") from None
                if not isinstance(desc, self._spandrel.ImageModelDescriptor):
                    raise BackendError(f"{path.name}: not an image-to-image model")
                if desc.input_channels != 3 or desc.output_channels != 3:
                    raise BackendError(f"{path.name}: takes {desc.input_channels} and gives "
                                       f"{desc.output_channels} channels; only RGB models are supported")
                self._models[key] = (ModelInfo(path.name, int(desc.scale), _digest(path), (str(path),)), desc)
            return self._models[key]

    def _path_for(self, params: EnhanceParams) -> Path:
        path = find_model(params.upscaler, self.models_dir)
        if path is None:
            dirs = [Path(self.models_dir)] if self.models_dir else default_model_dirs()
            where = ", ".join(str(d) for d in dirs) or "no upscaler folder found"
            raise BackendError(f"upscaler {params.upscaler!r}: no model file of that name "
                               f"(looked in {where}; pass a path or --models-dir DIR)")
        return path

    def model_for(self, params: EnhanceParams, scale: float) -> ModelInfo:
        """Load (once per file version) and describe the model ``params.upscaler`` names."""
        return self._load(self._path_for(params))[0]

    async def check(self, params: EnhanceParams) -> None:
        """Find and load the model in a thread (it may be large); raises BackendError."""
        self._stop.clear()
        await asyncio.to_thread(self.model_for, params, params.scale_factor or 2.0)

    def cache_params(self, op: str, params: EnhanceParams, item: EnhanceItem) -> dict[str, Any]:
        """The base parameters plus the precision."""
        cp = super().cache_params(op, params, item)
        info, desc = self._load(self._path_for(params))
        cp["half"] = self._wants_half(desc)
        return cp

    def _wants_half(self, desc: Any) -> bool:
        if self.half_wanted is not None:
            return bool(self.half_wanted) and desc.supports_half
        return self.device == "cuda" and desc.supports_half

    def prepare_model(self, model: ModelInfo) -> None:
        """Move the model to the device (fp16 where chosen) unless it is there already."""
        info, desc = self._load(Path(model.files[0]))
        if self._loaded is desc:
            return
        self._half = self._wants_half(desc)
        desc.to(self.torch_device)
        if self._half:
            desc.half()
        desc.eval()
        self._loaded = desc

    def run_tile(self, tile: np.ndarray) -> np.ndarray:
        """One ``(h, w, 3)`` uint8 tile through the loaded model."""
        torch = self._torch
        with torch.inference_mode():
            t = torch.from_numpy(np.array(tile)).permute(2, 0, 1).unsqueeze(0).to(self.torch_device)
            out = self._loaded(t.to(torch.float16 if self._half else torch.float32) / 255.0)
            out = (out.float().clamp_(0, 1) * 255.0).round_().to(torch.uint8)
            return out.squeeze(0).permute(1, 2, 0).cpu().numpy()

    def close_engine(self) -> None:
        """Drop the models (frees GPU memory)."""
        self._models.clear()
        self._loaded = None
        if self.device == "cuda":
            self._torch.cuda.empty_cache()
