"""The plugin API of seeds 000/001, method by method, on a real store (SQLite) and real images."""

import asyncio
import shutil
import threading
from enum import Enum
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from fluxgym_coach.plugins import (ActionContext, ActionError, ActionResult, APlugin, CommitError, DbCommit,
                                   DeleteFolderConfirm, FunctionDescription, Group, ImageProperty,
                                   ImagePropertyKey, Instance, InstanceProperty, InstancePropertyKey, Notif,
                                   NotifFunction, NotifType, OwnVectorType, ParamDescription,
                                   PluginProjectInterface, Project, PropertyId, PropertyMode, PropertyType,
                                   Score, ScoreList, Task, Vector, VectorType, notify_scan, scan_and_notify,
                                   scan_snapshot, to_jsonable)


class Colour(Enum):
    red = "red"
    blue = "blue"


class DemoParams(BaseModel):
    auto_process_imports: bool = True
    batch_size: int = 32
    confidence_threshold: float = 0.75
    output_format: str = "json"


class DemoPlugin(APlugin):
    """A plugin used by the tests."""

    def __init__(self, project, plugin_path: str, name: str):
        super().__init__(name=name, project=project, plugin_path=plugin_path)
        self.params = DemoParams()
        self.started = False
        self.echo_description = self.add_action_easy(self.echo, ["execute"])
        self.add_action_easy(self.boom, ["execute"])
        self.add_action_easy(self.count_sync, ["execute"])

    async def _start(self):
        self.started = True
        if len(self.vector_types) == 0:
            vec_type = self.project.create_vector_type({"model": "fake_vector"})
            await self.project.add_vector_type(vec_type)

    async def echo(self, ctx: ActionContext, n: int, ratio: float = 0.5, label: str = "x", flag: bool = False,
                   prop: PropertyId = None, colour: Colour = Colour.red, vec: VectorType = None,
                   own: OwnVectorType = None, where: Path = None, unsupported: list[int] = None):
        """Echo the inputs back.
        @n: how many
        @ratio: a fraction
        """
        return ActionResult(value={"n": n, "ratio": ratio, "label": label, "flag": flag, "prop": prop,
                                   "colour": colour, "vec": vec, "own": own, "where": where,
                                   "ids": ctx.instance_ids})

    async def boom(self, ctx: ActionContext):
        """Always fails."""
        return 1 / 0

    def count_sync(self, ctx: ActionContext) -> int:
        """A synchronous action returning a plain value."""
        return len(ctx.instance_ids or [])


async def _demo(project: Project, name: str = "demo") -> DemoPlugin:
    plugin = DemoPlugin(project, "tests", name)
    project.plugins[name] = plugin
    await plugin.start()
    return plugin


# -- APlugin ---------------------------------------------------------------------------

async def test_aplugin_attributes(plugin_project):
    plugin = await _demo(plugin_project)
    assert plugin.name == "demo" and plugin.path == "tests"
    assert isinstance(plugin.project, PluginProjectInterface)
    assert plugin._project is plugin_project
    assert plugin.base_key == "demo.base"
    assert plugin.data_path == plugin_project.base_path / ".fluxgym-coach" / "plugin_data" / "demo"
    assert plugin.data_path.is_dir()
    assert plugin.started
    assert [f.id for f in plugin.registered_functions] == ["demo.echo", "demo.boom", "demo.count_sync"]
    # _start created a vector type and vector_types was updated automatically
    assert [vt.params for vt in plugin.vector_types] == [{"model": "fake_vector"}]
    assert plugin.vector_types[0].id > 0 and plugin.vector_types[0].source == "demo"


async def test_aplugin_accepts_an_interface_as_project(plugin_project):
    iface = PluginProjectInterface(plugin_project, "viaiface")
    plugin = DemoPlugin(iface, "tests", "viaiface")
    assert plugin.project is iface and plugin._project is plugin_project


async def test_params_are_persisted_under_base_key(plugin_project):
    plugin = await _demo(plugin_project)
    plugin.update_params({"batch_size": 8, "output_format": "csv"})
    assert plugin_project.get_plugin_data("demo.base")["batch_size"] == 8
    with pytest.raises(ValidationError):
        plugin.update_params({"batch_size": "many"})
    assert plugin_project.get_plugin_data("demo.base")["batch_size"] == 8
    again = DemoPlugin(plugin_project, "tests", "demo")
    await again.start()
    assert again.params.batch_size == 8 and again.params.output_format == "csv"
    assert again.params.confidence_threshold == 0.75


