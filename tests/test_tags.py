"""Dataset tag table, rename/merge/delete/add (undoable), autocomplete and proposals."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from fluxgym_coach.captions import job as captioning, text as captions, tags
from fluxgym_coach.cli import app
from fluxgym_coach.dataset import Dataset

CAPTIONS = {
    "astronaut.png": "ohwx, astronaut, red_hair, space suit, smiling",
    "camera.png": "ohwx, man, Red Hair, camera, black and white",
    "chelsea.png": "ohwx, cat, kitty, sitting",
    "coffee.png": "ohwx, coffee, cup, kitten",
    "horse.png": "ohwx, horse, silhouette, black and white",
}


@pytest.fixture
def tagged(scanned_example):
    for rel, text in CAPTIONS.items():
        scanned_example.write_caption(rel, text, source="user")
    return scanned_example


def test_tag_table_counts_and_spelling(tagged):
    table = {r.key: r for r in tags.tag_table(tagged)}
    assert table["ohwx"].count == 5
    assert table["red hair"].count == 2 and sorted(table["red hair"].images) == ["astronaut.png",
                                                                                  "camera.png"]
    assert table["black and white"].count == 2
    rows = tags.tag_table(tagged, exclude=["ohwx"])
    assert "ohwx" not in {r.key for r in rows}
    assert rows[0].count >= rows[-1].count


def test_rename_merge_delete_are_undoable(tagged):
    rep = tags.rename_tag(tagged, "red hair", "auburn hair")
    assert sorted(rep.changed) == ["astronaut.png", "camera.png"]
    assert tagged.read_caption("camera.png").text == "ohwx, man, auburn hair, camera, black and white"
    rep2 = tags.merge_tags(tagged, ["kitty", "kitten"], "cat")
    assert tagged.read_caption("chelsea.png").text == "ohwx, cat, sitting"  # no duplicate cat
    assert tagged.read_caption("coffee.png").text == "ohwx, coffee, cup, cat"
    rep3 = tags.delete_tag(tagged, "black and white")
    assert tagged.read_caption("horse.png").text == "ohwx, horse, silhouette"
    assert {o["op_id"] for o in captions.operations(tagged)} >= {rep.op_id, rep2.op_id, rep3.op_id}
    captions.undo_operation(tagged, rep3.op_id)
    captions.undo_operation(tagged, rep2.op_id)
    captions.undo_operation(tagged, rep.op_id)
    for rel, text in CAPTIONS.items():
        assert tagged.read_caption(rel).text == text
    with pytest.raises(ValueError, match="no comma"):
        tags.rename_tag(tagged, "cat", "a, b")


def test_delete_never_empties_a_caption_and_add_tag(tagged):
    tagged.write_caption("rocket.jpg", "rocket")
    rep = tags.delete_tag(tagged, "rocket")
    assert "rocket.jpg" in rep.skipped and tagged.read_caption("rocket.jpg").text == "rocket"
    rep = tags.add_tag(tagged, "film photo", ["camera.png", "horse.png"], position=1)
    assert tagged.read_caption("camera.png").text.startswith("ohwx, film photo, man")
    assert tags.add_tag(tagged, "Film_Photo", ["camera.png"]).changed == []  # already there


def test_autocomplete_ranks_prefix_word_and_substring(tagged):
    index = tags.TagIndex(tagged)
    assert index.complete("red")[0] in ("red_hair", "Red Hair")
    assert index.count("red hair") == 2
    # prefix of a later word, not only of the whole tag (BooruDatasetTagManager #170)
    assert "space suit" in index.complete("suit")
    assert index.complete("ilhou") == ["silhouette"]  # substring from 3 characters
    assert index.complete("c")[:2] == ["camera", "cat"]  # ties broken alphabetically
    assert "cup" not in index.complete("c", exclude=["cup"])
    assert index.complete("")[0] == "ohwx"
    index.update("ohwx, cat, kitty, sitting", "ohwx, cat, sitting, catnip")
    assert "catnip" in index.complete("catn") and "kitty" not in index.complete("kit")
    assert tags.complete(tagged, "hor") == ["horse"]


def test_proposals_from_backend_frequency_and_folder(tmp_path, example_dataset):
    folder = tmp_path / "5_tabby cats"
    example_dataset.rename(folder)
    with Dataset(folder) as ds:
        ds.scan()
        for rel in ("astronaut.png", "camera.png", "coffee.png"):
            ds.write_caption(rel, "ohwx, indoors, photo")
        asyncio.run(captioning.run_caption(ds, captioning.get_caption_backend("draft"),
                                           ["horse.png"], mode="propose"))
        props = {p.tag: p for p in tags.propose(ds, "horse.png")}
        assert props["indoors"].sources == ["frequency"] and "3 of" in props["indoors"].reason
        assert set(props["tabby cats"].sources) == {"draft", "folder"}
        assert "black-and-white image" in props and props["black-and-white image"].sources == ["draft"]
        ranked = tags.propose(ds, "horse.png")
        assert ranked == sorted(ranked, key=lambda p: -p.score)
        # tags the caption already has are not proposed
        assert "indoors" not in {p.tag for p in tags.propose(ds, "coffee.png")}
        with pytest.raises(LookupError):
            tags.propose(ds, "nope.png")
        many = tags.propose_many(ds)
        assert set(many) == {r.relpath for r in ds.images()}
        assert many["horse.png"] == tags.propose(ds, "horse.png")


def test_tags_cli(tagged):
    runner = CliRunner()
    root = str(tagged.root)
    res = runner.invoke(app, ["tags", "list", root, "--exclude", "ohwx", "--json"])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert data["tags"][0]["count"] == 2 and data["images"] == 6
    res = runner.invoke(app, ["tags", "merge", root, "kitty", "kitten", "cat", "--json"])
    assert res.exit_code == 0 and sorted(json.loads(res.stdout)["changed"]) == ["chelsea.png",
                                                                                  "coffee.png"]
    res = runner.invoke(app, ["tags", "complete", root, "sil", "--json"])
    assert json.loads(res.stdout) == ["silhouette"]
    res = runner.invoke(app, ["tags", "rename", root, "cat", "a,b"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["tags", "propose", root, "-i", "horse.png", "--backend", "draft",
                              "--json"])
    assert res.exit_code == 0
    assert "landscape orientation" in {p["tag"] for p in json.loads(res.stdout)["horse.png"]}
