"""doctor's upscale lines: the Real-ESRGAN engine and its devices, the spandrel models found."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fluxgym_coach.enhance.backends import realesrgan
from fluxgym_coach.enhance.backends.realesrgan import VulkanProbe, explain_load_error
from fluxgym_coach.cli import app

runner = CliRunner()


def _checks(*args: str) -> dict[str, dict]:
    r = runner.invoke(app, ["doctor", "--json", *args])
    return {c["name"]: c for c in json.loads(r.stdout)["checks"] if c["area"] == "upscale"}


def test_doctor_names_the_vulkan_devices_and_the_bundled_models():
    found = realesrgan.probe()
    if not found.ok:
        pytest.skip(found.reason)
    checks = _checks()
    assert checks["realesrgan"]["status"] == "ok" and "Vulkan devices" in checks["realesrgan"]["detail"]
    assert "realesrgan-x4plus" in checks["realesrgan models"]["detail"]
    for _, name in found.devices:
        assert name in checks["realesrgan"]["detail"]


def test_doctor_says_which_package_a_missing_library_needs(monkeypatch):
    reason = explain_load_error("OSError: libvulkan.so.1: cannot open shared object file")
    monkeypatch.setattr(realesrgan, "probe", lambda: VulkanProbe(False, reason=reason))
    check = _checks()["realesrgan"]
    assert check["status"] == "warn" and "Pillow" in check["detail"]
    assert "apt-get install -y libvulkan1" in check["fix"]


def test_doctor_lists_the_models_in_models_dir(tmp_path):
    pytest.importorskip("spandrel")
    (tmp_path / "4x-Mine.pth").write_bytes(b"x")
    checks = _checks("--models-dir", str(tmp_path))
    assert checks["spandrel"]["status"] == "ok"
    assert "4x-Mine.pth" in checks["spandrel models"]["detail"]
