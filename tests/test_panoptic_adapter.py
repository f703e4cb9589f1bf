"""The Panoptic adapter inside a real Panoptic 1.0 project.

Uses the installed ``panoptic`` package (``pip install 'fluxgym-coach[panoptic]'``,
also in the ``dev`` extra); the whole module is skipped, saying so, when it is
not installed. The adapter is registered the way ``panoptic plugins add
fluxgym-coach -t path -s <folder>`` does (Panoptic's own PluginInstaller and
PluginKey), loaded by Panoptic's LoadPluginTask when the project starts, and
its actions are called through Panoptic's ActionRegistry on instances that
Panoptic's importer created from real image files.
"""

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("panoptic", reason="Panoptic is not installed: pip install 'fluxgym-coach[panoptic]'")

from panoptic.core.databases.panoptic.models import PluginKey  # noqa: E402
from panoptic.core.plugin.plugin_installer import PluginInstaller  # noqa: E402
from panoptic.core.project.project import Project as PanopticProject  # noqa: E402
from panoptic.models.action_models import ActionContext, NotifType  # noqa: E402

PLUGIN_ID = "fluxgym-coach"


def wait_until(predicate, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def open_panoptic(tmp_path, monkeypatch):
    """``open_panoptic(images_dir)`` -> a started Panoptic project with the adapter loaded
    and ``images_dir`` imported; closed (and Panoptic's import side effects undone) afterwards."""
    monkeypatch.setenv("PANOPTIC_DATA_DIR", str(tmp_path / "panoptic_home"))
    path_before = list(sys.path)
    projects = []

    def start(images: Path) -> PanopticProject:
        import fluxgym_coach.integrations.panoptic as adapter
        installer = PluginInstaller(tmp_path / "panoptic_home" / "plugins")
        install_path = installer.install_from_path(os.path.dirname(adapter.__file__))
        key = PluginKey(id=PLUGIN_ID, install_path=install_path, source_type="path", source_path=install_path)
        project = PanopticProject(tmp_path / "panoptic_project", plugin_keys=[key])
        projects.append(project)
        project.start()
        assert wait_until(lambda: project.is_plugin_loaded(PLUGIN_ID)), "Panoptic did not load the adapter"
        n = len([p for p in images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")])
        task = project.import_folder(str(images))
        assert wait_until(lambda: task.state.finished and len(project.get_instances()) == n)
        return project

    yield start
    for project in projects:
        project.close()
    sys.modules.pop(PLUGIN_ID, None)
    sys.path[:] = path_before


def _names(project, ids):
    files = {f.id: f.name for f in project.get_files()}
    by_id = {i.id: files[i.file_id] for i in project.get_instances()}
    return [by_id[i] for i in ids]


def _ids(project, *names):
    files = {f.id: f.name for f in project.get_files()}
    return [i.id for i in project.get_instances() if files[i.file_id] in names]


def test_adapter_registers_its_actions(open_panoptic, plugin_dataset):
    project = open_panoptic(plugin_dataset)
    (plugin,) = project.plugins
    assert plugin.name == PLUGIN_ID
    descs = {d.id: d for d in plugin.registered_functions}
    assert set(descs) == {f"{PLUGIN_ID}.{n}" for n in ("enhance_for_lora", "caption", "near_duplicates",
                                                       "export_to_fluxgym")}
    assert descs[f"{PLUGIN_ID}.near_duplicates"].hooks == ["group"]
    assert descs[f"{PLUGIN_ID}.near_duplicates"].label == "Near duplicates"
    assert [(p.name, p.type) for p in descs[f"{PLUGIN_ID}.export_to_fluxgym"].params] == [
        ("out_dir", "folder_path"), ("name", "str"), ("force", "bool")]
    assert set(project.action.get_all()) >= set(descs)


def test_near_duplicates_in_panoptic(open_panoptic, real_dataset):
    project = open_panoptic(real_dataset)
    res = project.action.call(f"{PLUGIN_ID}.near_duplicates", ActionContext(ui_inputs={"threshold": 10}))
    assert [sorted(_names(project, g.ids)) for g in res.groups] == [["motorcycle_left.png", "motorcycle_right.png"]]
    g = res.groups[0]
    assert g.scores.max_is_best is False and g.scores.values[0] == 0 and g.score.value <= 10
    some = _ids(project, "motorcycle_left.png", "coins.png")
    res = project.action.call(f"{PLUGIN_ID}.near_duplicates", ActionContext(instance_ids=some))
    assert res.groups == []  # only the selection is compared


def test_caption_enhance_and_export_in_panoptic(open_panoptic, plugin_dataset, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("horse.png", "coffee.png", "coffee.txt", "chelsea.png"):
        shutil.copy(plugin_dataset / name, images / name)
    shutil.copy(plugin_dataset / "horse.png", images / "horse_copy.png")
    project = open_panoptic(images)
    project.update_plugin_params(PLUGIN_ID, {"trigger": "ohwx"})
    plugin = project.plugins[0]
    assert plugin.params.trigger == "ohwx"

    res = project.action.call(f"{PLUGIN_ID}.near_duplicates", ActionContext())
    assert [sorted(_names(project, g.ids)) for g in res.groups if g.name == "Exact copies"] == [
        ["horse.png", "horse_copy.png"]]

    res = project.action.call(f"{PLUGIN_ID}.caption", ActionContext())
    assert res.notifs[0].type is NotifType.INFO, res.notifs[0].message
    assert (images / "horse.txt").read_text(encoding="utf-8").startswith("ohwx")
    assert (images / "coffee.txt").read_text() == (plugin_dataset / "coffee.txt").read_text()  # kept
    (prop,) = [p for p in project.get_properties() if p.name == "caption"]
    values = {v.sha1: v.value for v in project.get_sha1_values(property_id=prop.id)}
    horse_sha1 = next(i.sha1 for i in project.get_instances() if i.id in _ids(project, "horse.png"))
    assert values[horse_sha1] == (images / "horse.txt").read_text(encoding="utf-8").strip()

    chelsea = _ids(project, "chelsea.png")
    res = project.action.call(f"{PLUGIN_ID}.enhance_for_lora",
                              ActionContext(instance_ids=chelsea, ui_inputs={"target_short_side": 512}))
    assert res.notifs[0].type is NotifType.INFO, res.notifs[0].message
    (out,) = res.value["files"]
    from PIL import Image
    with Image.open(out) as im:
        assert min(im.size) >= 512  # chelsea is 451x300
    assert Path(out).parent == plugin.data_path / "enhanced"

    fluxgym = tmp_path / "fluxgym"
    res = project.action.call(f"{PLUGIN_ID}.export_to_fluxgym",
                              ActionContext(ui_inputs={"out_dir": str(fluxgym), "name": "My LoRA"}))
    assert res.notifs[0].type is NotifType.INFO, res.notifs[0].message
    toml = Path(res.value["toml"])
    assert toml.is_file() and toml.parent.parent == fluxgym / "outputs"
    exported = sorted(p.name for p in Path(res.value["dataset_dir"]).iterdir())
    assert len([p for p in exported if p.endswith(".txt")]) == 4 and res.value["files"] == 4
    with Image.open(next(Path(res.value["dataset_dir"]).glob("chelsea*.png"))) as im:
        assert min(im.size) >= 512  # the enhanced variant was selected for export

    res = project.action.call(f"{PLUGIN_ID}.export_to_fluxgym",
                              ActionContext(ui_inputs={"out_dir": str(fluxgym), "name": "My LoRA"}))
    (err,) = res.notifs  # exported already: an error notification, not an HTTP 500
    assert err.type is NotifType.ERROR and "not empty" in err.message and "ExportError" in err.data["traceback"]


def test_params_form_has_every_setting_and_refuses_bad_values(open_panoptic, plugin_dataset):
    project = open_panoptic(plugin_dataset)
    plugin = project.plugins[0]
    form = {p.name: p for p in plugin.get_description().base_params.params}  # what Panoptic's UI shows
    assert set(form) == {"trigger", "resolution", "caption_backend", "caption_model", "openai_base_url",
                         "enhance_backend", "forge_url"}
    assert form["resolution"].type == "int" and form["resolution"].default_value == 1024
    assert form["caption_backend"].type == "enum"
    assert form["caption_backend"].possible_values == ["draft", "openai", "forge", "florence2"]
    assert form["enhance_backend"].possible_values == ["local", "forge"]
    for bad in ({"resolution": "abc"}, {"resolution": 100}, {"forge_url": "127.0.0.1:7860"},
                {"caption_backend": "nope"}):
        with pytest.raises(ValueError, match="not changed"):
            project.update_plugin_params(PLUGIN_ID, bad)
        assert plugin.params.resolution == 1024 and plugin.params.forge_url == ""
    project.update_plugin_params(PLUGIN_ID, {"resolution": "768", "caption_backend": "forge"})
    assert plugin.params.resolution == 768 and plugin.params.caption_backend.value == "forge"
    assert plugin.project.load_params()["resolution"] == 768  # stored validated, as JSON


def test_forge_captioner_uses_the_forge_url_setting(open_panoptic, plugin_dataset, fake_forge):
    project = open_panoptic(plugin_dataset)
    project.update_plugin_params(PLUGIN_ID, {"caption_backend": "forge", "forge_url": fake_forge.url,
                                             "caption_model": "deepdanbooru"})
    horse = _ids(project, "horse.png")
    res = project.action.call(f"{PLUGIN_ID}.caption", ActionContext(instance_ids=horse))
    assert res.notifs[0].type is NotifType.INFO, res.notifs[0].message
    assert fake_forge.jobs_by_path.get("/sdapi/v1/interrogate") == 1  # the server we named, not :7860
    assert (plugin_dataset / "horse.txt").is_file()


def test_openai_captioner_uses_the_model_and_base_url_settings(open_panoptic, plugin_dataset, fake_openai,
                                                               monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    project = open_panoptic(plugin_dataset)
    project.update_plugin_params(PLUGIN_ID, {"caption_backend": "openai", "caption_model": "fake-vision",
                                             "openai_base_url": fake_openai.url})
    res = project.action.call(f"{PLUGIN_ID}.caption", ActionContext(instance_ids=_ids(project, "horse.png")))
    assert res.notifs[0].type is NotifType.INFO, res.notifs[0].message
    (req,) = fake_openai.chat_requests
    assert req.body["model"] == "fake-vision"
    assert (plugin_dataset / "horse.txt").read_text(encoding="utf-8").strip()
