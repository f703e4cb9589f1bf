"""``fluxgym-coach plugins list|add|remove|run`` through the real Typer app."""

import json

from typer.testing import CliRunner

from fluxgym_coach.cli import app
from fluxgym_coach.plugins import read_config

from tests.test_plugins_loading import seed_plugin_files

runner = CliRunner()


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, ["plugins", *args], input=input)


def test_list_json(plugin_dataset):
    res = invoke("list", str(plugin_dataset), "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    by = {p["name"]: p for p in data["plugins"]}
    assert by["similarity"]["status"] == "loaded" and by["core"]["status"] == "loaded"
    actions = {a["id"]: a for a in by["similarity"]["actions"]}
    assert actions["similarity.near_duplicates"]["hooks"] == ["group"]
    assert by["similarity"]["params"] == {"compute_on_import": True, "near_duplicate_threshold": 10,
                                          "clip_model": ""}


def test_run_prints_groups_and_json(plugin_dataset):
    (plugin_dataset / "copy.png").write_bytes((plugin_dataset / "coffee.png").read_bytes())
    res = invoke("run", str(plugin_dataset), "similarity.near_duplicates", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [sorted(g["relpaths"]) for g in data["groups"]] == [["coffee.png", "copy.png"]]
    assert data["notifs"][0]["type"] == "info" and data["value"] == 1
    res = invoke("run", str(plugin_dataset), "similarity.near_duplicates", "--no-scan")
    assert res.exit_code == 0 and "Exact duplicates" in res.stdout and "copy.png" in res.stdout
    res = invoke("run", str(plugin_dataset), "similarity.find_similar", "--images", "coffee.png",
                 "--param", "count=2", "--param", "vector_type=phash64", "--json")
    data = json.loads(res.stdout)
    (g,) = data["groups"]
    assert len(g["ids"]) == 2 and not {"coffee.png", "copy.png"} & set(g["relpaths"])  # copies are the query
    assert g["scores"]["values"] == sorted(g["scores"]["values"]) and g["scores"]["max_is_best"] is False


def test_run_errors_and_exit_codes(plugin_dataset):
    res = invoke("run", str(plugin_dataset), "similarity.cluster", "--param", "nb_clusters=many")
    assert res.exit_code == 2 and "nb_clusters" in res.output
    res = invoke("run", str(plugin_dataset), "nope.action")
    assert res.exit_code == 2 and "no action" in res.output
    res = invoke("run", str(plugin_dataset), "similarity.cluster", "--images", "missing*.png")
    assert res.exit_code == 2 and "matches no readable image" in res.output
    res = invoke("run", str(plugin_dataset), "similarity.find_similar", "--json")  # raises inside
    assert res.exit_code == 1
    assert json.loads(res.stdout)["notifs"][0]["type"] == "error"


def test_add_and_remove(plugin_dataset, write_plugin):
    folder = write_plugin("mon_plugin", seed_plugin_files("numpy\n"))
    res = invoke("add", str(plugin_dataset), str(folder), input="n\n")
    assert res.exit_code == 0, res.output
    assert "numpy" in res.output and "added plugin mon_plugin" in res.output
    assert [p.name for p in read_config(plugin_dataset).plugins] == ["mon_plugin"]
    res = invoke("run", str(plugin_dataset), "mon_plugin.compute_clusters", "-p", "nb_clusters=3", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["value"] == 3
    res = invoke("add", str(plugin_dataset), "/does/not/exist")
    assert res.exit_code == 2
    res = invoke("remove", str(plugin_dataset), "mon_plugin")
    assert res.exit_code == 0 and read_config(plugin_dataset).plugins == []
    res = invoke("remove", str(plugin_dataset), "mon_plugin")
    assert res.exit_code == 2