async def test_add_action_easy_builds_the_description(plugin_project):
    plugin = await _demo(plugin_project)
    d = plugin.echo_description
    assert d.id == "demo.echo" and d.name == "echo" and d.hooks == ["execute"]
    assert d.description == "Echo the inputs back."
    by = {p.name: p for p in d.params}
    assert {n: p.type for n, p in by.items()} == {
        "n": "int", "ratio": "float", "label": "str", "flag": "bool", "prop": "property", "colour": "enum",
        "vec": "vector_type", "own": "own_vector_type", "where": "path"}
    assert by["n"].required and by["n"].description == "how many"
    assert by["ratio"].default_value == 0.5 and by["ratio"].description == "a fraction"
    assert by["colour"].possible_values == ["red", "blue"] and by["colour"].default_value == "red"
    assert any("unsupported" in w for w in plugin.load_warnings)
    with pytest.raises(ValueError):
        plugin.add_action_easy(plugin.echo, ["nowhere"])


async def test_add_action_with_a_handmade_description(plugin_project):
    plugin = await _demo(plugin_project)

    async def double(ctx: ActionContext, x: int):
        return ActionResult(value=x * 2)

    desc = FunctionDescription(id="demo.twice", name="twice", label="Twice", description="x * 2",
                               params=[ParamDescription(name="x", type="int", required=True)], hooks=["execute"])
    assert plugin.add_action(double, desc) is desc
    assert desc in plugin.registered_functions
    assert (await plugin_project.call_action("demo.twice", x="21")).value == 42


async def test_call_action_coerces_inputs(plugin_project):
    await _demo(plugin_project)
    vt = plugin_project.vector_types(source="demo")[0]
    ctx = ActionContext(instance_ids=[1, 2], ui_inputs={
        "n": "3", "ratio": "0.25", "flag": "yes", "prop": "7", "colour": "blue", "vec": str(vt.id),
        "own": "fake_vector", "where": "/tmp/x"})
    res = await plugin_project.call_action("demo.echo", ctx)
    assert res.notifs is None
    v = res.value
    assert v["n"] == 3 and v["ratio"] == 0.25 and v["flag"] is True and v["label"] == "x"
    assert v["prop"] == 7 and isinstance(v["prop"], PropertyId)
    assert v["colour"] is Colour.blue and v["vec"] == vt and v["own"] == vt
    assert v["where"] == Path("/tmp/x") and v["ids"] == [1, 2]
    with pytest.raises(ActionError, match="n"):
        await plugin_project.call_action("demo.echo", ActionContext(ui_inputs={"n": "many"}))
    with pytest.raises(ActionError, match="missing"):
        await plugin_project.call_action("demo.echo")
    with pytest.raises(ActionError, match="unknown parameter"):
        await plugin_project.call_action("demo.echo", n=1, nope=2)
    with pytest.raises(ActionError, match="no action"):
        await plugin_project.call_action("demo.missing")


async def test_an_action_that_raises_becomes_an_error_notification(plugin_project):
    await _demo(plugin_project)
    res = await plugin_project.call_action("demo.boom")
    assert res.has_error
    (n,) = res.notifs
    assert n.type is NotifType.ERROR and n.name == "demo.boom"
    assert "ZeroDivisionError" in n.message
    assert "in boom" in n.data["traceback"] and "1 / 0" in n.data["traceback"]


async def test_sync_action_and_plain_value(plugin_project):
    await _demo(plugin_project)
    res = await plugin_project.call_action("count_sync", ActionContext(instance_ids=[1, 2, 3]))
    assert isinstance(res, ActionResult) and res.value == 3


