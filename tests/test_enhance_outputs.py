"""``enhance DATASET`` without -o never writes among the dataset's images: results become
variants in the cache, selected for export; files inside a dataset are refused."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fluxgym_coach.cli import app
from fluxgym_coach.dataset import Dataset

runner = CliRunner()


def _names(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and ".fluxgym-coach" not in p.parts)


def test_enhance_dataset_without_output_selects_variants_and_writes_no_file(example_dataset, tmp_path):
    before = _names(example_dataset)
    r = runner.invoke(app, ["enhance", str(example_dataset), "--backend", "local", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["results"]
    assert {x["status"] for x in rows} == {"enhanced"} and len(rows) == 6
    assert _names(example_dataset) == before  # no *_enhanced.png among the originals
    with Dataset(example_dataset) as ds:
        selection = ds.store.selection()
        assert {rel: status for rel, (_, status) in selection.items()} == {x["source"]: "pending" for x in rows}
    # the next export takes the variants, never an *_enhanced file
    out = tmp_path / "fg"
    r = runner.invoke(app, ["export", str(example_dataset), "-o", str(out), "-t", "ohwx", "--json"])
    assert r.exit_code == 0, r.output
    exported = [p.name for p in (out / "datasets").rglob("*") if p.suffix in (".png", ".jpg")]
    assert len(exported) == 6 and not [n for n in exported if "_enhanced" in n]
    manifest = [json.loads(line) for line in next((out / "outputs").rglob("manifest.jsonl")).read_text().splitlines()]
    assert {m["variant"] != "original" for m in manifest} == {True}
    # human output says where the results went
    r = runner.invoke(app, ["enhance", str(example_dataset), "--backend", "local"])
    assert r.exit_code == 0 and "selected for export" in " ".join(r.output.split())


def test_files_of_a_dataset_without_output_are_refused(example_dataset, tmp_path):
    runner.invoke(app, ["scan", str(example_dataset)])
    r = runner.invoke(app, ["enhance", str(example_dataset / "horse.png"), "--backend", "local"])
    assert r.exit_code == 2
    assert "inside the dataset" in " ".join(r.output.split())
    assert not (example_dataset / "horse_enhanced.png").exists()
    # with -o outside it, files are written there
    (tmp_path / "out").mkdir()
    r = runner.invoke(app, ["enhance", str(example_dataset / "horse.png"), "--backend", "local",
                            "-o", str(tmp_path / "out") + "/"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "horse_enhanced.png").is_file()


def test_loose_files_keep_the_seed_default(tmp_path, example_dataset):
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "a.png").write_bytes((example_dataset / "horse.png").read_bytes())
    r = runner.invoke(app, ["enhance", str(loose / "a.png"), "--backend", "local"])
    assert r.exit_code == 0, r.output
    assert (loose / "a_enhanced.png").is_file()


def test_folders_and_files_mixed_without_output_are_refused(example_dataset):
    r = runner.invoke(app, ["enhance", str(example_dataset), str(example_dataset / "horse.png"),
                            "--backend", "local"])
    assert r.exit_code == 2 and "not both" in r.output
