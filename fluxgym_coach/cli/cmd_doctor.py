"""``fluxgym-coach doctor``: check this machine, the Forge server and the Fluxgym folder.

Each check gives a status (``ok``, ``warn``, ``fail``, ``skip``), what was
found, and for anything but ``ok`` the fix. The exit code is 1 when a check
failed, so ``fluxgym-coach doctor --api-url URL || exit`` works in a setup
script; warnings do not fail.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..enhance.backends.base import DEFAULT_UPSCALER
from ..cache import ImageCache
from ..export.train_script import MODEL_PATHS, TRAINER
from .common import EXIT_FAILED, EXIT_OK, out, print_json
from .options import ApiAuth, ApiUrl, CacheDir, Json, ModelsDir

#: Below this much free space on the cache's disk, a warning (upscaled PNGs are large).
LOW_DISK_BYTES = 5 * 1024**3

_PACKAGES = ("textual", "textual-image", "rich", "pillow", "httpx", "numpy", "xxhash")


@dataclass(slots=True)
class Check:
    """One line of the report: ``area`` and ``name`` say what was checked,
    ``status`` is ``"ok"``, ``"warn"``, ``"fail"`` or ``"skip"``, ``detail``
    what was found and ``fix`` what to do (empty when ok)."""

    area: str
    name: str
    status: str
    detail: str
    fix: str = ""


def check_python() -> list[Check]:
    """The interpreter and the versions of the packages the tool runs on."""
    version = platform.python_version()
    checks = [Check("python", "interpreter", "ok" if sys.version_info >= (3, 11) else "fail",
                    f"Python {version} at {sys.executable}",
                    "" if sys.version_info >= (3, 11) else "use Python 3.11 or newer")]
    found = []
    for name in _PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            checks.append(Check("python", name, "fail", "not installed",
                                'reinstall: pip install -e ".[dev]" (or pip install fluxgym-coach)'))
    checks.append(Check("python", "packages", "ok", ", ".join(found)))
    return checks


def check_terminal(env: Mapping[str, str] | None = None, tty: bool | None = None) -> list[Check]:
    """What the TUI will find: a terminal, its colour depth (tmux's client asked, as
    the TUI does: :func:`fluxgym_coach.tui.terminal.detect_terminal`), tmux or SSH,
    and the preview renderer textual-image picks (``--preview`` overrides it).

    ``env``: the environment to judge (default ``os.environ``); ``tty``: whether
    stdin and stdout are a terminal (default: asked)."""
    from ..tui.terminal import TRUECOLOR, detect_terminal

    env = os.environ if env is None else env
    tty = (sys.stdin.isatty() and sys.stdout.isatty()) if tty is None else tty
    where = [w for w, on in (("tmux", "TMUX" in env), ("ssh", "SSH_CONNECTION" in env)) if on]
    detail = (f"TERM={env.get('TERM', '')!s} COLORTERM={env.get('COLORTERM', '')!s}"
              + (f", inside {' and '.join(where)}" if where else ""))
    checks = [Check("terminal", "tty", "ok" if tty else "warn", detail,
                    "" if tty else "the TUI needs a terminal: over SSH use ssh -t")]
    if not tty:
        return checks
    info = detect_terminal(env)
    checks.append(Check("terminal", "colours", "ok" if info.colour == TRUECOLOR else "warn",
                        f"{info.depth_label} ({info.colour_reason})", info.colour_fix))
    from ..tui.widgets.preview import renderer_name

    renderer = renderer_name("auto")
    fix = ""
    if "TMUX" in env and renderer in ("halfcell", "unicode"):
        fix = next((f for f in info.fixes if f != info.colour_fix),
                   "no graphics protocol got through tmux: previews use half-block cells; a kitty "
                   "or sixel terminal outside tmux shows full images")
    checks.append(Check("terminal", "preview", "ok" if not fix else "warn",
                        f"image previews drawn with {renderer}", fix))
    return checks


def check_cache(cache_dir: str | Path | None) -> list[Check]:
    """The result cache: where, how full, and the free space on its disk."""
    try:
        cache = ImageCache(cache_dir)
        s = cache.stats()
        cache.close()
    except OSError as exc:
        return [Check("cache", "folder", "fail", f"cannot use the cache: {exc}",
                      "pass --cache-dir to a writable folder (or set FLUXGYM_COACH_CACHE_DIR)")]
    checks = [Check("cache", "folder", "ok",
                    f"{s.root}: {s.entries} results, {s.bytes / 1024**2:.0f} MiB of "
                    f"{s.max_bytes / 1024**3:.0f} GiB")]
    free = shutil.disk_usage(s.root).free
    checks.append(Check("cache", "disk", "ok" if free >= LOW_DISK_BYTES else "warn",
                        f"{free / 1024**3:.1f} GiB free",
                        "" if free >= LOW_DISK_BYTES else
                        "free some space, or move the cache with --cache-dir"))
    return checks


async def check_forge(urls: list[str], api_auth: str | None) -> list[Check]:
    """Each server: reachable, credentials accepted, the default upscaler and
    the current checkpoint (colorization uses it)."""
    from ..enhance.backends.forge import ForgeClient, ForgeError, ForgeUnreachable

    checks: list[Check] = []
    for url in urls:
        async with ForgeClient(url, api_auth, retries=1, timeout=30, connect_timeout=5) as client:
            try:
                names = await client.upscaler_names()
                options = await client.options()
                samplers = await client.samplers()
            except ForgeUnreachable as exc:
                checks.append(Check("forge", client.url, "fail", exc.reason,
                                    "start Forge / A1111 with --api (and --listen for another "
                                    "machine); over SSH: ssh -L 7860:127.0.0.1:7860 HOST"))
                continue
            except ForgeError as exc:
                fix = ("pass --api-auth user:password (or set FLUXGYM_COACH_API_AUTH)"
                       if exc.status == 401 else "see the server's console for the error")
                checks.append(Check("forge", client.url, "fail", exc.reason, fix))
                continue
            models = [n for n in names if n not in ("None", "Lanczos", "Nearest")]
            checks.append(Check("forge", client.url, "ok",
                                f"{len(names)} upscalers ({len(models)} models), {len(samplers)} "
                                f"samplers, checkpoint {options.get('sd_model_checkpoint') or '?'}"))
            if DEFAULT_UPSCALER not in names:
                checks.append(Check("forge", "default upscaler", "warn",
                                    f"{DEFAULT_UPSCALER!r} is not on {client.url}",
                                    f"pass --upscaler with one of: {', '.join(models[:6]) or 'Lanczos'}"))
    return checks


def check_realesrgan() -> list[Check]:
    """The embedded Real-ESRGAN engine: whether it starts, the Vulkan devices
    ncnn sees (software ones such as llvmpipe are never used), where it runs
    and the bundled models."""
    from ..enhance.backends import realesrgan

    found = realesrgan.probe()
    if not found.ok:
        return [Check("upscale", "realesrgan", "warn", f"not usable, prepare falls back to a "
                      f"Pillow resize: {found.reason}", found.reason.split(": ", 1)[-1])]
    listed = ", ".join(f"{i}: {n}" + ("" if (i, n) in found.gpus else " (software, not used)")
                       for i, n in found.devices) or "none"
    if found.gpus:
        where, fix = f"runs on GPU {found.gpus[0][0]} ({found.gpus[0][1]})", ""
    else:
        where = "runs on the CPU (ncnn's CPU path)"
        fix = ("no Vulkan GPU: for one, install its driver's Vulkan support (NVIDIA: the driver's "
               "Vulkan ICD; AMD/Intel: mesa-vulkan-drivers); the CPU works, only slower")
    return [Check("upscale", "realesrgan", "ok", f"Vulkan devices: {listed}; {where}"),
            Check("upscale", "realesrgan models", "ok" if not fix else "warn",
                  ", ".join(realesrgan.MODELS) + (f"; on the CPU auto runs {realesrgan.CPU_AUTO_MODEL}"
                                                  if not found.gpus else ""), fix)]


def check_spandrel(models_dir: Path | None) -> list[Check]:
    """The spandrel backend: PyTorch and spandrel installed, CUDA or CPU, and
    the upscaler files found (``--models-dir`` or the Forge / ComfyUI folders)."""
    import importlib.util

    from ..enhance.backends.spandrel_backend import INSTALL_HINT, default_model_dirs, list_models

    if importlib.util.find_spec("spandrel") is None or importlib.util.find_spec("torch") is None:
        return [Check("upscale", "spandrel", "skip", "PyTorch / spandrel not installed (your own "
                      ".pth / .safetensors upscalers)", INSTALL_HINT.split(": ", 1)[-1])]
    import torch

    device = (f"CUDA ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU")
    dirs = [models_dir.expanduser()] if models_dir else default_model_dirs()
    models = list_models(dirs)
    found = (f"{len(models)} in {', '.join(str(d) for d in dirs)}" if dirs
             else "no Forge / A1111 / ComfyUI model folder found")
    return [Check("upscale", "spandrel", "ok", f"torch {torch.__version__} on {device}"),
            Check("upscale", "spandrel models", "ok" if models else "warn",
                  found + (f": {', '.join(p.name for p in models[:8])}" if models else ""),
                  "" if models else "pass --models-dir DIR (a folder of .pth / .safetensors upscalers)")]


def check_fluxgym(folder: Path) -> list[Check]:
    """A Fluxgym install: kohya's trainer, the model files train.sh names, and
    ``accelerate`` (on PATH or in Fluxgym's ``env/``)."""
    root = folder.expanduser()
    if not (root / TRAINER).is_file():
        return [Check("fluxgym", str(root), "fail", f"no {TRAINER} there",
                      "point --fluxgym at the folder where Fluxgym is installed (it holds sd-scripts/)")]
    checks = [Check("fluxgym", str(root), "ok", f"{TRAINER} found")]
    missing = [rel for rel in MODEL_PATHS.values() if not (root / rel).is_file()]
    checks.append(Check("fluxgym", "models", "ok" if not missing else "warn",
                        "all model files present" if not missing else f"missing: {', '.join(missing)}",
                        "" if not missing else
                        "start one training from Fluxgym's UI (it downloads them), or put them there"))
    in_env = root / "env" / "bin" / "accelerate"  # Fluxgym's own virtual environment
    accelerate = shutil.which("accelerate") or (str(in_env) if in_env.is_file() else None)
    checks.append(Check("fluxgym", "accelerate", "ok" if accelerate else "warn",
                        accelerate or "not found on PATH nor in env/bin",
                        "" if accelerate else "activate Fluxgym's environment (source env/bin/activate) "
                                              "before running train.sh"))
    return checks


_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


def doctor(
    api_url: ApiUrl = None,
    api_auth: ApiAuth = None,
    fluxgym: Annotated[Optional[Path], typer.Option(
        "--fluxgym", help="Your Fluxgym folder: checks sd-scripts, the model files and accelerate.",
        show_default=False)] = None,
    cache_dir: CacheDir = None,
    models_dir: ModelsDir = None,
    json_out: Json = False,
) -> None:
    """Check what fluxgym-coach talks to, and say how to fix what fails.

    Always: Python and packages, the terminal (colours, tmux/SSH, which image
    preview the TUI will use), the result cache and free disk space, the
    embedded Real-ESRGAN engine (Vulkan devices, or why none) and the
    spandrel models found (--models-dir). With
    --api-url: each Forge / A1111 server answers, accepts the credentials,
    and has the default upscaler. With --fluxgym: the folder can run the
    train.sh that export writes. Exit code 1 when a check failed.

    Example: fluxgym-coach doctor --api-url http://127.0.0.1:7860
    """
    checks = check_python() + check_terminal() + check_cache(cache_dir)
    checks += check_realesrgan() + check_spandrel(models_dir)
    if api_url:
        checks += asyncio.run(check_forge(api_url, api_auth))
    else:
        checks.append(Check("forge", "server", "skip", "no --api-url: the embedded upscalers run "
                            "(see the upscale lines)", "pass --api-url to check a Forge / A1111 server"))
    if fluxgym is not None:
        checks += check_fluxgym(fluxgym)
    failed = any(c.status == "fail" for c in checks)
    if json_out:
        print_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        table = Table(title="fluxgym-coach doctor", show_header=False, box=None, padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(overflow="fold", max_width=34)
        table.add_column(overflow="fold", ratio=1)
        for c in checks:
            text = escape(c.detail) + (f"\n[{_STYLE[c.status]}]→ {escape(c.fix)}[/]" if c.fix else "")
            table.add_row(f"[{_STYLE[c.status]}]{c.status:>4}[/]", f"{c.area}: {escape(c.name)}", text)
        out.print(table)
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def register(app: typer.Typer) -> None:
    """Add the ``doctor`` command."""
    app.command("doctor")(doctor)
