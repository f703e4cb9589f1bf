"""Real terminal emulators under Xvfb: start them, photograph the screen, judge the preview.

Used by ``tests/test_terminal_real.py``; can also be run by hand::

    python -m tests.real_terminals.screens xterm|kitty [--tmux] [--preview MODE]

which prints the verdict and leaves the screenshot in ``build/test-artifacts``.

The judgement (:func:`judge`) compares the screenshot's preview region with the
thumbnail the app drew, scaled to the same pixels:

- ``corr``: Pearson correlation of the grey levels (at half resolution, so a
  pixel of misregistration does not count): the region shows *this* image.
- ``detail``: the mean standard deviation of grey inside each half of each
  cell, over the same measure on the thumbnail. Half-block cells are flat in
  each half (``detail`` near 0); a real image (Sixel, kitty) keeps the detail
  (near 1). Garbage or a misplaced image has a low ``corr``.
- ``half_cell_error``: for half-blocks, how far each half cell's colour is from
  the thumbnail's (0 in 24-bit colour; 256 colours are ~10 off).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .artifacts import artifacts_dir
from .child import wait_for

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"Xvfb": "xvfb", "xterm": "xterm", "kitty": "kitty", "tmux": "tmux", "import": "imagemagick"}
COLS, ROWS = 110, 34
#: Handed to every terminal: wrong on purpose (see :func:`photograph`).
STALE_SIZE = {"COLUMNS": "200", "LINES": "60"}
TMUX_CONF = """set -g status off
set -g allow-passthrough on
set -g default-terminal tmux-256color
set -sg escape-time 10
set -as terminal-features ',xterm-256color:RGB'
set -as terminal-features ',xterm-kitty:RGB'
"""


def missing(*programs: str) -> list[str]:
    """The Debian packages of ``programs`` that are not installed."""
    return [PACKAGES.get(p, p) for p in programs if shutil.which(p) is None]


@contextmanager
def xvfb(width: int = 1280, height: int = 900):
    """An X server of its own; yields its DISPLAY string.

    The server picks a free display number itself (``-displayfd``) and writes it
    once it accepts connections, so parallel test workers never share a screen."""
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                             f"{width}x{height}x24", "-nolisten", "tcp"], pass_fds=(write_fd,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            out = b""
            while not out.endswith(b"\n"):  # blocks until ready; EOF if Xvfb exits
                chunk = pipe.read(1)
                if not chunk:
                    raise RuntimeError(f"Xvfb exited ({proc.wait(timeout=10)}) before it was ready")
                out += chunk
        yield f":{int(out)}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def terminal_command(kind: str, inner: list[str]) -> tuple[list[str], dict[str, str]]:
    """Command line and extra environment starting terminal ``kind`` running ``inner``."""
    if kind == "xterm":  # Sixel: a VT340 identity, enough colour registers
        return (["xterm", "-ti", "vt340", "-tn", "xterm-256color", "-geometry",
                 f"{COLS}x{ROWS}+0+0", "-fa", "DejaVu Sans Mono", "-fs", "11",
                 "-xrm", "XTerm*numColorRegisters: 1024", "-e", *inner], {})
    if kind == "kitty":  # software OpenGL under Xvfb
        return (["kitty", "--config", "NONE", "-o", f"initial_window_width={COLS}c",
                 "-o", f"initial_window_height={ROWS}c", "-o", "font_size=11",
                 "-o", "window_padding_width=0", "-o", "remember_window_size=no",
                 "-o", "cursor_blink_interval=0", *inner],  # a still screen: see _steady_screenshot
                {"LIBGL_ALWAYS_SOFTWARE": "1"})
    raise ValueError(kind)


@dataclass
class Shot:
    """One run: the screenshot, the app's report, the thumbnail, and where they are."""

    screenshot: Path
    report: dict
    thumbnail: Path


