"""Status StrEnums keep today's strings; names moved by the module splits stay importable from where they were."""

from __future__ import annotations

import importlib
import json
import sqlite3

import pytest

from fluxgym_coach.findings import Severity
from fluxgym_coach.statuses import (CaptionOrigin, CaptionStatus, CaptionWrite, DecisionKind, EnhanceStatus,
                                    JobStatus, ReviewStatus)

LEGACY = {
    JobStatus: {"running", "cancelling", "done", "cancelled", "failed"},
    ReviewStatus: {"pending", "accepted", "rejected", "excluded", "unreviewed"},
    DecisionKind: {"accept", "reject", "reprocess", "caption_edit", "exclude", "include"},
    EnhanceStatus: {"pending", "enhanced", "cached", "skipped", "failed", "copied", "unchanged", "cancelled",
                    "exists"},
    CaptionStatus: {"pending", "captioned", "cached", "resumed", "skipped", "failed"},
    CaptionOrigin: {"missing", "draft", "generated", "edited"},
    CaptionWrite: {"written", "removed", "unchanged"},
    Severity: {"error", "warning", "info"},
}


@pytest.mark.parametrize("enum", list(LEGACY), ids=lambda e: e.__name__)
def test_members_are_the_strings_the_store_and_json_hold(enum):
    assert {m.value for m in enum} == LEGACY[enum]
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (s TEXT)")
    for member in enum:
        assert member == member.value and f"{member}" == member.value
        assert json.dumps({"status": member}) == json.dumps({"status": member.value})
        conn.execute("INSERT INTO t VALUES (?)", (member,))
    stored = [r[0] for r in conn.execute("SELECT s FROM t")]
    assert stored == [m.value for m in enum] and all(type(s) is str for s in stored)


def test_feedback_constants_are_the_enum_members():
    from fluxgym_coach import feedback

    assert feedback.ACCEPT is DecisionKind.ACCEPT and feedback.EXCLUDED is ReviewStatus.EXCLUDED
    assert set(feedback.DECISIONS) == set(DecisionKind)


MOVED = [  # (old module, name, new module)
    ("fluxgym_coach.captions.text", "lint", "fluxgym_coach.captions.linting"),
    ("fluxgym_coach.captions.text", "lint_many", "fluxgym_coach.captions.linting"),
    ("fluxgym_coach.captions.text", "CaptionFinding", "fluxgym_coach.captions.linting"),
    ("fluxgym_coach.captions.text", "count_tokens", "fluxgym_coach.captions.tokens"),
    ("fluxgym_coach.captions.text", "default_counter", "fluxgym_coach.captions.tokens"),
    ("fluxgym_coach.captions.text", "CLIP_TOKENIZER_ENV", "fluxgym_coach.captions.tokens"),
    ("fluxgym_coach.captions.text", "bulk_prefix", "fluxgym_coach.captions.bulk"),
    ("fluxgym_coach.captions.text", "undo_operation", "fluxgym_coach.captions.bulk"),
    ("fluxgym_coach.captions", "lint", "fluxgym_coach.captions.linting"),
    ("fluxgym_coach.captions", "BulkReport", "fluxgym_coach.captions.bulk"),
    ("fluxgym_coach.feedback", "learn_defaults", "fluxgym_coach.learning"),
    ("fluxgym_coach.feedback", "MIN_DECISIONS", "fluxgym_coach.learning"),
    ("fluxgym_coach.feedback", "acceptance_rates", "fluxgym_coach.learning"),
    ("fluxgym_coach.plugins.project", "CommitError", "fluxgym_coach.plugins.commit"),
    ("fluxgym_coach.plugins.project", "COMPUTED_PROPERTIES", "fluxgym_coach.plugins.commit"),
    ("fluxgym_coach.plugins", "CommitError", "fluxgym_coach.plugins.commit"),
    ("fluxgym_coach.tui.plugin_views", "FunctionForm", "fluxgym_coach.tui.plugin_screens"),
    ("fluxgym_coach.tui.plugin_views", "notify_result", "fluxgym_coach.tui.plugin_screens"),
    ("fluxgym_coach.events", "JobStatus", "fluxgym_coach.statuses"),
]


@pytest.mark.parametrize("old, name, new", MOVED, ids=lambda v: v if isinstance(v, str) else "")
def test_moved_names_are_the_same_objects_at_their_old_address(old, name, new):
    importlib.import_module(new)  # the submodule loaded first must not shadow anything
    assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)


def test_the_lint_submodule_never_shadows_the_lint_function():
    import fluxgym_coach.captions as captions
    import fluxgym_coach.captions.linting  # noqa: F401  (binds the submodule on the package)

    assert callable(captions.lint) and captions.lint.__name__ == "lint"
    assert captions.lint("ohwx, a red fox sitting in the snow", "ohwx") == []
