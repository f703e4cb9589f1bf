"""The TUI's preview in real terminal emulators under Xvfb, judged from screenshots.

xterm with Sixel (``-ti vt340``) and kitty with its graphics protocol, each
directly and inside tmux (passthrough on, RGB declared). Each run photographs
the whole X screen and compares the preview region with the thumbnail the app
drew (:func:`tests.real_terminals.screens.judge`); the half-block renderer in
xterm is the control that must *not* pass as a real image. The screenshots
(preview box outlined) and verdicts are kept in ``build/test-artifacts``
(``$FLUXGYM_COACH_ARTIFACTS``). Skipped, naming the Debian packages, where the
programs are missing (``apt-get install xvfb xterm kitty tmux imagemagick``).
Every terminal is handed a wrong ``COLUMNS``/``LINES`` (as a shell's export or
tmux's global environment can leave them): each run also checks that the app
laid itself out for the terminal's real size.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from fluxgym_coach.tui.terminal import KITTY_PLACEHOLDERS_SINCE
from tests.real_terminals import screens

# Each test has an X server of its own (the ``display`` fixture), so xdist spreads them
# over its workers like any other test.
pytestmark = [pytest.mark.slow]
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dataset" / "astronaut.png"


def _need(*programs: str) -> None:
    absent = screens.missing(*programs)
    if absent:
        pytest.skip(f"needs the Debian packages {' '.join(sorted(set(absent)))} "
                    f"(apt-get install xvfb xterm kitty tmux imagemagick)")


def _kitty_version() -> tuple[int, ...]:
    out = subprocess.run(["kitty", "--version"], capture_output=True, text=True, timeout=30,
                         check=False).stdout
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


@pytest.fixture
def display():
    _need("Xvfb", "import")
    with screens.xvfb() as name:
        yield name


def _run(kind, display, dataset, tmp_path, *, tmux=False, preview="auto", tmux_conf=None,
         name=None, tmux_program="tmux"):
    name = name or f"{kind}{'-tmux' if tmux else ''}-{preview}"
    shot = screens.photograph(kind, dataset, tmp_path, tmux=tmux, preview=preview, display=display,
                              tmux_conf=tmux_conf or screens.TMUX_CONF, name=name,
                              tmux_program=tmux_program)
    verdict = screens.judge(shot)
    saved = screens.keep(shot, verdict, name)
    # Every terminal is started with COLUMNS=200 LINES=60 (screens.STALE_SIZE): the app
    # lays itself out for the terminal's real size all the same.
    assert shot.report["app_size"] == shot.report["cells"] == [screens.COLS, screens.ROWS], (
        shot.report, saved)
    return shot.report, verdict, saved


def _is_image(verdict) -> bool:
    return verdict["corr"] >= 0.9 and verdict["detail"] >= 0.6


def test_xterm_sixel_shows_the_image(display, one_image, tmp_path):
    _need("xterm")
    report, verdict, saved = _run("xterm", display, one_image, tmp_path)
    assert report["renderer"] == "sixel", report
    assert _is_image(verdict), (verdict, saved)


def test_half_blocks_are_told_apart_from_an_image(display, one_image, tmp_path):
    _need("xterm")
    report, verdict, saved = _run("xterm", display, one_image, tmp_path, preview="halfcell")
    assert report["renderer"] == "halfcell"
    assert verdict["corr"] >= 0.8, (verdict, saved)  # the right place and picture...
    assert verdict["detail"] < 0.3, (verdict, saved)  # ...but flat half cells
    # xterm (XTERM_VERSION) is detected as 24-bit: each half cell has the thumbnail's colour
    assert report["color_system"] == "truecolor", report
    assert report["fix_shown"] == "", report  # nothing better to suggest
    assert verdict["half_cell_error"] < 3, (verdict, saved)


def test_kitty_graphics_shows_the_image(display, one_image, tmp_path):
    _need("kitty")
    report, verdict, saved = _run("kitty", display, one_image, tmp_path)
    assert report["renderer"] in ("kitty", "kitty-placed"), report
    assert _is_image(verdict), (verdict, saved)


def test_kitty_inside_tmux(display, one_image, tmp_path):
    _need("kitty", "tmux")
    report, verdict, saved = _run("kitty", display, one_image, tmp_path, tmux=True)
    # kitty 0.28+: Unicode placeholders through passthrough; older (Debian 12's 0.26.5):
    # the image placed at the pane's cell through passthrough.
    expected = "kitty-tmux" if _kitty_version() >= KITTY_PLACEHOLDERS_SINCE else "kitty-placed-tmux"
    assert report["renderer"] == expected, report
    assert _is_image(verdict), (verdict, saved)


def test_kitty_inside_tmux_without_passthrough_names_the_fix(display, one_image, tmp_path):
    _need("kitty", "tmux")
    conf = "".join(line + "\n" for line in screens.TMUX_CONF.splitlines()
                   if "allow-passthrough" not in line and "xterm-kitty:RGB" not in line)
    report, verdict, saved = _run("kitty", display, one_image, tmp_path, tmux=True, tmux_conf=conf,
                                  name="kitty-tmux-nopassthrough-auto")
    # No passthrough: half-blocks, and the status line says how to get kitty graphics. No
    # RGB declared either: tmux still sends 24-bit colour with xterm-kitty's setrgbf/setrgbb.
    assert report["renderer"] == "halfcell", report
    assert "set -g allow-passthrough on" in report["status"], report
    assert report["fix_shown"].startswith("tmux set -g allow-passthrough on"), report  # in the pane
    assert "24-bit" in report["status"] and verdict["half_cell_error"] < 3, (verdict, saved)
    assert verdict["corr"] >= 0.8, (verdict, saved)


def test_xterm_inside_tmux(display, one_image, tmp_path):
    _need("xterm", "tmux")
    report, verdict, saved = _run("xterm", display, one_image, tmp_path, tmux=True)
    if report["renderer"] == "sixel":  # tmux >= 3.4 built with Sixel
        assert _is_image(verdict), (verdict, saved)
    else:  # tmux without Sixel (Debian 12's 3.3a): 24-bit half-blocks, since RGB is declared,
        # and the status line names --preview sixel
        assert report["renderer"] == "halfcell" and "24-bit" in report["status"], report
        assert "--preview sixel" in report["status"], report
        assert report["fix_shown"].startswith("--preview sixel"), report  # in the pane
        assert verdict["corr"] >= 0.8, (verdict, saved)
        assert verdict["half_cell_error"] < 3, (verdict, saved)  # 24-bit through tmux


def test_xterm_sixel_through_tmux(display, one_image, tmp_path):
    _need("xterm", "tmux")
    report, verdict, saved = _run("xterm", display, one_image, tmp_path, tmux=True,
                                  preview="sixel")
    assert report["renderer"] in ("sixel", "sixel-tmux"), report
    assert _is_image(verdict), (verdict, saved)


#: A tmux of 3.4 or later built with Sixel when the one on PATH is older (Debian 12 has
#: 3.3a): .ci/run unpacks bookworm-backports' tmux 3.5a there and names it here.
SIXEL_TMUX_ENV = "FLUXGYM_COACH_SIXEL_TMUX"


def _sixel_tmux() -> str:
    """A tmux binary of version 3.4 or later that knows Sixel, or a skip naming how to get one."""
    import os
    import shutil

    for program in (os.environ.get(SIXEL_TMUX_ENV), shutil.which("tmux")):
        if not program or not Path(program).exists():
            continue
        done = subprocess.run([program, "-V"], capture_output=True, text=True, timeout=30,
                              check=False)
        m = re.search(r"(\d+)\.(\d+)", done.stdout)
        if m and (int(m[1]), int(m[2])) >= (3, 4) and b"sixel" in Path(program).read_bytes():
            return program
    pytest.skip(f"needs tmux 3.4 or later built with Sixel (on PATH, or ${SIXEL_TMUX_ENV}; "
                f"Debian 12: bookworm-backports' tmux, as .ci/run unpacks it)")


def test_xterm_sixel_inside_tmux_34_without_passthrough(display, one_image, tmp_path):
    """tmux 3.4+ draws Sixel images itself: auto picks Sixel in the pane, with passthrough
    off, and the image is on the screen (tmux 3.3a gives half-blocks: test_xterm_inside_tmux)."""
    _need("xterm")
    program = _sixel_tmux()
    conf = screens.TMUX_CONF.replace("set -g allow-passthrough on", "set -g allow-passthrough off")
    report, verdict, saved = _run("xterm", display, one_image, tmp_path, tmux=True, tmux_conf=conf,
                                  name="xterm-tmux34-auto", tmux_program=program)
    assert report["renderer"] == "sixel", report
    assert "24-bit" in report["status"] and "fix" not in report["status"], report
    assert _is_image(verdict), (verdict, saved)