def test_result_dataclasses_have_the_seed_fields():
    s = Score(0.5, 0, 1)
    assert (s.description, s.max_is_best) == ("", True)
    sl = ScoreList([1.0, 2.0], 0, 2, "d", max_is_best=False)
    g = Group(ids=[1, 2], scores=sl, score=s, name="g")
    assert g.sha1s is None
    r = ActionResult()
    assert (r.groups, r.notifs, r.value) == (None, None, None)
    n = Notif(NotifType.INFO, "Succès", "Traitement terminé")
    assert (n.name, n.message, n.data, n.functions) == ("Succès", "Traitement terminé", None, None)
    assert [t.value for t in NotifType] == ["debug", "info", "warning", "error"]
    f = NotifFunction("p.f", ActionContext(instance_ids=[1]), "go")
    data = to_jsonable(ActionResult(groups=[g], notifs=[Notif(NotifType.WARNING, functions=[f])],
                                    value=np.float32(1.5)))
    assert data["groups"][0]["scores"]["max_is_best"] is False
    assert data["notifs"][0]["type"] == "warning" and data["notifs"][0]["functions"][0]["function"] == "p.f"
    assert data["value"] == 1.5
    assert ActionContext().instance_ids is None


# -- PluginProjectInterface: reads ---------------------------------------------------------

async def test_get_instances_by_ids_sha1s_and_all(plugin_project):
    iface = PluginProjectInterface(plugin_project, "t")
    everyone = await iface.get_instances()
    records = {r.relpath: r for r in plugin_project.store.images()}
    assert [i.relpath for i in everyone] == sorted(records)
    first = everyone[0]
    rec = records[first.relpath]
    assert first.id == rec.id and first.sha1 == rec.digest and first.ahash == rec.phash
    assert Path(first.url).is_file() and first.url.endswith(first.relpath)
    assert (first.width, first.height) == rec.display_size
    assert first.name == Path(first.relpath).stem and first.extension == Path(first.relpath).suffix[1:]
    some = await iface.get_instances(ids=[everyone[1].id, everyone[2].id])
    assert [i.id for i in some] == [everyone[1].id, everyone[2].id]
    by_sha = await iface.get_instances(sha1s=[everyone[3].sha1])
    assert [i.id for i in by_sha] == [everyone[3].id]
    both = await iface.get_instances(ids=[everyone[0].id], sha1s=[everyone[3].sha1])  # OR
    assert {i.id for i in both} == {everyone[0].id, everyone[3].id}
    assert await iface.get_instances(ids=[]) == []


async def test_get_folders(plugin_dataset):
    sub = plugin_dataset / "sub" / "deeper"
    sub.mkdir(parents=True)
    shutil.copy(plugin_dataset / "horse.png", sub / "horse2.png")
    with Project.open(plugin_dataset) as project:
        project.dataset.scan()
        iface = PluginProjectInterface(project, "t")
        folders = {f.path: f for f in await iface.get_folders()}
        assert set(folders) == {"", "sub", "sub/deeper"}
        assert folders["sub/deeper"].parent == folders["sub"].id
        assert folders["sub"].parent == folders[""].id and folders["sub/deeper"].name == "deeper"
        horse2 = next(i for i in await iface.get_instances() if i.relpath == "sub/deeper/horse2.png")
        assert horse2.folder_id == folders["sub/deeper"].id


async def test_get_properties_including_computed(plugin_project):
    iface = PluginProjectInterface(plugin_project, "t")
    assert await iface.get_properties() == []
    computed = await iface.get_properties(computed=True)
    names = {p.name: p for p in computed}
    assert {"relpath", "sha1", "width", "height", "caption"} <= set(names)
    insts = await iface.get_instances()
    vals = await iface.get_instance_property_values(property_ids=[names["caption"].id])
    captions = {v.instance_id: v.value for v in vals}
    chelsea = next(i for i in insts if i.relpath == "chelsea.png")
    assert captions[chelsea.id] == (plugin_project.base_path / "chelsea.txt").read_text()


# -- commits -----------------------------------------------------------------------------

async def _commit_with_everything(iface: PluginProjectInterface, inst_a: Instance, inst_b: Instance) -> DbCommit:
    group = iface.create_property_group("Review")
    prop = iface.create_property("quality", PropertyType.tag, PropertyMode.id)
    prop.property_group_id = group.id
    note = iface.create_property("note", PropertyType.string, PropertyMode.sha1)
    parent = iface.create_tag(prop.id, "good")
    child = iface.create_tag(prop.id, "sharp", parent_ids=[parent.id], color=3)
    assert all(x < 0 for x in (group.id, prop.id, note.id, parent.id, child.id))
    return DbCommit(property_groups=[group], properties=[prop, note], tags=[parent, child],
                    instance_values=[InstanceProperty(prop.id, inst_a.id, [child.id]),
                                     InstanceProperty(prop.id, inst_b.id, [parent.id])],
                    image_values=[ImageProperty(note.id, inst_a.sha1, "keep")])


