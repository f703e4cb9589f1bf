"""``fluxgym-coach check``: the simulator fallback, and sd-scripts itself where a
real Fluxgym install is available (never downloaded in tests)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fluxgym_coach.cli import app
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.export.fluxgym import export_dataset
from fluxgym_coach.export.preflight import check_dataset_config, env_python
from tests.helpers_images import photo_like, save

runner = CliRunner()


def _export(tmp_path: Path, sizes, crop_mode="zero") -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for i, s in enumerate(sizes):
        save(photo_like(s, seed=i), src / f"p{i}.png")
    with Dataset(src) as ds:
        ds.scan()
        export_dataset(ds, tmp_path / "fg", "s", "ohwx", resolution=512, crop_mode=crop_mode)
    return tmp_path / "fg" / "outputs" / "s" / "dataset.toml"


def test_fallback_is_marked_and_reports_buckets_steps_and_no_crop(tmp_path):
    toml = _export(tmp_path, [(900, 600), (600, 900), (700, 700)])
    r = runner.invoke(app, ["check", str(toml), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["engine"] == "simulator" and "sd-scripts/ or its env/ is not in" in data["engine_note"]
    assert data["images_found"] == 3 and data["captions_read"] == 3
    assert all(im["bucket"] == im["resized"] == im["size"] for im in data["images"])  # zero-crop export
    assert sum(data["buckets"].values()) == 30  # 3 images x 10 repeats
    # batch size 1: one step per image and repeat; train.sh says 16 epochs
    assert data["steps_per_epoch"] == 30 and data["epochs"] == 16 and data["total_steps"] == 480


def test_the_table_lists_images_kohya_only_rescales(tmp_path):
    # 5:3 at 512 in kohya mode: short side 512 -> 853x512, which kohya shrinks to its 640x384
    # bucket without cropping (resized == bucket, but not the size written)
    toml = _export(tmp_path, [(1000, 600), (512, 512)], crop_mode="kohya")
    data = check_dataset_config(toml)
    rescaled = [im for im in data["images"] if im["resized"] != im["size"]]
    assert [Path(im["path"]).name for im in rescaled] == ["p0.png"]
    assert rescaled[0]["resized"] == rescaled[0]["bucket"]
    r = runner.invoke(app, ["check", str(toml)])
    assert r.exit_code == 0 and "cropped or rescaled by kohya" in r.stdout and "p0.png" in r.stdout
    assert "p1.png" not in r.stdout


def test_kohya_mode_export_shows_kohyas_crops_and_an_empty_folder_fails(tmp_path):
    toml = _export(tmp_path, [(900, 600)], crop_mode="kohya")
    data = check_dataset_config(toml)
    (im,) = data["images"]
    assert im["resized"] != im["bucket"]  # kohya rescales/crops the old-style export
    r = runner.invoke(app, ["check", str(toml)])
    assert r.exit_code == 0 and "cropped or rescaled by kohya" in r.stdout and "simulator" in r.output
    for p in (tmp_path / "fg" / "datasets" / "s").glob("*.png"):
        p.unlink()
    r = runner.invoke(app, ["check", str(toml)])
    assert r.exit_code == 1 and "no image" in r.output


def _real_fluxgym() -> Path | None:
    p = os.environ.get("FLUXGYM_DIR")
    if p and (Path(p) / "sd-scripts" / "flux_train_network.py").is_file() and env_python(Path(p)):
        return Path(p)
    return None


@pytest.mark.skipif(_real_fluxgym() is None,
                    reason="needs a real Fluxgym install with sd-scripts/ and env/ (set FLUXGYM_DIR); "
                           "tests cannot download one")
def test_sd_scripts_agrees_with_the_simulator(tmp_path):
    root = _real_fluxgym()
    _export(tmp_path, [(900, 600), (600, 900), (1000, 300)])
    for part in ("datasets/s", "outputs/s"):
        if (root / part).exists():
            pytest.skip(f"{root / part} exists; not overwriting it")
    try:
        shutil.copytree(tmp_path / "fg" / "datasets" / "s", root / "datasets" / "s")
        shutil.copytree(tmp_path / "fg" / "outputs" / "s", root / "outputs" / "s")
        real = check_dataset_config(root / "outputs" / "s" / "dataset.toml")
        sim = check_dataset_config(root / "outputs" / "s" / "dataset.toml", use_sd_scripts=False)
    finally:
        shutil.rmtree(root / "datasets" / "s", ignore_errors=True)
        shutil.rmtree(root / "outputs" / "s", ignore_errors=True)
    assert real["engine"] == "sd-scripts"
    key = lambda d: sorted((Path(i["path"]).name, i["bucket"], i["resized"]) for i in d["images"])  # noqa: E731
    assert key(real) == key(sim) and real["steps_per_epoch"] == sim["steps_per_epoch"]


def test_export_into_a_fluxgym_folder_runs_the_preflight(tmp_path, example_dataset):
    out = tmp_path / "fluxgym"
    (out / "sd-scripts").mkdir(parents=True)
    r = runner.invoke(app, ["export", str(example_dataset), "-o", str(out), "-t", "ohwx", "-r", "512", "--json"])
    assert r.exit_code == 0, r.output
    pre = json.loads(r.stdout)["preflight"]
    assert pre["engine"] == "simulator" and pre["images_found"] == 6 and pre["captions_read"] == 6
