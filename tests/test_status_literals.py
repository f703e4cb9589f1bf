"""No raw status, severity, decision or origin string in package code: the StrEnum members are used.

The enums of :mod:`fluxgym_coach.statuses` and :class:`fluxgym_coach.findings.Severity`
compare equal to their strings, so a raw ``o.status == "faild"`` would silently never
be true. This test walks the AST of every module of ``fluxgym_coach/`` and fails on a
string constant equal to one of those values where it acts as a value: compared,
assigned, returned, passed as an argument (positional or keyword), used as a dict
value, a default, or iterated over. Dict keys, subscripts and attribute/key names
(``d.get("error")``, ``getattr(o, "info")``) are names, not values, and are not
looked at; neither are docstrings.

Strings that are equal to a status but mean something else (the ``draft`` caption
backend, a Textual notification level, a TUI filter name) are in :data:`ALLOWED`
with the reason; an entry that no longer matches anything fails too, so the list
stays short.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import fluxgym_coach
from fluxgym_coach import statuses
from fluxgym_coach.findings import Severity

PACKAGE = Path(fluxgym_coach.__file__).parent
ENUMS = [getattr(statuses, name) for name in statuses.__all__] + [Severity]
VALUES = frozenset(m.value for enum in ENUMS for m in enum)
#: Modules that define the values (they may spell them).
DEFINING = {"statuses.py", "findings.py"}
#: Folders whose strings belong to another program's wire format.
FOREIGN = {
    "testing": "the fake Forge / OpenAI servers speak those programs' JSON (`error`, `done`, `missing`...)",
}
#: (module, value): why this raw string is not one of our statuses.
ALLOWED: dict[tuple[str, str], str] = {
    # names that happen to equal a status
    ("captions/job.py", "draft"): "the draft caption backend's name (BACKENDS), not CaptionOrigin.DRAFT",
    ("captions/backends/draft.py", "draft"): "the draft caption backend's name",
    ("settings_models.py", "draft"): "default caption backend name",
    ("core.py", "draft"): "default caption backend name",
    ("integrations/panoptic/plugin.py", "draft"): "caption backend choice offered to Panoptic",
    ("captions/linting.py", "missing"): "a caption finding code (CaptionFinding's first argument)",
    ("captions/linting.py", "draft"): "a caption finding code",
    ("plugins/models.py", "info"): "NotifType, the plugin protocol's notification kinds (Panoptic's names)",
    ("plugins/models.py", "warning"): "NotifType (plugin protocol)",
    ("plugins/models.py", "error"): "NotifType (plugin protocol)",
    ("cli/cmd_plugins.py", "error"): "NotifType value / plugin state label of `plugins list`",
    ("tui/keys.py", "accept"): "Textual action names of the review keys",
    ("tui/keys.py", "reject"): "Textual action name",
    ("tui/keys.py", "exclude"): "Textual action name",
    ("tui/keys.py", "reprocess"): "Textual action name",
    ("tui/model.py", "unreviewed"): "TUI filter name (FILTERS: the user's choice strings)",
    ("tui/model.py", "accepted"): "TUI filter name",
    ("tui/model.py", "rejected"): "TUI filter name",
    ("tui/model.py", "excluded"): "TUI filter name",
    ("tui/model.py", "enhanced"): "TUI filter name",
    ("tui/actions/navigate.py", "unreviewed"): "TUI filter name",
    # keys of JSON documents and column names
    ("audit/measures.py", "error"): "a column name of the measures table",
    ("store.py", "error"): "a column name of the images table",
    ("cli/cmd_buckets.py", "error"): "`\"error\" in row`: a key of the buckets JSON row",
    ("integrations/panoptic/plugin.py", "error"): "`\"error\" in box`: a key of a face box dict",
    ("enhance/backends/forge_client.py", "error"): "keys of Forge's JSON error body",
    ("tui/plugin_screens.py", "error"): "widget id / Textual notification level",
    ("tui/plugin_screens.py", "warning"): "Textual notification level",
    # words shown to the user
    ("cli/cmd_feedback.py", "accepted"): "a column heading of `feedback`",
    ("cli/cmd_feedback.py", "rejected"): "a column heading of `feedback`",
    ("tui/actions/jobs.py", "warning"): "the word in a notification (plural())",
    ("tui/widgets/jobs_panel.py", "removed"): "label of the scan summary's count",
    ("tui/widgets/jobs_panel.py", "unchanged"): "label of the scan summary's count",
    # still to swap: modules another session edited at the time (compare equal, so correct today)
}
def _callee(call: ast.Call) -> str | None:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


#: Calls whose first (or, for getattr/hasattr, second) argument is a key or name.
_NAME_ARG = {"get": 0, "pop": 0, "setdefault": 0, "startswith": 0, "endswith": 0,
             "getattr": 1, "hasattr": 1, "setattr": 1}
#: Keyword arguments that are Textual's, not ours: notify(severity=...) takes Textual's
#: levels ("information", "warning", "error"); id= / classes= are widget names.
_FOREIGN_KEYWORDS = {("notify", "severity"), (None, "id"), (None, "classes")}


def _literals(node: ast.AST | None) -> Iterator[ast.Constant]:
    """String constants in VALUES that ``node`` evaluates to (through tuples, sets,
    lists, conditional expressions and and/or), not those inside calls or dicts."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str) and node.value in VALUES:
            yield node
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for e in node.elts:
            yield from _literals(e)
    elif isinstance(node, ast.IfExp):
        yield from _literals(node.body)
        yield from _literals(node.orelse)
    elif isinstance(node, ast.BoolOp):
        for v in node.values:
            yield from _literals(v)
    elif isinstance(node, ast.Starred):
        yield from _literals(node.value)
    elif isinstance(node, ast.Call) and _callee(node) in {"frozenset", "set", "tuple", "list"}:
        for a in node.args:
            yield from _literals(a)