def photograph(kind: str, dataset: Path, work: Path, *, tmux: bool = False,
               preview: str = "auto", display: str, deadline: float = 180.0,
               tmux_conf: str = TMUX_CONF, name: str | None = None,
               tmux_program: str = "tmux") -> Shot:
    """Start terminal ``kind`` (inside tmux when ``tmux``) with the harness on
    ``dataset``, wait for its report, take screenshots of the whole display until three in a
    row are the same (the terminal has painted). Deadlines are generous: the test machines
    are shared and slow. ``tmux_conf``: tmux's configuration; ``name``: of the run's files
    (default ``KIND[-tmux]-PREVIEW``); ``tmux_program``: the tmux binary to run, whose folder
    goes first on the terminal's ``PATH`` (the app asks ``tmux`` about its client, and a
    client of another version cannot talk to that server)."""
    name = name or f"{kind}{'-tmux' if tmux else ''}-{preview}"
    report = work / f"{name}.json"
    harness = [sys.executable, "-m", "tests.real_terminals.harness", str(dataset), str(report),
               "--preview", preview]
    inner = harness
    sock = f"fgc-real-{os.getpid()}-{kind}"
    if tmux:
        conf = work / "tmux.conf"
        conf.write_text(tmux_conf)
        inner = [tmux_program, "-L", sock, "-f", str(conf), "new-session", "-x", str(COLS), "-y",
                 str(ROWS), " ".join(harness)]
    cmd, extra = terminal_command(kind, inner)
    env = dict(os.environ, DISPLAY=display, PYTHONPATH=str(ROOT), **extra)
    for var in ("TMUX", "TMUX_PANE", "COLORTERM", "TEXTUAL_COLOR_SYSTEM", "KITTY_WINDOW_ID",
                "NO_COLOR"):  # tests/conftest.py sets NO_COLOR for Rich output
        env.pop(var, None)
    # A stale exported size, as tests/conftest.py (COLUMNS=200), a shell's `export COLUMNS`
    # or tmux's global environment leave it: the app must lay itself out for the terminal's
    # real size all the same (xterm drops both variables for its child; kitty and tmux pass
    # them on).
    env.update(STALE_SIZE)
    if tmux_program != "tmux":
        env["PATH"] = f"{Path(tmux_program).parent}{os.pathsep}{env.get('PATH', '')}"
    env["FLUXGYM_COACH_CACHE_DIR"] = str(work / "cache")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: report.exists() or proc.poll() is not None, "the app's report", deadline)
        if not report.exists():
            raise RuntimeError(f"{kind} exited ({proc.returncode}) before the app drew a preview")
        shot = report.with_suffix(".screen.png")
        seen: list = []
        wait_for(lambda: _steady_screenshot(display, shot, seen), "a still screen", deadline,
                 step=0.1)
        return Shot(shot, json.loads(report.read_text()), report.with_suffix(".png"))
    finally:
        if tmux:
            subprocess.run([tmux_program, "-L", sock, "kill-server"], capture_output=True, timeout=10,
                           check=False)
        _end(proc)


def _end(proc: subprocess.Popen) -> None:
    """Stop the terminal and what runs in it (its own process group)."""
    try:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=10)
    except ProcessLookupError:  # already gone (tmux's server killed, the terminal exited)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)


def _steady_screenshot(display: str, shot: Path, seen: list, still: int = 3) -> bool:
    """Photograph the root window into ``shot``; true once the last ``still`` photographs
    are the same (the terminal has finished painting), so :func:`wait_for` retakes it
    until then. ``seen``: the earlier photographs' pixels (the caller's, appended to)."""
    subprocess.run(["import", "-display", display, "-window", "root", str(shot)],
                   check=True, timeout=60)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    if not pixels.any():  # the terminal has not drawn its first frame yet (kitty, software GL)
        seen.clear()
        return False
    seen.append(pixels)
    del seen[:-still]
    return len(seen) == still and all(np.array_equal(seen[0], a) for a in seen[1:])


def _grey(a: np.ndarray) -> np.ndarray:
    return a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den else 0.0


