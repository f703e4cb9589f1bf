"""One :class:`Finding` for every check (image audit, caption rules, buckets), one :class:`Severity`.

A finding is what a check says about one image: a stable ``code``, a
:class:`Severity`, one sentence, what was measured (``value``) against what
(``threshold``), the ``fix``, its ``category`` and extra ``detail``. The
audit, the caption rules, the HTML report, the TUI and the plugins all use
this class, so a finding made anywhere is shown the same way everywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How bad a finding is: ``error`` (training fails or learns the wrong thing),
    ``warning`` (worth fixing), ``info`` (for the record). Compares equal to its
    string value, so ``finding.severity == "error"`` and JSON output keep working."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for error, 1 for warning, 2 for info (sort key: worst first)."""
        return _RANK[self]


_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def severity_rank(severity: str) -> int:
    """:attr:`Severity.rank` of a severity or its string (``"error"`` -> 0); a sort key,
    worst first. Raises ValueError for a string that is no severity."""
    return Severity(severity).rank


@dataclass(slots=True)
class Finding:
    """One check's result for one image (see the module docstring).

    ``severity`` accepts a :class:`Severity` or its string value; anything
    else raises ValueError. ``category`` is one of ``"file"``,
    ``"resolution"``, ``"quality"``, ``"duplicate"``, ``"caption"``,
    ``"bucket"``.
    """

    code: str
    severity: Severity
    message: str
    value: Any = None
    threshold: Any = None
    fix: str = ""
    category: str = "quality"
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.severity = Severity(self.severity)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``severity`` as its string value)."""
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


__all__ = ["Finding", "Severity"]
