"""Every module of the package imports: a merge or a move that leaves a name undefined at
import time (a NameError in a class statement, a removed import) fails here by name, not
later as "command unavailable" in some CLI test."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import fluxgym_coach

MODULES = sorted(m.name for m in pkgutil.walk_packages(fluxgym_coach.__path__, "fluxgym_coach."))


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:  # an optional extra (e.g. torch for spandrel) is absent
        if exc.name and exc.name.split(".")[0] == "fluxgym_coach":
            raise
        pytest.skip(f"optional dependency {exc.name} is not installed")