def _half(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    return a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def _detail(g: np.ndarray, cw: int, ch: int) -> float:
    """Mean grey std inside each half of each cell (1 px margins left out)."""
    rows, cols = g.shape[0] // ch, g.shape[1] // cw
    hh = ch // 2
    stds = []
    for top in (0, hh):
        part = g[:rows * ch, :cols * cw].reshape(rows, ch, cols, cw)[:, top + 1:top + hh - 1, :, 1:cw - 1]
        stds.append(part.std(axis=(1, 3)).mean())
    return float(np.mean(stds))


def judge(shot: Shot, cell: tuple[int, int] | None = None) -> dict:
    """``corr``, ``detail`` and the pixel box of the preview in ``shot`` (see the module doc).

    ``cell``: the cell size in pixels (default: the report's pixels over cells).
    The terminal's origin on the screen (border, padding) is searched for."""
    rep = shot.report
    cw, ch = cell or (rep["pixels"][0] // rep["cells"][0], rep["pixels"][1] // rep["cells"][1])
    x, y, w, h = rep["region"]
    screen = _grey(np.asarray(Image.open(shot.screenshot).convert("RGB")))
    ref = _grey(np.asarray(Image.open(shot.thumbnail).convert("RGB").resize(
        (w * cw, h * ch), Image.Resampling.LANCZOS)))
    small_ref = _half(_half(ref))
    best = (-2.0, 0, 0)
    for oy in range(0, 16, 2):  # coarse search of the origin, at quarter resolution
        for ox in range(0, 16, 2):
            crop = screen[y * ch + oy:y * ch + oy + h * ch, x * cw + ox:x * cw + ox + w * cw]
            if crop.shape != ref.shape:
                continue
            best = max(best, (_corr(_half(_half(crop)), small_ref), ox, oy))
    _, bx, by = best
    scored = []
    for oy in range(max(0, by - 2), by + 3):  # then to the pixel
        for ox in range(max(0, bx - 2), bx + 3):
            crop = screen[y * ch + oy:y * ch + oy + h * ch, x * cw + ox:x * cw + ox + w * cw]
            if crop.shape == ref.shape:
                scored.append((_corr(_half(crop), _half(ref)), ox, oy, crop))
    corr, ox, oy, crop = max(scored, key=lambda t: t[0])
    ref_detail = _detail(ref, cw, ch)
    box = [x * cw + ox, y * ch + oy, w * cw, h * ch]
    return {"corr": round(corr, 3),
            "detail": round(_detail(crop, cw, ch) / ref_detail, 3) if ref_detail else 0.0,
            "half_cell_error": _half_cell_error(shot, box, cw, ch), "box": box, "cell": [cw, ch]}


def _half_cell_error(shot: Shot, box: list[int], cw: int, ch: int) -> float:
    """Mean absolute RGB difference (0-255) between the centre pixel of each half cell in
    the screenshot and the thumbnail averaged over that half cell: near 0 for half-blocks
    in 24-bit colour, ~10 for the same in 256 colours (measured in xterm)."""
    x, y, w, h = box
    rows, cols = h // ch, w // cw
    rgb = np.asarray(Image.open(shot.screenshot).convert("RGB"), np.float32)
    ys = (y + np.arange(rows * 2) // 2 * ch + np.where(np.arange(rows * 2) % 2, 3 * ch // 4, ch // 4))
    xs = x + np.arange(cols) * cw + cw // 2
    seen = rgb[ys][:, xs]
    ref = np.asarray(Image.open(shot.thumbnail).convert("RGB").resize(
        (cols, rows * 2), Image.Resampling.BOX), np.float32)
    return round(float(np.abs(seen - ref).mean()), 2)


def keep(shot: Shot, verdict: dict, name: str) -> Path:
    """Copy the screenshot (preview box outlined) and the verdict to the artefacts folder."""
    from PIL import ImageDraw

    im = Image.open(shot.screenshot).convert("RGB")
    x, y, w, h = verdict["box"]
    ImageDraw.Draw(im).rectangle([x - 2, y - 2, x + w + 1, y + h + 1], outline=(255, 0, 255))
    out = artifacts_dir() / f"terminal-{name}.png"
    im.save(out)
    out.with_suffix(".json").write_text(json.dumps({**verdict, **shot.report}, indent=1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="Photograph the TUI in a real terminal.")
    ap.add_argument("kind", choices=("xterm", "kitty"))
    ap.add_argument("--tmux", action="store_true")
    ap.add_argument("--preview", default="auto")
    ap.add_argument("--image", default=str(ROOT / "examples" / "dataset" / "astronaut.png"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, xvfb() as display:
        work = Path(tmp)
        (work / "dataset").mkdir()
        shutil.copy(args.image, work / "dataset")
        from fluxgym_coach.dataset import Dataset

        with Dataset(work / "dataset") as ds:
            ds.scan()
        shot = photograph(args.kind, work / "dataset", work, tmux=args.tmux,
                          preview=args.preview, display=display)
        verdict = judge(shot)
        name = f"{args.kind}{'-tmux' if args.tmux else ''}-{args.preview}"
        print(json.dumps({**verdict, "renderer": shot.report["renderer"],
                          "status": shot.report["status"], "saved": str(keep(shot, verdict, name))}))


if __name__ == "__main__":
    main()
