"""The built-in ``core`` plugin: enhance, caption, audit and export as actions, on real images."""


from PIL import Image

from fluxgym_coach.plugins import ActionContext, NotifType


def _ids(project, *names):
    return [i.id for i in project.instances() if i.relpath in names]


async def test_catalogue(loaded_project):
    ids = [d.id for d in loaded_project.actions("execute")]
    assert ids == ["core.audit", "core.caption", "core.enhance", "core.export"]
    assert [d.id for d in loaded_project.actions("group")] == ["core.audit", "similarity.cluster",
                                                               "similarity.near_duplicates"]


async def test_enhance_action(loaded_project):
    horse = _ids(loaded_project, "horse.png")
    res = await loaded_project.call_action("core.enhance", ActionContext(
        instance_ids=horse, ui_inputs={"target_short_side": "512"}))
    assert res.notifs[0].type is NotifType.INFO, res.notifs[0]
    assert res.value == {"enhanced": 1}
    assert res.groups[0].ids == horse
    (variant,) = loaded_project.store.variants("horse.png")
    with Image.open(variant.path) as im:
        assert min(im.size) >= 512  # horse.png is 400x328
    assert loaded_project.store.selection()["horse.png"][0] == variant.cache_key
    again = await loaded_project.call_action("core.enhance", ActionContext(
        instance_ids=horse, ui_inputs={"target_short_side": "512"}))
    assert again.value == {"cached": 1}


async def test_caption_action(loaded_project):
    root = loaded_project.base_path
    assert not (root / "horse.txt").exists()
    res = await loaded_project.call_action("core.caption", ActionContext(
        instance_ids=_ids(loaded_project, "horse.png", "chelsea.png"), ui_inputs={"trigger": "ohwx"}))
    assert not res.has_error, res.notifs
    assert (root / "horse.txt").read_text(encoding="utf-8").startswith("ohwx")
    assert res.value.get("captioned", 0) + res.value.get("cached", 0) == 1  # chelsea already had one
    assert res.value.get("skipped") == 1


async def test_audit_action(loaded_project):
    res = await loaded_project.call_action("core.audit", resolution="1024")
    names = {g.name: g for g in res.groups}
    everyone = {i.id for i in loaded_project.instances()}
    small = names["Finding: low_resolution"]
    assert set(small.ids) <= everyone and small.ids  # every example is below 1024 px
    (notif,) = res.notifs
    assert notif.functions and notif.functions[0].function == "core.enhance"
    assert set(notif.functions[0].context.instance_ids) <= everyone


async def test_export_action(loaded_project, tmp_path):
    out = tmp_path / "fluxgym"
    res = await loaded_project.call_action("core.export", ActionContext(ui_inputs={
        "out_dir": str(out), "name": "demo", "trigger": "ohwx", "resolution": "512"}))
    assert res.notifs[0].type is NotifType.INFO, res.notifs[0]
    assert res.value["files"] == 6 and (out / "outputs" / "demo" / "dataset.toml").is_file()
    assert len(list((out / "datasets" / "demo").glob("*.txt"))) == 6
    res = await loaded_project.call_action("core.export", ActionContext(ui_inputs={
        "out_dir": str(out), "name": "demo", "trigger": "ohwx"}))
    assert res.has_error and "not empty" in res.notifs[0].message
