"""Rules of the house that the code's structure must keep (docs/architecture.md):
front ends present, the core decides; functions and modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "fluxgym_coach"
FRONT_ENDS = ("cli", "tui", "plugins/builtin", "integrations")
#: What only the core may call: building backends, running the job pipelines, SQL.
FORBIDDEN_CALLS = {"get_enhance_backend", "get_caption_backend", "run_enhance", "run_caption",
                   "ForgeBackend", "LocalBackend", "OpenAICaptioner", "ForgeCaptioner",
                   "DraftCaptioner", "Florence2Captioner", "execute", "executemany", "connect"}
#: Front-end modules allowed to build a backend or run SQL, and why (none today).
ALLOWED: dict[tuple[str, str], str] = {}


def _front_end_files() -> list[Path]:
    return sorted(p for sub in FRONT_ENDS for p in (PKG / sub).rglob("*.py"))


def _calls(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name in FORBIDDEN_CALLS:
                out.append((node.lineno, name))
    return out


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out += [(node.lineno, f"{node.module or ''}.{a.name}") for a in node.names]
    return out


def test_front_ends_call_the_core_job_api_not_backends_pipelines_or_sql():
    problems = []
    for path in _front_end_files():
        rel = path.relative_to(PKG).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, name in _calls(tree):
            if (rel, name) not in ALLOWED:
                problems.append(f"{rel}:{line} calls {name}()")
        for line, name in _imports(tree):
            if name.split(".")[-1] in {"sqlite3", "httpx"} or name.startswith("sqlite3"):
                problems.append(f"{rel}:{line} imports {name}")
    assert problems == [], "front ends must go through fluxgym_coach.core:\n" + "\n".join(problems)


def test_the_core_never_imports_a_front_end():
    problems = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).as_posix()
        if rel.startswith(("cli/", "tui/", "integrations/", "testing/")) or rel == "__main__.py":
            continue
        for line, name in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            parts = name.lstrip(".").split(".")
            if parts and parts[0] in {"tui", "cli", "textual", "rich"} or ".tui." in f".{name}." \
                    or ".cli." in f".{name}.":
                problems.append(f"{rel}:{line} imports {name}")
    assert problems == [], "\n".join(problems)
