"""docs/architecture.md names every module of the package (one line each), so a
newcomer finds where a feature lives; a new module without its line fails here."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_has_its_line_in_the_architecture_page():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    pkg = ROOT / "fluxgym_coach"
    modules = sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*.py"))
    missing = [m for m in modules if not m.endswith("/__init__.py") and f"`{m}`" not in page]
    assert missing == [], "add a line for each to docs/architecture.md: " + ", ".join(missing)