async def test_do_undo_redo_with_negative_ids(plugin_project):
    iface = PluginProjectInterface(plugin_project, "t")
    a, b = (await iface.get_instances())[:2]
    applied = await iface.do(await _commit_with_everything(iface, a, b))
    prop, note = applied.properties
    group = applied.property_groups[0]
    parent, child = applied.tags
    assert min(prop.id, note.id, group.id, parent.id, child.id) > 0
    assert prop.property_group_id == group.id
    assert child.parents == [parent.id] and child.property_id == prop.id
    stored = await iface.get_properties()
    assert [(p.name, p.property_group_id) for p in stored] == [("quality", group.id), ("note", None)]
    tags = {t.value: t for t in await iface.get_tags(property_ids=[prop.id])}
    assert tags["sharp"].parents == [tags["good"].id] and tags["sharp"].color == 3
    values = {v.instance_id: v.value for v in await iface.get_instance_property_values(property_ids=[prop.id])}
    assert values == {a.id: [child.id], b.id: [parent.id]}  # tag ids inside values were rewritten
    assert [(v.sha1, v.value) for v in await iface.get_image_property_values(sha1s=[a.sha1])] == [(a.sha1, "keep")]
    # OR filters
    assert {t.id for t in await iface.get_tags(ids=[parent.id], property_ids=[note.id])} == {parent.id}
    assert len(await iface.get_instance_property_values(instance_ids=[b.id])) == 1

    undone = await iface.undo()
    assert undone is not None
    assert await iface.get_properties() == [] and await iface.get_tags() == []
    assert await iface.get_instance_property_values() == [] and await iface.get_image_property_values() == []
    await iface.redo()
    again = await iface.get_properties()
    assert [p.id for p in again] == [prop.id, note.id]  # same ids after redo
    assert {v.instance_id: v.value for v in await iface.get_instance_property_values()} == values
    assert await iface.redo() is None


async def test_undo_an_update_and_a_cascading_delete(plugin_project):
    iface = PluginProjectInterface(plugin_project, "t")
    a, b = (await iface.get_instances())[:2]
    applied = await iface.apply_commit(await _commit_with_everything(iface, a, b))
    assert await iface.undo() is None  # apply_commit is not undoable
    prop = applied.properties[0]
    await iface.do(DbCommit(instance_values=[InstanceProperty(prop.id, a.id, [])]))
    assert (await iface.get_instance_property_values(instance_ids=[a.id]))[0].value == []
    await iface.undo()
    assert (await iface.get_instance_property_values(instance_ids=[a.id]))[0].value == [applied.tags[1].id]

    await iface.do(DbCommit(empty_properties=[prop.id]))
    assert [p.name for p in await iface.get_properties()] == ["note"]
    assert await iface.get_tags() == []
    await iface.undo()
    assert {t.value for t in await iface.get_tags()} == {"good", "sharp"}
    assert len(await iface.get_instance_property_values(property_ids=[prop.id])) == 2

    await iface.do(DbCommit(empty_instance_values=[InstancePropertyKey(prop.id, b.id)],
                            empty_image_values=[ImagePropertyKey(applied.properties[1].id, a.sha1)],
                            empty_tags=[applied.tags[0].id], empty_property_groups=[applied.property_groups[0].id]))
    assert len(await iface.get_instance_property_values(property_ids=[prop.id])) == 1
    assert await iface.get_image_property_values() == []
    assert {t.value for t in await iface.get_tags()} == {"sharp"}
    assert (await iface.get_properties(ids=[prop.id]))[0].property_group_id is None
    await iface.undo()
    assert len(await iface.get_instance_property_values(property_ids=[prop.id])) == 2
    assert len(await iface.get_image_property_values()) == 1
    assert {t.value for t in await iface.get_tags()} == {"good", "sharp"}