def _package_callables() -> frozenset[str]:
    """Names of every function and class the package defines."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(n.name)
    return frozenset(names)


#: Calls whose arguments are looked at: the package's own functions and classes (a
#: status passed to ``Outcome``, ``JobFinished``, ``Journal.mark``...), ``get`` and
#: ``getattr`` (their default) and the container builtins. Arguments of other libraries' calls
#: (``table.add_row("failed", ...)``, ``Label(...)``) are text shown to the user.
CALLEES = _package_callables() | {"get", "getattr", "frozenset", "set", "tuple", "list"}
#: Keyword arguments looked at whatever the callee.
STATUS_KEYWORDS = {"status", "severity", "origin", "decision", "state", "kind"}


def _call_values(call: ast.Call) -> Iterator[tuple[ast.Constant, str]]:
    name = _callee(call)
    if name in CALLEES:
        for i, arg in enumerate(call.args):
            if _NAME_ARG.get(name or "") != i:
                yield from ((c, f"argument of {name}()") for c in _literals(arg))
    for kw in call.keywords:
        if (name, kw.arg) in _FOREIGN_KEYWORDS or (None, kw.arg) in _FOREIGN_KEYWORDS:
            continue
        if name in CALLEES or kw.arg in STATUS_KEYWORDS:
            yield from ((c, f"{kw.arg}= of {name}()") for c in _literals(kw.value))


def raw_status_literals(tree: ast.AST) -> Iterator[tuple[ast.Constant, str]]:
    """Every (constant, context) where a status value is used as a value in ``tree``."""
    for n in ast.walk(tree):
        if isinstance(n, ast.Compare):
            for side in (n.left, *n.comparators):
                yield from ((c, "compared") for c in _literals(side))
        elif isinstance(n, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
            yield from ((c, "assigned") for c in _literals(n.value))
        elif isinstance(n, (ast.Return, ast.Yield)):
            yield from ((c, "returned") for c in _literals(n.value))
        elif isinstance(n, ast.Call):
            yield from _call_values(n)
        elif isinstance(n, ast.Dict):
            for v in n.values:
                yield from ((c, "dict value") for c in _literals(v))
        elif isinstance(n, (ast.For, ast.AsyncFor, ast.comprehension)):
            yield from ((c, "iterated") for c in _literals(n.iter))
        elif isinstance(n, ast.arguments):
            for d in [*n.defaults, *n.kw_defaults]:
                yield from ((c, "default") for c in _literals(d))
        elif isinstance(n, ast.MatchValue):
            yield from ((c, "match case") for c in _literals(n.value))


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if p.name not in DEFINING and p.relative_to(PACKAGE).parts[0] not in FOREIGN)


def _hits() -> list[tuple[str, int, str, str]]:
    """(module, line, value, context) of every status value used as a value, once per line."""
    out: dict[tuple[str, int, str], str] = {}
    for path in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        for const, context in raw_status_literals(ast.parse(path.read_text(encoding="utf-8"))):
            out.setdefault((rel, const.lineno, const.value), context)
    return sorted((*key, context) for key, context in out.items())


def test_package_code_uses_the_enum_members_not_raw_status_strings():
    bad = [f"fluxgym_coach/{rel}:{line}: {value!r} {context}"
           for rel, line, value, context in _hits() if (rel, value) not in ALLOWED]
    assert not bad, ("raw status / severity strings; use the member of fluxgym_coach.statuses or "
                     "findings.Severity (or add to ALLOWED with the reason):\n" + "\n".join(bad))


def test_every_allowed_entry_is_still_needed():
    used = {(rel, value) for rel, _, value, _ in _hits()}
    assert not set(ALLOWED) - used, f"stale ALLOWED entries: {sorted(set(ALLOWED) - used)}"


@pytest.mark.parametrize("source, expected", [
    ('if o.status == "failed": pass', ["failed"]),
    ('o.status = "cached" if hit else "enhanced"', ["cached", "enhanced"]),
    ('Outcome(name, "pending")', ["pending"]),
    ('Finding("x", severity="warning", message="m")', ["warning"]),
    ('row = {"status": "exists"}', ["exists"]),
    ('n = {s: 1 for s in ("enhanced", "cached")}', ["enhanced", "cached"]),
    ('def f(status="done"): pass', ["done"]),
    ('sel.get(rel, "unreviewed")', ["unreviewed"]),
    # names, not values:
    ('x = d.get("error"); y = d["failed"]; z = {"error": 1}; getattr(o, "info")', []),
    ('app.notify("m", severity="warning"); Label("", id="error")', []),
    ('"""accepted"""', []),
])
def test_the_walk_finds_values_and_not_names(source, expected):
    assert [c.value for c, _ in raw_status_literals(ast.parse(source))] == expected
