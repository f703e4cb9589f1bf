"""One Finding: fluxgym_coach.findings.Finding is the only class shaped like a finding, every
module that names a Finding names that one, and no code reads a finding's fields by duck typing."""

from __future__ import annotations

import ast
from pathlib import Path

import fluxgym_coach
from fluxgym_coach.findings import Finding, Severity

PACKAGE = Path(fluxgym_coach.__file__).parent
#: Fields that make a class a finding (what the info panel, the report and --json show).
FINDING_SHAPE = {"code", "severity"}


def _trees() -> list[tuple[str, ast.Module]]:
    return [(p.relative_to(PACKAGE).as_posix(), ast.parse(p.read_text(encoding="utf-8")))
            for p in sorted(PACKAGE.rglob("*.py"))]


def _fields(cls: ast.ClassDef) -> set[str]:
    out = set()
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.add(node.target.id)
        elif isinstance(node, ast.FunctionDef) and node.name == "__init__":
            out |= {a.arg for a in node.args.args}
    return out


def test_only_findings_py_defines_a_finding_shaped_class():
    shaped = [f"{rel}: {node.name}" for rel, tree in _trees() for node in ast.walk(tree)
              if isinstance(node, ast.ClassDef) and FINDING_SHAPE <= _fields(node)
              and (rel, node.name) != ("findings.py", "Finding")]
    assert not shaped, f"classes shaped like a finding besides findings.Finding: {shaped}"


def test_no_code_reads_a_findings_fields_by_duck_typing():
    """``getattr(f, "severity", ...)`` / ``hasattr(f, "code")`` is how a second Finding
    class gets bridged; a Finding has these fields, so plain attribute access does."""
    duck = [f"{rel}:{node.lineno}" for rel, tree in _trees() for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant) and node.args[1].value in FINDING_SHAPE]
    assert not duck, f"findings read by getattr/hasattr: {duck}"


def test_every_front_end_shows_the_one_finding_class():
    from fluxgym_coach.audit import rules
    from fluxgym_coach.captions.linting import CaptionFinding
    from fluxgym_coach.tui import model

    assert rules.Finding is Finding and model.Finding is Finding
    f = CaptionFinding("empty", Severity.ERROR, "caption is empty")
    assert type(f) is Finding and f.category == "caption"
    unreadable = model.Row(record=_unreadable_record()).all_findings()[0]
    assert type(unreadable) is Finding and unreadable.severity is Severity.ERROR
    assert model.finding_from(f) is f


def _unreadable_record():
    from fluxgym_coach.store import ImageRecord

    fields = {name: None for name in ImageRecord.__dataclass_fields__}
    fields.update(relpath="broken.png", size=3, mtime_ns=0, error="cannot be read", scanned_at=0.0)
    return ImageRecord(**fields)
