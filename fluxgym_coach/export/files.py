"""The files of an export that are not images: ``dataset.toml``, and the staging
folder that makes an export appear all at once.

``dataset.toml`` is written as ``[[datasets]]`` / ``[[datasets.subsets]]``
tables, never inline tables: kohya reads it with ``toml`` 0.10.2, which
returns an empty subset list for the one-line inline layout when a value
contains ``'``. Strings are quoted by :func:`toml_string`; a test reads every
hostile value (and every string of up to 3 characters from a hostile
alphabet) back with both ``toml`` 0.10.2 and ``tomllib``.

``image_dir`` is ``datasets/<slug>``, relative: kohya resolves it against the
working directory, and Fluxgym runs ``train.sh`` from its own folder
(``app.py``: ``runner.run_command([...], cwd=<fluxgym folder>)``), as our
``train.sh`` does (it ``cd``s two levels up). So the export keeps working
after ``datasets/`` and ``outputs/`` are copied into a Fluxgym folder.

Staging: images and captions are written into a hidden sibling
``datasets/.<slug>.partial-<pid>``. When it is complete, ``train.sh``,
``sample_prompts.txt`` and ``manifest.jsonl`` are written (each atomically),
the staged folder is swapped in for ``datasets/<slug>`` (two renames) and
``dataset.toml`` is written last. A kill leaves either the old dataset folder
or the new complete one, plus at most a hidden staging folder that the next
run removes; ``outputs/<slug>`` without ``dataset.toml`` but with our
``manifest.jsonl`` marks an export that did not finish, and a re-run replaces
it without ``--force``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import tomli_w

PARTIAL = ".partial-"
#: The outputs/<slug> files an export writes (anything else there is the user's).
OUTPUT_FILES = ("dataset.toml", "sample_prompts.txt", "train.sh", "manifest.jsonl")


def toml_string(text: str) -> str:
    """``text`` as a TOML string that ``toml`` 0.10.2 and ``tomllib`` both read back
    unchanged: a literal string (``'...'``) when ``text`` has no ``'`` and no
    control character, else a basic string as ``tomli_w`` writes it. The one
    shape 0.10.2 still misreads (see :func:`toml_safe`) is refused earlier."""
    if "'" not in text and all(ord(c) >= 0x20 and ord(c) != 0x7F for c in text):
        return "'" + text + "'"
    return tomli_w.dumps({"v": text})[len("v = "):].rstrip("\n")


def toml_safe(text: str) -> bool:
    """False for text ``toml`` 0.10.2 cannot read back in any quoting we write: it
    starts with two ``"`` and holds a ``'`` or a control character (0.10.2 then
    returns an empty string; found by exhaustive search over short strings)."""
    return not (text.startswith('""') and ("'" in text or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)))


def toml_value(value: Any) -> str:
    """One TOML scalar: strings by :func:`toml_string`, others as ``tomli_w`` writes them."""
    if isinstance(value, str):
        return toml_string(value)
    return tomli_w.dumps({"v": value})[len("v = "):].rstrip("\n")


def dataset_toml_text(general: dict[str, Any], dataset: dict[str, Any], subset: dict[str, Any]) -> str:
    """``dataset.toml`` text with one ``[[datasets]]`` holding one ``[[datasets.subsets]]``.

    Each argument maps key -> scalar (str, int, float, bool). Layout as
    Fluxgym writes it (two-space indented subset table)."""
    lines = ["[general]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in general.items()]
    lines += ["", "[[datasets]]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in dataset.items()]
    lines += ["", "  [[datasets.subsets]]"]
    lines += [f"  {k} = {toml_value(v)}" for k, v in subset.items()]
    return "\n".join(lines) + "\n"


def remove_partials(parent: Path, slug: str) -> int:
    """Delete staging folders left by killed exports of ``slug``; returns how many."""
    n = 0
    if parent.is_dir():
        for p in parent.glob(f".{slug}{PARTIAL}*"):
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n


def staging_dir(target: Path) -> Path:
    """A new empty hidden staging folder beside ``target``."""
    path = target.parent / f".{target.name}{PARTIAL}{os.getpid()}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def unfinished_export(outputs_dir: Path) -> bool:
    """True when ``outputs_dir`` holds our ``manifest.jsonl`` and nothing but our
    files, without ``dataset.toml``: an export killed before its last write,
    which a re-run may replace without ``--force``."""
    if not (outputs_dir / "manifest.jsonl").is_file() or (outputs_dir / "dataset.toml").exists():
        return False
    return all(p.name in OUTPUT_FILES for p in outputs_dir.iterdir())


def swap_in(staged: Path, target: Path, keep_suffixes_out: set[str]) -> int:
    """Replace ``target`` with the complete folder ``staged``.

    Files in the old ``target`` whose suffix is not in ``keep_suffixes_out``
    (images, captions and ``*.npz`` caches are replaced; anything else is the
    user's) are moved into the new folder first, unless the new one has that
    name. Returns how many old files were dropped."""
    dropped = 0
    if target.is_dir():
        for p in list(target.iterdir()):
            if p.is_file() and p.suffix.lower() in keep_suffixes_out:
                dropped += 1
            elif not (staged / p.name).exists():
                p.rename(staged / p.name)
        trash = target.parent / f".{target.name}{PARTIAL}old-{os.getpid()}"
        target.rename(trash)
        staged.rename(target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        staged.rename(target)
    return dropped
