"""One exception root: every exception class of the package derives from FluxgymCoachError,
and the CLI maps an error to its exit code in one place (the root group, exit_code_for)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest
from typer.testing import CliRunner

import fluxgym_coach
from fluxgym_coach import errors
from fluxgym_coach.cli import app
from fluxgym_coach.cli.common import EXIT_USAGE, exit_code_for
from fluxgym_coach.errors import FluxgymCoachError

#: Exception classes allowed outside the root, with the reason.
OUTSIDE_ROOT = {
    "fluxgym_coach.testing.fake_forge_api._HTTPError": "the fake server's own reply signal, caught in its handler",
    "fluxgym_coach.testing.fake_forge_api._Drop": "the fake server's own drop signal, caught in its handler",
}


def _package_exceptions() -> tuple[dict[str, type[BaseException]], list[str]]:
    """``{dotted name: class}`` of every exception class defined in the package, and
    the modules that cannot be imported here (an optional extra missing)."""
    found, skipped = {}, []
    for info in pkgutil.walk_packages(fluxgym_coach.__path__, "fluxgym_coach."):
        try:
            module = importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").startswith("fluxgym_coach"):
                raise
            skipped.append(f"{info.name} ({exc.name})")
            continue
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException)
                    and obj.__module__ == module.__name__):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found, skipped


def test_every_exception_class_of_the_package_derives_from_the_root():
    found, _ = _package_exceptions()
    assert len(found) >= 20  # the walk reaches the stage packages
    outside = sorted(name for name, cls in found.items()
                     if not issubclass(cls, FluxgymCoachError) and name not in OUTSIDE_ROOT)
    assert not outside, f"exception classes outside FluxgymCoachError: {outside}"
    stale = sorted(name for name in OUTSIDE_ROOT
                   if name not in found or issubclass(found[name], FluxgymCoachError))
    assert not stale, f"OUTSIDE_ROOT entries now under the root (remove them): {stale}"


def test_errors_that_were_a_builtin_kind_still_are():
    from fluxgym_coach.core import ForgeOnlyOption
    from fluxgym_coach.enhance.server_io import ResultCheckError
    from fluxgym_coach.limits import ResizeLimitError
    from fluxgym_coach.plugins.commit import CommitError
    from fluxgym_coach.store import StoreError

    from fluxgym_coach.audit.buckets import BucketError

    for cls in (ForgeOnlyOption, ResultCheckError, ResizeLimitError, CommitError, BucketError):
        assert issubclass(cls, ValueError) and issubclass(cls, FluxgymCoachError)
    assert issubclass(StoreError, RuntimeError)


def _documented_exit_codes() -> dict[str, int]:
    """``{class name: exit code}`` from the table in :mod:`fluxgym_coach.errors`."""
    rows = re.findall(r"^``(\w+)``\s+.+?\s+(\d)\s*$", errors.__doc__ or "", re.MULTILINE)
    return {name: int(code) for name, code in rows}


def test_exit_codes_are_the_ones_the_errors_table_documents():
    table = _documented_exit_codes()
    assert len(table) >= 8
    found, _ = _package_exceptions()
    by_name = {cls.__name__: cls for cls in found.values()}
    for name, code in table.items():
        cls = by_name[name]
        exc = cls.__new__(cls)  # the mapping looks at the class only
        assert exit_code_for(exc) == code, name
    assert exit_code_for(ValueError("x")) == EXIT_USAGE
    assert exit_code_for(RuntimeError("a bug")) == 1


def test_a_command_leaving_an_error_unhandled_exits_through_the_root_group(tmp_path):
    missing = tmp_path / "no-such-folder"
    result = CliRunner().invoke(app, ["review", str(missing)])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "error:" in result.output and "no-such-folder" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# A BackendError reaching the root group (exit 3, the reason on stderr) is covered by the
# real unreachable servers of tests/test_enhance_cli.py and tests/test_caption_cli.py: the
# enhance and caption commands no longer catch it themselves.


@pytest.mark.parametrize("cls", [FluxgymCoachError])
def test_the_root_is_a_plain_exception(cls):
    assert cls.__bases__ == (Exception,)