async def test_a_bad_commit_writes_nothing(plugin_project):
    iface = PluginProjectInterface(plugin_project, "t")
    a = (await iface.get_instances())[0]
    prop = iface.create_property("p", PropertyType.string)
    bad = DbCommit(properties=[prop], instance_values=[InstanceProperty(-999, a.id, "x")])
    with pytest.raises(CommitError, match="-999"):
        await iface.do(bad)
    assert await iface.get_properties() == []


async def test_create_instance_in_a_commit(plugin_project):
    iface = PluginProjectInterface(plugin_project, "t")
    root = plugin_project.base_path
    shutil.copy(root / "horse.png", root / "horse_copy.png")
    horse = next(i for i in await iface.get_instances() if i.relpath == "horse.png")
    folder = (await iface.get_folders())[0]
    inst = iface.create_instance(folder.id, "horse_copy", "png", horse.sha1, str(root / "horse_copy.png"),
                                 horse.width, horse.height, horse.ahash)
    assert inst.id < 0
    applied = await iface.do(DbCommit(instances=[inst]))
    new = applied.instances[0]
    assert new.id > 0 and new.relpath == "horse_copy.png"
    assert [i.relpath for i in await iface.get_instances(ids=[new.id])] == ["horse_copy.png"]
    await iface.undo()
    assert await iface.get_instances(ids=[new.id]) == []
    outside = iface.create_instance(folder.id, "x", "png", "0" * 32, "/etc/hosts", 1, 1, "0" * 16)
    with pytest.raises(CommitError, match="outside"):
        await iface.apply_commit(DbCommit(instances=[outside]))


# -- vectors -------------------------------------------------------------------------------

async def test_vector_types_and_vectors(plugin_project):
    plugin = await _demo(plugin_project)
    iface = plugin.project
    t2 = iface.create_vector_type("demo", {"model": "second"})
    assert t2.id < 0 and t2.source == "demo"
    stored = await iface.add_vector_type(t2)
    assert stored.id > 0
    assert [vt.params["model"] for vt in plugin.vector_types] == ["fake_vector", "second"]
    assert [vt.id for vt in await iface.get_vector_types(source="demo")] == [vt.id for vt in plugin.vector_types]
    assert await iface.get_vector_types(source="nobody") == []
    a, b = (await iface.get_instances())[:2]
    assert not await iface.vector_exist(stored.id, a.sha1)
    await iface.add_vector(Vector(stored.id, a.sha1, np.array(12, dtype="float32")))
    await iface.add_vector(Vector(stored.id, b.sha1, np.arange(3, dtype=np.float64)))
    assert await iface.vector_exist(stored.id, a.sha1)
    vecs = {v.sha1: v for v in await iface.get_vectors(stored.id)}
    assert vecs[a.sha1].data.tolist()[0] == 12.0  # the seed's `v.data.tolist()[0]` works
    assert vecs[b.sha1].data.dtype == np.float32 and vecs[b.sha1].data.tolist() == [0.0, 1.0, 2.0]
    assert [v.sha1 for v in await iface.get_vectors(stored.id, sha1s=[b.sha1])] == [b.sha1]
    assert await iface.delete_vectors(stored.id, [a.sha1, "not-there"]) == 1
    assert not await iface.vector_exist(stored.id, a.sha1) and await iface.vector_exist(stored.id, b.sha1)
    assert await iface.delete_vectors(stored.id) == 1 and await iface.get_vectors(stored.id) == []


# -- work ----------------------------------------------------------------------------------

async def test_run_async_uses_a_worker_thread(plugin_project):
    iface = PluginProjectInterface(plugin_project, "t")
    main = threading.get_ident()
    ident, total = await iface.run_async(lambda x, y: (threading.get_ident(), x + y), 2, 3)
    assert total == 5 and ident != main


async def test_add_task_through_the_interface(plugin_project):
    iface = PluginProjectInterface(plugin_project, "t")
    seen = []

    class Mark(Task):
        def __init__(self, n):
            super().__init__()
            self.n, self.key, self.name = n, "mark", "Mark"

        async def run(self):
            seen.append(await self.run_async(lambda: self.n * 10))

    for n in range(3):
        iface.add_task(Mark(n))
    assert await plugin_project.task_queue.join() == []
    assert sorted(seen) == [0, 10, 20]
    assert plugin_project.task_queue.states["mark"].done == 3


