"""Loading plugins: folders (seed layout), entry points, requirements, broken plugins, removal, the example."""

import importlib
import sys
import textwrap

from fluxgym_coach.plugins import (ActionContext, NotifType, PluginError, PluginSpec, Project, add_plugin,
                                   available_entry_points, load_plugins, read_config, remove_plugin)
from fluxgym_coach.plugins.loader import config_path

import pytest

SEED_PLUGIN = '''
from fluxgym_coach.plugins import APlugin, ActionContext, ActionResult, Notif, NotifType
from pydantic import BaseModel


class Params(BaseModel):
    greeting: str = "hello"


class MonPlugin(APlugin):
    def __init__(self, project, plugin_path: str, name: str):
        super().__init__(name=name, project=project, plugin_path=plugin_path)
        self.params = Params()
        self.add_action_easy(self.compute_vectors, ['vector'])
        self.add_action_easy(self.compute_clusters, ['group'])

    async def compute_vectors(self, ctx: ActionContext):
        """Count the selection."""
        instances = await self.project.get_instances(ctx.instance_ids)
        return ActionResult(notifs=[Notif(NotifType.INFO, "done", f"{self.params.greeting} {len(instances)}")])

    async def compute_clusters(self, ctx: ActionContext, nb_clusters: int):
        res = ActionResult(value=nb_clusters)
        return res
'''


def seed_plugin_files(requirements: str = "") -> dict[str, str]:
    return {"__init__.py": "from mon_plugin import MonPlugin\n\nplugin_class = MonPlugin\n",
            "mon_plugin.py": SEED_PLUGIN, "requirements.txt": requirements}


async def test_folder_plugin_in_the_seed_layout(plugin_project, write_plugin):
    folder = write_plugin("mon_plugin", seed_plugin_files())
    root = plugin_project.base_path
    spec = add_plugin(root, str(folder))
    assert spec == PluginSpec("mon_plugin", "folder", str(folder.resolve()))
    assert read_config(root).plugins == [spec]
    assert config_path(root).is_file()
    errors = await load_plugins(plugin_project)
    assert errors == {}
    assert set(plugin_project.plugins) == {"core", "similarity", "mon_plugin"}
    ids = [d.id for d in plugin_project.actions()]
    assert "mon_plugin.compute_vectors" in ids and "mon_plugin.compute_clusters" in ids
    assert [d.id for d in plugin_project.actions("vector")] == ["mon_plugin.compute_vectors",
                                                               "similarity.compute_vectors"]
    res = await plugin_project.call_action("mon_plugin.compute_vectors", ActionContext(instance_ids=[1, 2]))
    assert res.notifs[0].message == "hello 2"
    res = await plugin_project.call_action("mon_plugin.compute_clusters", nb_clusters="4")
    assert res.value == 4
    with pytest.raises(PluginError, match="already configured"):
        add_plugin(root, str(folder))


async def test_relative_imports_and_string_annotations(plugin_project, write_plugin):
    folder = write_plugin("futurist", {
        "__init__.py": "from .impl import Futurist as plugin_class\n",
        "impl.py": '''
            from __future__ import annotations
            from enum import Enum
            from fluxgym_coach.plugins import APlugin, ActionContext, ActionResult, PropertyId

            class Mode(Enum):
                a = "a"
                b = "b"

            class Futurist(APlugin):
                def __init__(self, project, plugin_path, name):
                    super().__init__(project=project, plugin_path=plugin_path, name=name)
                    self.add_action_easy(self.act, ["execute"])

                async def act(self, context: ActionContext, k: int = 2, mode: Mode = Mode.a,
                              prop: PropertyId | None = None) -> ActionResult:
                    """String annotations everywhere."""
                    return ActionResult(value=(k * 2, mode.value, prop))
        '''})
    add_plugin(plugin_project.base_path, str(folder))
    assert await load_plugins(plugin_project) == {}
    (desc,) = plugin_project.plugins["futurist"].registered_functions
    assert [(p.name, p.type) for p in desc.params] == [("k", "int"), ("mode", "enum"), ("prop", "property")]
    res = await plugin_project.call_action("futurist.act", k="5", mode="b", prop="3")
    assert res.value == (10, "b", 3)


def test_requirements_need_confirmation(plugin_dataset, write_plugin):
    folder = write_plugin("needs", seed_plugin_files("# a comment\nnumpy>=1.0  # already installed\n\n"))
    asked: list[list[str]] = []

    def decline(reqs):
        asked.append(reqs)
        return False

    spec = add_plugin(plugin_dataset, str(folder), confirm=decline)
    assert asked == [["numpy>=1.0"]]
    assert spec.name == "needs"  # still added: it loads if its requirements are present


def test_confirmed_requirements_are_installed_with_pip(plugin_dataset, write_plugin):
    folder = write_plugin("needs2", seed_plugin_files("numpy\n"))
    asked = []
    add_plugin(plugin_dataset, str(folder), confirm=lambda reqs: asked.append(reqs) or True)
    assert asked == [["numpy"]]  # pip ran (numpy is installed already: no download)
    # an invalid requirement makes pip fail before it looks at any index (no network in tests)
    bad = write_plugin("needs3", seed_plugin_files("not a valid requirement !!!\n"))
    with pytest.raises(PluginError, match="pip could not install"):
        add_plugin(plugin_dataset, str(bad), confirm=lambda reqs: True)


