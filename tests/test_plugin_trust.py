"""A dataset's own ``plugins.toml`` runs no code until the user trusts the plugin folder
(scan, prepare, plugins list/run, the TUI); trust is kept outside the dataset and lapses
when the folder's files change."""

import json
import os
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from fluxgym_coach.cli import app
from fluxgym_coach.plugins import PluginUntrusted, Project, load_plugins
from fluxgym_coach.plugins import trust
from fluxgym_coach.plugins.loader import PluginConfig, PluginSpec, config_path, resolve_class, write_config

runner = CliRunner()

HOSTILE = '''
from pathlib import Path
Path({marker!r}).write_text("ran")
from fluxgym_coach.plugins import APlugin


class Hostile(APlugin):
    def __init__(self, project, plugin_path, name):
        super().__init__(name=name, project=project, plugin_path=plugin_path)


plugin_class = Hostile
'''


@pytest.fixture
def hostile_dataset(example_dataset, tmp_path):
    """The example dataset as a stranger would ship it: ``.fluxgym-coach/plugins.toml``
    naming a plugin folder inside the dataset whose import writes ``tmp_path/ran.marker``."""
    marker = tmp_path / "ran.marker"
    folder = example_dataset / ".fluxgym-coach" / "plugins" / "helper"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(textwrap.dedent(HOSTILE.format(marker=str(marker))), encoding="utf-8")
    write_config(example_dataset, PluginConfig([PluginSpec("helper", "folder", str(folder))]))
    before = set(sys.modules)
    yield example_dataset, folder, marker
    for mod in set(sys.modules) - before:
        if mod.startswith("fluxgym_coach_plugin_"):
            sys.modules.pop(mod, None)
    if str(folder) in sys.path:
        sys.path.remove(str(folder))


def test_scan_prepare_and_list_run_nothing_untrusted(hostile_dataset, tmp_path):
    root, folder, marker = hostile_dataset
    r = runner.invoke(app, ["scan", str(root)])
    assert r.exit_code == 0, r.output
    assert "not trusted" in r.output and "fluxgym-coach plugins trust" in r.output
    r = runner.invoke(app, ["prepare", str(root), "-o", str(tmp_path / "fg"), "-t", "ohwx", "-r", "512"])
    assert not marker.exists(), r.output
    r = runner.invoke(app, ["plugins", "list", str(root)])
    assert r.exit_code == 0, r.output
    assert f"fluxgym-coach plugins trust {folder.resolve()}" in r.output
    r = runner.invoke(app, ["plugins", "list", str(root), "--json"])
    (helper,) = [p for p in json.loads(r.stdout)["plugins"] if p["name"] == "helper"]
    assert helper["status"] == "untrusted"
    assert helper["trust_command"] == f"fluxgym-coach plugins trust {folder.resolve()}"
    r = runner.invoke(app, ["plugins", "run", str(root), "core.audit", "--no-scan"])
    assert not marker.exists()
    assert not (root / ".fluxgym-coach" / trust.TRUST_FILENAME).exists()  # nothing recorded in the dataset


async def test_tui_plugin_loading_runs_nothing_untrusted(hostile_dataset, make_tui_app):
    from tests.fixtures_tui import settle
    root, folder, marker = hostile_dataset
    app_ = make_tui_app(root, plugins=True)
    async with app_.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app_)
        session = app_.plugin_session
        await session.started.wait()
        assert "helper" in session.project.untrusted
        assert "core" in session.project.plugins  # built-ins still load
    assert not marker.exists()


async def test_trusted_folder_runs_until_its_files_change(hostile_dataset):
    root, folder, marker = hostile_dataset
    r = runner.invoke(app, ["plugins", "trust", str(folder)])
    assert r.exit_code == 0, r.output
    with Project.open(root) as project:
        assert await load_plugins(project) == {}
        assert "helper" in project.plugins
    assert marker.read_text() == "ran"
    marker.unlink()
    sys.modules.pop(next(m for m in sys.modules if m.startswith("fluxgym_coach_plugin_helper")))
    # one edited byte (or an added file) and the folder is a stranger again
    (folder / "extra.py").write_text("x = 1\n")
    with pytest.raises(PluginUntrusted) as info:
        resolve_class(PluginSpec("helper", "folder", str(folder)))
    assert info.value.command == trust.trust_command(folder)
    with Project.open(root) as project:
        errors = await load_plugins(project)
        assert "not trusted" in errors["helper"]
    assert not marker.exists()
    r = runner.invoke(app, ["plugins", "untrust", str(folder)])
    assert r.exit_code == 0 and "was not trusted" not in r.output


def test_trust_record_is_outside_the_dataset_and_keyed_by_resolved_path(hostile_dataset, tmp_path):
    root, folder, _ = hostile_dataset
    link = tmp_path / "link"
    os.symlink(folder, link)
    trust.trust_folder(link)
    assert trust.trust_path().parent == trust.config_dir()
    assert os.path.commonpath([trust.trust_path(), root]) != str(root)
    data = json.loads(trust.trust_path().read_text())
    assert list(data["folders"]) == [str(folder.resolve())]
    assert trust.is_trusted(folder) and trust.is_trusted(link)
    # python's own bytecode cache does not untrust a folder
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert trust.is_trusted(folder)
    (folder / "__init__.py").write_text("changed = True\n")
    assert not trust.is_trusted(folder)


def test_dataset_config_cannot_name_an_arbitrary_module_as_builtin(example_dataset):
    with pytest.raises(Exception, match="not a built-in plugin"):
        resolve_class(PluginSpec("x", "builtin", "os:system"))
    assert config_path(example_dataset).parent.name == ".fluxgym-coach"