# -- events ----------------------------------------------------------------------------------

async def test_scan_fires_import_and_folder_delete(plugin_dataset):
    with Project.open(plugin_dataset) as project:
        iface = PluginProjectInterface(project, "t")
        imported: list[Instance] = []
        deleted: list[DeleteFolderConfirm] = []

        async def on_import(instance: Instance) -> None:
            imported.append(instance)

        async def on_delete(confirm: DeleteFolderConfirm) -> None:
            deleted.append(confirm)

        iface.on_instance_import(on_import)
        iface.on_folder_delete(on_delete)
        report = await scan_and_notify(project)
        assert sorted(i.relpath for i in imported) == sorted(report.added) and len(imported) == 6
        assert deleted == []
        sub = plugin_dataset / "sub"
        sub.mkdir()
        shutil.copy(plugin_dataset / "horse.png", sub / "h.png")
        imported.clear()
        await scan_and_notify(project)
        assert [i.relpath for i in imported] == ["sub/h.png"]
        sub_id = next(f.id for f in project.folders() if f.path == "sub")
        h_id = imported[0].id
        prop = iface.create_property("p", PropertyType.string)
        applied = await iface.apply_commit(DbCommit(properties=[prop], instance_values=[
            InstanceProperty(prop.id, h_id, "v")]))
        shutil.rmtree(sub)
        await scan_and_notify(project)
        (confirm,) = deleted
        assert confirm.deleted_folders == [sub_id] and confirm.deleted_instances == [h_id]
        assert confirm.relpaths == ["sub/h.png"]
        assert "sub" not in {f.path for f in project.folders()}
        assert await iface.get_instance_property_values(property_ids=[applied.properties[0].id]) == []


async def test_a_failing_listener_is_reported(plugin_dataset):
    with Project.open(plugin_dataset) as project:
        seen: list[Notif] = []
        project.on_notif(seen.append)

        async def broken(instance: Instance) -> None:
            raise RuntimeError("listener broke")

        PluginProjectInterface(project, "bad").on_instance_import(broken)
        await scan_and_notify(project)
        assert len(seen) == 6 and all(n.type is NotifType.ERROR for n in seen)
        assert seen[0].name == "bad.on_instance_import" and "listener broke" in seen[0].data["traceback"]


async def test_values_never_move_to_an_image_that_reuses_an_id(plugin_dataset):
    """A plain Dataset.scan (no plugin events) may give a new image a removed image's id."""
    with Project.open(plugin_dataset) as project:
        project.dataset.scan()
        iface = PluginProjectInterface(project, "t")
        last = max(await iface.get_instances(), key=lambda i: i.id)
        prop = iface.create_property("note", PropertyType.string)
        applied = await iface.apply_commit(DbCommit(properties=[prop], instance_values=[
            InstanceProperty(prop.id, last.id, "about " + last.relpath)]))
        pid = applied.properties[0].id
        (plugin_dataset / last.relpath).rename(plugin_dataset / "zz_renamed.png")
    with Project.open(plugin_dataset) as project:  # another front end scans without events
        project.dataset.scan()
    with Project.open(plugin_dataset) as project:
        renamed = next(i for i in project.instances() if i.relpath == "zz_renamed.png")
        assert renamed.id == last.id  # the store did reuse the id
        assert project.instance_values(property_ids=[pid]) == []


async def test_scan_in_a_worker_thread_then_notify_on_the_loop(plugin_dataset):
    """How the TUI does it: snapshot + scan in a thread, events on the event loop."""
    with Project.open(plugin_dataset) as project:
        seen: list[str] = []

        async def on_import(instance: Instance) -> None:
            seen.append(instance.relpath)

        PluginProjectInterface(project, "t").on_instance_import(on_import)

        def worker():
            snap = scan_snapshot(project)
            return snap, project.dataset.scan()

        snap, report = await asyncio.to_thread(worker)
        assert snap.ids == {} and len(report.added) == 6
        await notify_scan(project, report, snap)
        assert sorted(seen) == sorted(report.added)
