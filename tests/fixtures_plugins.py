"""Fixtures of the plugin tests (auto-loaded by conftest.py)."""

import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fluxgym_coach.plugins import Project, load_plugins


@pytest.fixture
def plugin_dataset(example_dataset) -> Path:
    """:func:`example_dataset` without any store a local run left in examples/dataset
    (``.fluxgym-coach/`` is git-ignored, so a fresh clone has none)."""
    shutil.rmtree(example_dataset / ".fluxgym-coach", ignore_errors=True)
    return example_dataset


@pytest.fixture
def plugin_project(plugin_dataset) -> Iterator[Project]:
    """A scanned copy of examples/dataset opened as a plugin Project (no plugin loaded)."""
    project = Project.open(plugin_dataset)
    project.dataset.scan()
    yield project
    project.close()


@pytest.fixture
async def loaded_project(plugin_project) -> Project:
    """:func:`plugin_project` with the built-in plugins loaded and their tasks done."""
    errors = await load_plugins(plugin_project)
    assert errors == {}
    await plugin_project.task_queue.join()
    return plugin_project


@pytest.fixture
def write_plugin(tmp_path) -> Callable[..., Path]:
    """``write_plugin(folder_name, {filename: source})`` writes a plugin folder under
    ``tmp_path/plugins`` and returns it; imported modules are cleaned up afterwards."""
    before = set(sys.modules)
    path_before = list(sys.path)

    def write(name: str, files: dict[str, str]) -> Path:
        folder = tmp_path / "plugins" / name
        folder.mkdir(parents=True)
        for fname, text in files.items():
            (folder / fname).write_text(textwrap.dedent(text), encoding="utf-8")
        return folder

    yield write
    for mod in set(sys.modules) - before:
        if mod.startswith("fluxgym_coach_plugin_") or mod in ("mon_plugin", "hue_plugin", "tinyplug"):
            sys.modules.pop(mod, None)
    sys.path[:] = path_before


@pytest.fixture
def hue_plugin_dir(tmp_path) -> Path:
    """A copy of examples/plugins/hue_plugin (the seed's worked example)."""
    src = Path(__file__).parent.parent / "examples" / "plugins" / "hue_plugin"
    dst = tmp_path / "hue_plugin"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst
