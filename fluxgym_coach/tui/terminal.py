"""What the terminal can show: colour depth, tmux and its passthrough, kitty graphics.

The review UI asks once, before Textual starts (:func:`detect_terminal`):

- **colour depth**: 24-bit (``truecolor``), ``256`` or ``16`` colours. Inside
  tmux the answer is tmux's own: the features of the attached client
  (``#{client_termfeatures}`` contains ``RGB`` when tmux passes 24-bit colour
  on, from ``terminal-features`` / ``terminal-overrides`` ``RGB``/``Tc``), or
  the client's terminfo has ``setrgbf``/``setrgbb`` (tmux then sends 24-bit
  colour without listing ``RGB``: kitty's ``xterm-kitty``). Outside tmux:
  ``COLORTERM=truecolor|24bit``, then names and variables of terminals known
  to have 24-bit colour (kitty, Ghostty, WezTerm, iTerm2, VS Code, Windows
  Terminal, Konsole, VTE >= 0.36, foot, Alacritty, xterm, ``*-direct``), then
  the colours in ``$TERM``.
  ``TEXTUAL_COLOR_SYSTEM`` set by the user wins over all of this.
- **tmux**: version, the client's ``TERM`` and ``XTVERSION`` reply
  (``#{client_termname}``, ``#{client_termtype}``), and whether
  ``allow-passthrough`` is on (needed for kitty graphics through tmux).
- **kitty graphics behind tmux**: the client is kitty, Ghostty or WezTerm (by its
  name or version reply), or their variables leaked into the environment
  (``KITTY_WINDOW_ID``, ``GHOSTTY_RESOURCES_DIR``, ``WEZTERM_PANE``).
- **window size**: the terminal's own (:func:`use_real_window_size` drops
  ``COLUMNS``/``LINES``, which would otherwise override it).

Rich (and so Textual) picks its colour system from ``COLORTERM`` and ``TERM``
(``rich.console.Console._detect_color_system``): :func:`apply_colour_depth`
sets ``COLORTERM=truecolor`` for this process when 24-bit colour was detected
and the variables do not say so (the usual case over SSH, where sshd drops
``COLORTERM``, and in tmux, whose panes have ``TERM=tmux-256color``).

Sources: tmux(1) FORMATS and ``terminal-features``; tmux/tmux #3810
(``allow-passthrough``); rich's ``Console._detect_color_system``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

TRUECOLOR, COLORS_256, COLORS_16 = "truecolor", "256", "16"
#: In words, for the status line.
DEPTH_LABELS = {TRUECOLOR: "24-bit", COLORS_256: "256 colours", COLORS_16: "16 colours"}

_TRUECOLOR_TERMS = ("xterm-kitty", "xterm-ghostty", "wezterm", "foot", "foot-extra", "alacritty",
                    "contour", "iterm2", "rio")
_TRUECOLOR_PROGRAMS = ("iTerm.app", "WezTerm", "vscode", "ghostty", "Hyper", "Tabby", "rio")
_KITTY_GRAPHICS_NAMES = ("kitty", "ghostty", "wezterm")
_TMUX_FORMAT = "#{version}\t#{client_termname}\t#{client_termtype}\t#{client_termfeatures}"


@dataclass(frozen=True)
class TmuxInfo:
    """What the tmux server around us says (all strings empty when no client is attached)."""

    version: str
    client_termname: str  #: ``TERM`` of the attached client (the outer terminal), e.g. ``xterm-kitty``
    client_termtype: str  #: the outer terminal's XTVERSION reply, e.g. ``kitty(0.26.5)``
    client_features: frozenset[str]  #: ``#{client_termfeatures}``, e.g. ``{"256", "RGB", "title"}``
    passthrough: bool  #: ``allow-passthrough`` is ``on`` or ``all`` for our pane
    #: the client's terminfo entry (on this host, where tmux reads it) has ``setrgbf`` and
    #: ``setrgbb``, e.g. ``xterm-kitty``: tmux sends 24-bit colour with them without
    #: listing ``RGB`` among the client's features
    client_terminfo_rgb: bool = False

    @property
    def rgb(self) -> bool:
        """tmux passes 24-bit colour on to the client (tmux's own rule, tty-term.c:
        ``RGB`` among the features, or ``setrgbf``/``setrgbb`` in the client's terminfo)."""
        return "RGB" in self.client_features or self.client_terminfo_rgb

    @property
    def attached(self) -> bool:
        """A client is attached (the client_* fields mean something)."""
        return bool(self.client_termname)


@dataclass(frozen=True)
class TerminalInfo:
    """The answer of :func:`detect_terminal`."""

    colour: str  #: ``truecolor``, ``256`` or ``16``
    colour_reason: str  #: why, in words (``COLORTERM=truecolor``, ``tmux client xterm-256color has RGB`` ...)
    tmux: TmuxInfo | None = None  #: set when running inside tmux
    kitty_graphics_outside: bool = False  #: inside tmux: the outer terminal speaks kitty graphics
    fixes: tuple[str, ...] = field(default=())  #: one-line fixes for what is poor, most useful first
    colour_fix: str = ""  #: the one of ``fixes`` that gives 24-bit colour ("" when none)

    @property
    def depth_label(self) -> str:
        """``24-bit``, ``256 colours`` or ``16 colours``."""
        return DEPTH_LABELS[self.colour]


def query_tmux(env: Mapping[str, str] | None = None, tmux: str = "tmux",
               timeout: float = 2.0) -> TmuxInfo | None:
    """Ask the tmux server named by ``$TMUX`` about our pane and its client.

    Returns None outside tmux (no ``$TMUX``), when the ``tmux`` program is
    missing or the server does not answer within ``timeout`` seconds.
    """
    env = os.environ if env is None else env
    if not env.get("TMUX") or shutil.which(tmux) is None:
        return None
    target = ["-t", env["TMUX_PANE"]] if env.get("TMUX_PANE") else []
    run_env = dict(env)

    def ask(*args: str) -> str | None:
        try:
            done = subprocess.run([tmux, *args], capture_output=True, text=True, timeout=timeout,
                                  env=run_env, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.rstrip("\n") if done.returncode == 0 else None

    out = ask("display-message", "-p", *target, _TMUX_FORMAT)
    if out is None:
        return None
    version, termname, termtype, features = (out.split("\t") + ["", "", "", ""])[:4]
    # allow-passthrough is a pane option from tmux 3.3a (flag: 0/1; 3.4: on/off/all).
    passthrough = ask("show-options", "-Apv", *target, "allow-passthrough")
    if passthrough is None:
        passthrough = ask("show-options", "-gwv", "allow-passthrough") or ""
    passthrough = passthrough.strip().splitlines()[-1] if passthrough.strip() else ""
    return TmuxInfo(version=version, client_termname=termname, client_termtype=termtype,
                    client_features=frozenset(f for f in features.split(",") if f),
                    passthrough=passthrough in ("1", "on", "all"),
                    client_terminfo_rgb=terminfo_has_rgb(termname, timeout=timeout))


def terminfo_has_rgb(name: str, infocmp: str = "infocmp", timeout: float = 2.0) -> bool:
    """The terminfo entry ``name`` on this host defines ``setrgbf`` and ``setrgbb`` (24-bit
    foreground and background), asked with ``infocmp -x -1``; False when the entry or the
    program (Debian: ncurses-bin) is missing."""
    if not name or shutil.which(infocmp) is None:
        return False
    try:
        out = subprocess.run([infocmp, "-x", "-1", name], capture_output=True, text=True,
                             timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    caps = {line.strip().split("=", 1)[0] for line in out.stdout.splitlines()}
    return out.returncode == 0 and {"setrgbf", "setrgbb"} <= caps


def _env_truecolor(env: Mapping[str, str]) -> str | None:
    """Why the variables say 24-bit colour, or None."""
    colorterm = env.get("COLORTERM", "").strip().lower()
    if colorterm in ("truecolor", "24bit"):
        return f"COLORTERM={colorterm}"
    term = env.get("TERM", "").strip().lower()
    if term in _TRUECOLOR_TERMS or term.endswith("-direct") or "truecolor" in term:
        return f"TERM={term}"
    for var in ("KITTY_WINDOW_ID", "GHOSTTY_RESOURCES_DIR", "WEZTERM_PANE", "WT_SESSION",
                "KONSOLE_VERSION", "ALACRITTY_WINDOW_ID"):
        if env.get(var):
            return f"${var} is set"
    if env.get("TERM_PROGRAM", "") in _TRUECOLOR_PROGRAMS:
        return f"TERM_PROGRAM={env['TERM_PROGRAM']}"
    vte = env.get("VTE_VERSION", "")
    if vte.isdigit() and int(vte) >= 3600:
        return f"VTE_VERSION={vte}"
    # xterm sets XTERM_VERSION (and drops COLORTERM). It reads 24-bit SGR colours and shows
    # them exactly when built with direct colour (Debian's XTerm(379), measured from
    # screenshots), else maps them to its palette: never worse than 256 colours.
    if env.get("XTERM_VERSION", "").startswith("XTerm("):
        return f"XTERM_VERSION={env['XTERM_VERSION']}"
    return None


#: kitty shows Unicode placeholders (needed for images through tmux) from this version.
KITTY_PLACEHOLDERS_SINCE = (0, 28, 0)


def kitty_version(reply: str) -> tuple[int, ...] | None:
    """The version in an XTVERSION reply such as ``kitty(0.26.5)``; None for other terminals."""
    import re

    m = re.search(r"kitty\((\d+(?:\.\d+)*)", reply or "")
    return tuple(int(x) for x in m.group(1).split(".")) if m else None


def _kitty_graphics_outside(env: Mapping[str, str], info: TmuxInfo) -> bool:
    names = f"{info.client_termname} {info.client_termtype}".lower()
    if any(n in names for n in _KITTY_GRAPHICS_NAMES):
        return True
    return any(env.get(v) for v in ("KITTY_WINDOW_ID", "GHOSTTY_RESOURCES_DIR", "WEZTERM_PANE"))


def detect_terminal(env: Mapping[str, str] | None = None, tmux: str = "tmux") -> TerminalInfo:
    """Colour depth, tmux and kitty-graphics facts of the terminal we run in.

    ``env``: the environment to read (default ``os.environ``); ``tmux``: the
    program to ask when ``$TMUX`` is set. Never raises: what cannot be learned
    is left out (e.g. no tmux client attached: the variables decide).
    """
    env = os.environ if env is None else env
    tmux_info = query_tmux(env, tmux)
    fixes: list[str] = []
    forced = env.get("TEXTUAL_COLOR_SYSTEM", "").strip().lower()
    if forced and forced != "auto":
        colour = {"truecolor": TRUECOLOR, "256": COLORS_256}.get(forced, COLORS_16)
        return TerminalInfo(colour, f"TEXTUAL_COLOR_SYSTEM={forced}", tmux_info,
                            bool(tmux_info and _kitty_graphics_outside(env, tmux_info)))
    if tmux_info is not None and tmux_info.attached:
        name = tmux_info.client_termname
        if tmux_info.rgb:
            how = "RGB" if "RGB" in tmux_info.client_features else "setrgbf/setrgbb in terminfo"
            colour, reason = TRUECOLOR, f"tmux client {name} has {how}"
        else:
            colour, reason = COLORS_256, f"tmux client {name} lacks RGB"
            fixes.append(f"tmux set -as terminal-features ',{name}:RGB' (then detach and "
                         f"reattach) if that terminal has 24-bit colour")
    else:
        why = _env_truecolor(env)
        term = env.get("TERM", "")
        if why:
            colour, reason = TRUECOLOR, why
        elif "256" in term:
            colour, reason = COLORS_256, f"TERM={term}, no COLORTERM"
            fixes.append("export COLORTERM=truecolor if the terminal has 24-bit colour (sshd drops "
                         "it: SendEnv COLORTERM in ssh_config, AcceptEnv COLORTERM in sshd_config)")
        else:
            colour, reason = COLORS_16, f"TERM={term or 'unset'}"
            fixes.append("use TERM=xterm-256color, or export COLORTERM=truecolor if the terminal "
                         "has 24-bit colour")
    kitty_outside = bool(tmux_info and _kitty_graphics_outside(env, tmux_info))
    colour_fix = fixes[0] if colour != TRUECOLOR and fixes else ""
    if tmux_info is not None and kitty_outside and not tmux_info.passthrough:
        fixes.insert(0, "tmux set -g allow-passthrough on (kitty graphics through tmux)")
    if tmux_info is not None and not kitty_outside:
        fixes.append("--preview sixel if the terminal around tmux has Sixel (xterm -ti vt340, "
                     "foot, WezTerm), or tmux 3.4+ built with Sixel")
    old = kitty_version(tmux_info.client_termtype) if tmux_info else None
    if old is not None and old < KITTY_PLACEHOLDERS_SINCE:
        fixes.append(f"kitty 0.28 or later keeps images in place when tmux panes move (this "
                     f"is {tmux_info.client_termtype})")
    return TerminalInfo(colour, reason, tmux_info, kitty_outside, tuple(fixes), colour_fix)


def apply_colour_depth(info: TerminalInfo, environ: MutableMapping[str, str] | None = None) -> bool:
    """Make Rich/Textual use the colour depth :func:`detect_terminal` found.

    Sets ``COLORTERM=truecolor`` in ``environ`` (default ``os.environ``) for 24-bit
    colour unless it already says so. Inside tmux with a client that lacks 24-bit
    colour, removes a ``COLORTERM=truecolor`` (left by the terminal that started
    tmux's server: tmux turns 24-bit colours into 256 for this client anyway), so
    the app renders, and the status line names, 256 colours. Nothing changes when
    ``TEXTUAL_COLOR_SYSTEM`` is set. Call it before the :class:`textual.app.App` is
    created (its console reads the environment then). Returns True when it changed
    the environment.
    """
    environ = os.environ if environ is None else environ
    if environ.get("TEXTUAL_COLOR_SYSTEM"):
        return False
    says_truecolor = environ.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit")
    if info.colour == TRUECOLOR:
        if says_truecolor:
            return False
        environ["COLORTERM"] = "truecolor"
        return True
    if says_truecolor and info.tmux is not None and info.tmux.attached:
        del environ["COLORTERM"]
        return True
    return False


#: The variables that override a terminal's real size in ``shutil.get_terminal_size``.
SIZE_VARIABLES = ("COLUMNS", "LINES")


def use_real_window_size(environ: MutableMapping[str, str] | None = None,
                         fd: int | None = None) -> list[str]:
    """Make the app lay itself out for the terminal's real size, not ``$COLUMNS``/``$LINES``.

    Textual's Linux driver reads the size with ``shutil.get_terminal_size``, which
    prefers the ``COLUMNS`` and ``LINES`` variables over the terminal's own answer
    (``TIOCGWINSZ``), at start-up and again on every resize (``SIGWINCH``). An
    exported value is at best the size when the shell last looked, and leaks into
    places it does not describe: tmux copies the environment of the shell that
    started its server into every pane, a test runner's into the terminals it starts.
    The app then draws for a wider or narrower screen than it has (the preview box
    runs past the right edge) and never corrects it on a resize.

    When ``fd`` (default: standard output) is a terminal, removes both variables
    from ``environ`` (default ``os.environ``, this process only; the shell keeps
    them). Returns the names removed, e.g. ``["COLUMNS"]``; nothing is removed when
    ``fd`` is not a terminal (there the variables are the only answer).
    Source: Python's ``shutil.get_terminal_size``; textual's ``LinuxDriver._get_terminal_size``.
    """
    environ = os.environ if environ is None else environ
    if fd is None:
        try:
            fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else -1
        except (AttributeError, ValueError, OSError):
            return []
    try:
        os.get_terminal_size(fd)
    except (OSError, ValueError):
        return []
    return [name for name in SIZE_VARIABLES if environ.pop(name, None) is not None]


_current: TerminalInfo | None = None


def current_terminal() -> TerminalInfo:
    """:func:`detect_terminal` of this process, asked once and remembered."""
    global _current
    if _current is None:
        _current = detect_terminal()
    return _current
