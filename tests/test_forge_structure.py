"""Shape of the enhancement and caption jobs (issue 10 item 4): small named steps, backend
Protocols that declare what callers use, unchanged public entry points."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from fluxgym_coach.captions import runner as caption_job, job as captioning
from fluxgym_coach.enhance import job as pipeline
from fluxgym_coach.enhance.backends.base import EnhanceBackend
from fluxgym_coach.captions.backends.base import CaptionBackend
from fluxgym_coach.enhance.backends.forge import ForgeBackend
from fluxgym_coach.enhance.backends.local import LocalBackend

PACKAGE = Path(pipeline.__file__).parents[1]
MODULES = ["enhance/job.py", "enhance/chunks.py", "jobs.py", "enhance/results.py", "enhance/server_io.py",
           "captions/job.py", "captions/runner.py", "enhance/backends/forge.py",
           "enhance/backends/forge_client.py", "enhance/backends/base.py", "captions/backends/openai.py",
           "testing/fake_forge.py", "testing/fake_forge_api.py", "testing/fake_openai.py"]


@pytest.mark.parametrize("module", MODULES)
def test_no_function_over_80_lines_and_no_module_over_520(module):
    source = (PACKAGE / module).read_text()
    assert len(source.splitlines()) <= 520
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(ast.parse(source))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno >= 80]
    assert not long


def test_the_jobs_are_classes_with_named_steps():
    for name in ("identify", "plan", "chunk", "send", "poll", "journal_done", "journal_failed", "run"):
        assert callable(getattr(pipeline.EnhanceJob, name))
    for name in ("identify", "plan", "send", "journal_done", "journal_failed", "run"):
        assert callable(getattr(caption_job.CaptionJob, name))


def test_public_entry_points_keep_their_signatures():
    enh = inspect.signature(pipeline.run_enhance)
    assert list(enh.parameters) == ["sources", "backend", "params", "cache", "lookup", "store",
                                    "on_event", "cancel", "progress_interval"]
    cap = inspect.signature(captioning.run_caption)
    assert list(cap.parameters) == ["dataset", "backend", "relpaths", "mode", "trigger", "cache",
                                    "on_event", "cancel"]


async def test_backends_implement_the_whole_protocol():
    local, forge = LocalBackend(), ForgeBackend("http://127.0.0.1:9")
    try:
        for backend in (local, forge):
            assert isinstance(backend, EnhanceBackend)
            assert backend.concurrency >= 1 and backend.warnings == []
        assert await local.progress_in_flight() is None
        assert await forge.progress_in_flight() == 0.0
        for member in ("concurrency", "warnings", "progress_in_flight"):
            assert member in dir(EnhanceBackend) or member in EnhanceBackend.__annotations__
    finally:
        await local.aclose()
        await forge.aclose()
    for name in captioning.BACKENDS:
        if name == "florence2":
            continue  # needs its model folder to build
        backend = captioning.get_caption_backend(name, **({"model": "m"} if name == "openai" else {}))
        assert isinstance(backend, CaptionBackend)


def test_no_caller_reads_backend_members_with_getattr():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for member in ("concurrency", "warnings", "progress_in_flight"):
            if f'getattr(backend, "{member}"' in text or f'getattr(engine, "{member}"' in text:
                offenders.append(f"{path.relative_to(PACKAGE)}: {member}")
    assert not offenders
