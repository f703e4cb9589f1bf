"""Typer option declarations shared by several commands (one definition each)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..enhance.enhancer import API_URL_ENV
from ..enhance.backends.base import DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT, DEFAULT_UPSCALER, EnhanceParams

API_AUTH_ENV = "FLUXGYM_COACH_API_AUTH"


def split_urls(values: list[str] | None) -> list[str] | None:
    """``--api-url`` values as one list: each value may hold several URLs separated by
    commas or spaces (as ``$FLUXGYM_COACH_API_URL`` does); None when there is none."""
    urls = [u for value in values or [] for u in value.replace(",", " ").split()]
    return urls or None


ApiUrl = Annotated[Optional[list[str]], typer.Option(
    "--api-url", envvar=API_URL_ENV, callback=split_urls, show_default=False,
    help=f"Forge / A1111 server started with --api; repeat (or separate with commas) for a pool "
         f"of servers. Default: ${API_URL_ENV}, else none (--backend forge alone asks "
         f"http://127.0.0.1:7860).")]
ApiAuth = Annotated[Optional[str], typer.Option(
    "--api-auth", envvar=API_AUTH_ENV, help=f"user:password for a server started with --api-auth "
                                            f"(or set {API_AUTH_ENV}). Never printed.",
    show_default=False)]
BACKEND_ENV = "FLUXGYM_COACH_BACKEND"
Backend = Annotated[str, typer.Option(
    "--backend", envvar=BACKEND_ENV,
    help="auto (forge with --api-url; else your model file with --upscaler PATH; else Real-ESRGAN, "
         "on the GPU or the CPU; else Pillow), realesrgan, spandrel, local (Pillow resize) or "
         "forge. Default: $FLUXGYM_COACH_BACKEND, else auto. See docs/enhance.md.")]
Upscaler = Annotated[str, typer.Option(
    "--upscaler", help="Upscaler: the name the Forge server lists; a bundled Real-ESRGAN model "
                       "(realesrgan-x4plus, realesrgan-x4plus-anime, realesr-animevideov3); or a "
                       ".pth/.safetensors file (path, or name in --models-dir).")]
def _check_gpu(value: str | None) -> str | None:
    """``--gpu``: a device number, ``cpu`` or ``auto`` (typer.BadParameter otherwise)."""
    if value is None or value.strip().lower() in ("cpu", "auto"):
        return value
    try:
        int(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a device: give a GPU number (0, 1...), cpu or auto") from None
    return value


Gpu = Annotated[Optional[str], typer.Option(
    "--gpu", callback=_check_gpu,
    help="GPU for the embedded models: a device number, or cpu. Default: the first GPU, "
         "else the CPU.", show_default=False)]
ModelsDir = Annotated[Optional[Path], typer.Option(
    "--models-dir", exists=True, file_okay=False, dir_okay=True, help="Folder of .pth/.safetensors upscalers (default: Forge/A1111 models/ESRGAN, "
                         "ComfyUI models/upscale_models when found).", show_default=False)]
Denoise = Annotated[float, typer.Option("--denoising-strength", min=0.0, max=1.0,
                                        help="Denoising strength, 0..1.")]
Prompt = Annotated[str, typer.Option("--prompt", help="Prompt guiding the enhancement.")]
NegPrompt = Annotated[str, typer.Option("--negative-prompt", help="What to avoid.")]
Steps = Annotated[int, typer.Option("--steps", min=1, max=150, help="Sampling steps.")]
Cfg = Annotated[float, typer.Option("--cfg-scale", min=1.0, max=30.0, help="CFG scale.")]
Sampler = Annotated[str, typer.Option("--sampler", help="Sampler name as the server lists it "
                                                        "(a scheduler suffix such as 'Karras' is kept).")]
Scheduler = Annotated[Optional[str], typer.Option(
    "--scheduler", help="Scheduler for colorization (img2img), e.g. Karras or 'Align Your Steps'. "
                        "Default: the sampler's own.", show_default=False)]
Timeout = Annotated[float, typer.Option(
    "--timeout", min=1.0, help="Seconds to wait for the server to answer one request (a batch).")]
DEFAULT_TIMEOUT = 600.0
NoColorize = Annotated[bool, typer.Option("--no-colorize",
                                          help="Do not colorize black-and-white images.")]
Sharpen = Annotated[float, typer.Option("--sharpen", min=0.0, max=1.0,
                                        help="Light unsharp mask after upscaling (local backend), 0..1.")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Neither read nor reuse cached results.")]
ForceReprocess = Annotated[bool, typer.Option("--force-reprocess",
                                              help="Recompute results even when cached.")]
CacheDir = Annotated[Optional[Path], typer.Option(
    "--cache-dir", help="Result cache folder (default: the user cache dir, or "
                        "$FLUXGYM_COACH_CACHE_DIR).", show_default=False)]
Strict = Annotated[bool, typer.Option("--strict", help="Exit with 1 on warnings too.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
TriggerCheck = Annotated[Optional[str], typer.Option(
    "--trigger", "-t", help="Trigger word the captions must start with (default: the dataset's "
                            "saved one, from `caption`, `export` or `prepare`).", show_default=False)]
TrainResolution = Annotated[int, typer.Option("--resolution", "-r", min=256, max=4096,
                                              help="Training resolution (kohya's side length, px).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]

DEFAULTS = EnhanceParams()
assert DEFAULTS.upscaler == DEFAULT_UPSCALER and DEFAULTS.prompt == DEFAULT_PROMPT
assert DEFAULTS.negative_prompt == DEFAULT_NEGATIVE_PROMPT


def make_backend(backend: str, api_url: list[str] | None, api_auth: str | None,
                 timeout: float = DEFAULT_TIMEOUT, gpu: str | None = None, upscaler: str | None = None,
                 models_dir: Path | None = None):
    """The enhancement backend for these CLI options (:func:`fluxgym_coach.core.backend_from_settings`;
    ``timeout``: seconds per Forge request; ``gpu``, ``upscaler``, ``models_dir``: for the
    embedded super-resolution backends and ``auto``'s choice, see docs/enhance.md).

    Raises typer.BadParameter for an unknown backend name, BackendError when an
    embedded engine cannot start (its reason names the fix).
    """
    from ..core import backend_from_settings, resolve_backend_name

    name = resolve_backend_name(backend, api_url)
    options: dict = {"forge": {"timeout": timeout}, "realesrgan": {"gpu": gpu},
                     "spandrel": {"gpu": gpu, "models_dir": models_dir},
                     "auto": {"gpu": gpu, "upscaler": upscaler, "models_dir": models_dir}}.get(name, {})
    try:
        return backend_from_settings(None, backend=backend, api_urls=api_url, api_auth=api_auth, **options)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--backend") from None
