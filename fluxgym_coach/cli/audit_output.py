"""How ``fluxgym-coach audit`` presents a report: a table, a summary by code, every row, or JSON.

* Few findings (at most :data:`TABLE_ROWS` rows of warnings and errors): one
  table row per finding, as always.
* More: a summary, one row per finding code with its severity, the number of
  images, the first few names and the fix, then the duplicate groups (the
  first :data:`SHOWN_GROUPS`), and a line saying how to get every row.
* ``--all``: every finding (info included), one plain line each, through the
  pager (``$PAGER``, else ``less``) when stdout is a terminal.
* ``--json``: the report's dict written as it is produced, one image per
  line, never held as one string (a 10,000-image audit is tens of MB).
"""

from __future__ import annotations

import json
import pydoc
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from rich.markup import escape
from rich.table import Table

from ..audit.rules import ERROR, INFO, WARNING, AuditReport, Finding
from ..findings import severity_rank
from .common import out

#: Largest number of finding rows printed as a full table without ``--all``.
TABLE_ROWS = 50
#: Duplicate groups printed by name in the summary.
SHOWN_GROUPS = 10
#: Example names per finding code in the summary.
EXAMPLES = 3

_STYLE = {ERROR: "bold red", WARNING: "yellow", INFO: "dim"}


def fmt(value: object) -> str:
    """A finding's value or threshold, short."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def rows(report: AuditReport, show_info: bool) -> Iterator[tuple[str, Finding]]:
    """``(relpath, finding)`` of every finding shown (info only with ``show_info``)."""
    limit = INFO if show_info else WARNING
    for rel in report.flagged(limit):
        for f in report.images[rel].findings:
            if show_info or f.severity != INFO:
                yield rel, f


def print_table(report: AuditReport, title: str, show_info: bool) -> int:
    """One Rich table row per finding; returns the number of rows."""
    table = Table(title=escape(title))
    for col in ("image", "severity", "finding", "value", "threshold", "fix"):
        table.add_column(col, overflow="fold")
    shown = 0
    for rel, f in rows(report, show_info):
        table.add_row(escape(rel), f"[{_STYLE[f.severity]}]{f.severity}[/]",
                      escape(f"{f.code}: {f.message}"), escape(fmt(f.value)),
                      escape(fmt(f.threshold)), escape(f.fix))
        shown += 1
    if shown:
        out.print(table)
    return shown


def summary_by_code(report: AuditReport) -> list[dict[str, Any]]:
    """One entry per (code, severity): ``code``, ``severity``, ``images`` (count),
    ``examples`` (first names) and ``fix`` (of the first image); most serious first,
    then most images."""
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for rel, a in report.images.items():
        for f in a.findings:
            entry = by.get((f.code, f.severity))
            if entry is None:
                entry = by[(f.code, f.severity)] = {"code": f.code, "severity": f.severity,
                                                    "images": 0, "examples": [], "fix": f.fix}
            entry["images"] += 1
            if len(entry["examples"]) < EXAMPLES:
                entry["examples"].append(rel)
    return sorted(by.values(), key=lambda e: (severity_rank(e["severity"]), -e["images"], e["code"]))


def print_summary(report: AuditReport, title: str, show_info: bool, total_rows: int) -> None:
    """The summary table by code, the first duplicate groups, and how to see everything."""
    table = Table(title=escape(title))
    for col in ("severity", "finding", "images", "for example", "fix (first image)"):
        table.add_column(col, overflow="fold")
    hidden_info = 0
    for e in summary_by_code(report):
        if e["severity"] == INFO and not show_info:
            hidden_info += e["images"]
            continue
        more = e["images"] - len(e["examples"])
        names = ", ".join(escape(n) for n in e["examples"]) + (f" (+{more})" if more else "")
        table.add_row(f"[{_STYLE[e['severity']]}]{e['severity']}[/]", e["code"], str(e["images"]),
                      names, escape(e["fix"]))
    out.print(table)
    if hidden_info:
        out.print(f"[dim]{hidden_info} info findings not shown[/]")
    out.print(f"{total_rows} findings in all: `--all` lists every one (through a pager on a "
              "terminal), `--json` gives them to scripts")


def print_groups(report: AuditReport, limit: int | None) -> None:
    """The duplicate groups, the first ``limit`` of them (all when None)."""
    groups = report.groups if limit is None else report.groups[:limit]
    for g in groups:
        out.print(f"[bold]{g.kind} duplicates[/] (keep {escape(g.keeper)}): "
                  + ", ".join(escape(m) for m in g.members))
    if len(groups) < len(report.groups):
        out.print(f"... and {len(report.groups) - len(groups)} more duplicate groups (`--all` lists them)")


def all_lines(report: AuditReport) -> Iterator[str]:
    """Every finding (info included) as a plain tab-separated line, then every group."""
    yield "image\tseverity\tfinding\tvalue\tthreshold\tfix"
    for rel, f in rows(report, show_info=True):
        yield f"{rel}\t{f.severity}\t{f.code}: {f.message}\t{fmt(f.value)}\t{fmt(f.threshold)}\t{f.fix}"
    for g in report.groups:
        yield f"{g.kind} duplicates (keep {g.keeper}): {', '.join(g.members)}"


def print_all(report: AuditReport, stream: TextIO | None = None) -> None:
    """:func:`all_lines`, through the pager when stdout is a terminal."""
    stream = stream or sys.stdout
    if stream.isatty():
        pydoc.pager("\n".join(all_lines(report)))
        return
    buf: list[str] = []
    for line in all_lines(report):
        buf.append(line)
        if len(buf) >= 1024:
            stream.write("\n".join(buf) + "\n")
            buf.clear()
    if buf:
        stream.write("\n".join(buf) + "\n")
    stream.flush()


def stream_json(report: AuditReport, extra: dict[str, Any], stream: TextIO | None = None) -> None:
    """Write ``report.to_dict()`` merged with ``extra`` as one JSON object, keys sorted,
    the images one per line, without building the whole text in memory."""
    stream = stream or sys.stdout
    head = {"resolution": report.resolution, "thresholds": report.thresholds.to_dict(),
            "measured": report.measured, "caption_rules": report.caption_rules,
            "seconds": round(report.seconds, 3), "counts": report.counts(),
            "by_code": {k: len(v) for k, v in report.by_code().items()},
            "groups": [g.to_dict() for g in report.groups], **extra}
    keys = sorted([*head, "images"])
    stream.write("{\n")
    for n, key in enumerate(keys):
        stream.write(f"  {json.dumps(key)}: ")
        if key == "images":
            stream.write("[")
            buf: list[str] = []
            for k, a in enumerate(report.images.values()):
                buf.append(("\n    " if k == 0 else ",\n    ")
                           + json.dumps(a.to_dict(), sort_keys=True, default=str))
                if len(buf) >= 256:
                    stream.write("".join(buf))
                    buf.clear()
            stream.write("".join(buf) + ("\n  ]" if report.images else "]"))
        else:
            stream.write(json.dumps(head[key], sort_keys=True, default=str))
        stream.write(",\n" if n < len(keys) - 1 else "\n")
    stream.write("}\n")
    stream.flush()
