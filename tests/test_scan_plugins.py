"""Scans from the CLI and `prepare` tell the dataset's plugins about new and removed images."""

from __future__ import annotations

from PIL import Image
from typer.testing import CliRunner

from fluxgym_coach.cli import app
from fluxgym_coach.plugins.loader import PluginConfig, config_path, write_config
from fluxgym_coach.store import Store

runner = CliRunner()


def _vector_sha1s(root) -> set[str]:
    with Store.for_dataset(root) as store:
        store.ensure_schema("plugins")
        return {r[0] for r in store.execute("SELECT DISTINCT sha1 FROM plugin_vectors")}


def _digests(root) -> set[str]:
    with Store.for_dataset(root) as store:
        return {r.digest for r in store.images()}


def test_scan_without_plugin_config_loads_no_plugin(example_dataset):
    assert runner.invoke(app, ["scan", str(example_dataset)]).exit_code == 0
    assert not config_path(example_dataset).exists()
    assert _vector_sha1s(example_dataset) == set()


def test_scan_with_plugin_config_fires_import_events(example_dataset, tmp_path):
    write_config(example_dataset, PluginConfig())  # built-ins on: similarity computes vectors on import
    r = runner.invoke(app, ["scan", str(example_dataset)])
    assert r.exit_code == 0, r.output
    assert _vector_sha1s(example_dataset) == _digests(example_dataset)
    # a new image gets its vectors on the next scan; prepare scans the same way
    before = _digests(example_dataset)
    with Image.open(example_dataset / "chelsea.png") as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(example_dataset / "chelsea_flipped.png")
    r = runner.invoke(app, ["prepare", str(example_dataset), "-o", str(tmp_path / "fg"), "-t", "ohwx",
                            "-r", "512"])
    assert r.exit_code == 0, r.output
    (new,) = _digests(example_dataset) - before
    assert new in _vector_sha1s(example_dataset)


def test_image_first_indexed_by_export_gets_vectors_at_the_next_scan(example_dataset, tmp_path):
    write_config(example_dataset, PluginConfig())
    assert runner.invoke(app, ["scan", str(example_dataset)]).exit_code == 0
    with Image.open(example_dataset / "chelsea.png") as im:
        im.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(example_dataset / "chelsea_upside.png")
    # an indexing that bypasses the plugins (as export, audit and caption did)
    from fluxgym_coach.dataset import Dataset

    ds = Dataset(example_dataset)
    ds.scan()
    ds.close()
    new = {d for d in _digests(example_dataset)} - _vector_sha1s(example_dataset)
    assert len(new) == 1
    assert runner.invoke(app, ["scan", str(example_dataset)]).exit_code == 0
    assert new <= _vector_sha1s(example_dataset)


def test_export_notifies_plugins_of_the_images_it_indexes(example_dataset, tmp_path):
    write_config(example_dataset, PluginConfig())
    r = runner.invoke(app, ["export", str(example_dataset), "-o", str(tmp_path / "fg"), "-t", "ohwx"])
    assert r.exit_code in (0, 1), r.output
    assert _vector_sha1s(example_dataset) == _digests(example_dataset)