async def test_entry_point_plugin(plugin_project, tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "tinyplug").mkdir(parents=True)
    (site / "tinyplug" / "__init__.py").write_text(textwrap.dedent('''
        from fluxgym_coach.plugins import APlugin, ActionContext, ActionResult

        class TinyPlugin(APlugin):
            """A plugin installed as a package."""
            def __init__(self, project, plugin_path, name):
                super().__init__(project=project, plugin_path=plugin_path, name=name)
                self.add_action_easy(self.ping, ["execute"])

            async def ping(self, ctx: ActionContext):
                """Answer pong."""
                return ActionResult(value="pong")
    '''))
    dist = site / "tinyplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[fluxgym_coach.plugins]\ntiny = tinyplug:TinyPlugin\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    try:
        assert available_entry_points()["tiny"].value == "tinyplug:TinyPlugin"
        spec = add_plugin(plugin_project.base_path, "tiny")
        assert spec == PluginSpec("tiny", "entry_point", "tiny")
        assert await load_plugins(plugin_project) == {}
        assert plugin_project.plugins["tiny"].path == str(site / "tinyplug")
        assert (await plugin_project.call_action("tiny.ping")).value == "pong"
    finally:
        sys.modules.pop("tinyplug", None)
    with pytest.raises(PluginError, match="neither a plugin folder nor an installed plugin"):
        add_plugin(plugin_project.base_path, "not-installed")


async def test_broken_plugins_are_reported_and_the_rest_load(plugin_project, write_plugin):
    root = plugin_project.base_path
    raising = write_plugin("raising", {"__init__.py": '''
        from fluxgym_coach.plugins import APlugin, ActionContext

        class Raising(APlugin):
            def __init__(self, project, plugin_path, name):
                super().__init__(project=project, plugin_path=plugin_path, name=name)
                self.add_action_easy(self.never, ["execute"])
                raise RuntimeError("cannot start: model missing")

            async def never(self, ctx: ActionContext):
                return None

        plugin_class = Raising
    '''})
    syntax = write_plugin("syntax", {"__init__.py": "def broken(:\n"})
    noclass = write_plugin("noclass", {"__init__.py": "x = 1\n"})
    badstart = write_plugin("badstart", {"__init__.py": '''
        from fluxgym_coach.plugins import APlugin

        class BadStart(APlugin):
            async def _start(self):
                raise ValueError("start failed")

        plugin_class = BadStart
    '''})
    good = write_plugin("mon_plugin", seed_plugin_files())
    for folder in (raising, syntax, noclass, badstart, good):
        add_plugin(root, str(folder))
    seen = []
    plugin_project.on_notif(seen.append)
    errors = await load_plugins(plugin_project)
    assert set(errors) == {"raising", "syntax", "noclass", "badstart"}
    assert "model missing" in errors["raising"] and "SyntaxError" in errors["syntax"]
    assert "plugin_class" in errors["noclass"] and "start failed" in errors["badstart"]
    assert set(plugin_project.plugins) == {"core", "similarity", "mon_plugin"}
    assert not [d for d in plugin_project.actions() if d.plugin == "raising"]  # its registration was undone
    assert {n.name for n in seen} == {f"plugin {p} failed to load" for p in errors}
    assert all(n.type is NotifType.ERROR and "Traceback" in n.data["traceback"] for n in seen)


async def test_remove_plugin_deletes_its_data(plugin_project, write_plugin):
    root = plugin_project.base_path
    folder = write_plugin("mon_plugin", seed_plugin_files())
    add_plugin(root, str(folder))
    await load_plugins(plugin_project)
    plugin = plugin_project.plugins["mon_plugin"]
    plugin.update_params({"greeting": "salut"})
    (plugin.data_path / "cache.bin").write_bytes(b"x")
    remove_plugin(root, "mon_plugin", project=plugin_project)
    assert not plugin.data_path.exists()
    assert plugin_project.get_plugin_data("mon_plugin.base") is None
    assert "mon_plugin" not in plugin_project.plugins and read_config(root).plugins == []
    assert not [d for d in plugin_project.actions() if d.plugin == "mon_plugin"]
    assert folder.is_dir()  # the plugin's own code is never deleted
    remove_plugin(root, "similarity")
    assert read_config(root).disabled_builtins == ["similarity"]
    with Project.open(root) as fresh:
        await load_plugins(fresh)
        assert set(fresh.plugins) == {"core"}
    with pytest.raises(PluginError, match="no plugin"):
        remove_plugin(root, "ghost")


async def test_the_seed_example_hue_plugin(plugin_project, hue_plugin_dir):
    add_plugin(plugin_project.base_path, str(hue_plugin_dir))
    assert await load_plugins(plugin_project) == {}
    plugin = plugin_project.plugins["hue_plugin"]
    assert [vt.params for vt in plugin.vector_types] == [{"model": "dominant_hue"}]
    res = await plugin_project.call_action("hue_plugin.compute_clusters", nb_clusters=2)
    assert res.notifs[0].type is NotifType.WARNING  # no vectors yet
    res = await plugin_project.call_action("hue_plugin.compute_vectors")
    assert res.notifs[0].message == "All vectors were computed"
    instances = plugin_project.instances()
    vectors = plugin_project.vectors(plugin.vector_types[0].id)
    assert len(vectors) == len({i.sha1 for i in instances}) == 6
    hue = {v.sha1: v.data.tolist()[0] for v in vectors}
    assert all(0 <= h <= 255 for h in hue.values())
    res = await plugin_project.call_action("hue_plugin.compute_clusters", nb_clusters=3)
    assert res.notifs is None and len(res.groups) == 3
    assert sorted(i for g in res.groups for i in g.ids) == sorted(i.id for i in instances)
    by_id = {i.id: i for i in instances}
    ranges = [[hue[by_id[i].sha1] for i in g.ids] for g in res.groups]
    assert all(max(a) <= min(b) for a, b in zip(ranges, ranges[1:]))  # groups are ordered by hue
    lo, hi = min(ranges[0]), max(ranges[0])
    assert res.groups[0].name == f"Hue group: {lo:g}-{hi:g}"
