"""``doctor``'s terminal checks judge colours as the TUI does (one detection, tui/terminal.py)."""

from __future__ import annotations

from fluxgym_coach.cli.cmd_doctor import check_terminal
from fluxgym_coach.tui.terminal import detect_terminal


def _by_name(checks):
    return {c.name: c for c in checks}


def test_256_colours_without_colorterm_warn_with_the_tuis_fix():
    env = {"TERM": "xterm-256color"}
    checks = _by_name(check_terminal(env, tty=True))
    assert checks["colours"].status == "warn"
    assert "256 colours" in checks["colours"].detail
    assert checks["colours"].fix == detect_terminal(env).colour_fix
    assert "COLORTERM=truecolor" in checks["colours"].fix


def test_truecolor_is_ok_and_xterm_counts_by_its_version():
    assert _by_name(check_terminal({"TERM": "xterm-256color", "COLORTERM": "truecolor"},
                                   tty=True))["colours"].status == "ok"
    # xterm announces itself with XTERM_VERSION, not COLORTERM: the TUI uses 24-bit there
    xterm = _by_name(check_terminal({"TERM": "xterm", "XTERM_VERSION": "XTerm(379)"}, tty=True))
    assert xterm["colours"].status == "ok" and "24-bit" in xterm["colours"].detail


def test_no_terminal_says_how_to_get_one_and_judges_nothing_else():
    checks = check_terminal({"TERM": "xterm-256color"}, tty=False)
    assert [c.name for c in checks] == ["tty"]
    assert checks[0].status == "warn" and "ssh -t" in checks[0].fix
