"""``fluxgym-coach doctor`` against real parts: the fake Forge server over HTTP, a Fluxgym
folder laid out on disk, the real cache."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from fluxgym_coach.cli import app
from fluxgym_coach.export.train_script import MODEL_PATHS, TRAINER

runner = CliRunner()


def _fluxgym(root: Path, models: bool = True) -> Path:
    for rel in [TRAINER, *(MODEL_PATHS.values() if models else [])]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    accelerate = root / "env" / "bin" / "accelerate"
    accelerate.parent.mkdir(parents=True)
    accelerate.write_text("#!/bin/sh\n")
    accelerate.chmod(0o755)
    return root


def _doctor(*args: str) -> tuple[int, dict]:
    r = runner.invoke(app, ["doctor", "--json", *args])
    return r.exit_code, json.loads(r.stdout)


def _by_area(report: dict, area: str) -> list[dict]:
    return [c for c in report["checks"] if c["area"] == area]


def test_doctor_passes_with_a_server_and_a_fluxgym_folder(fake_forge, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # accelerate only in Fluxgym's env/
    code, report = _doctor("--api-url", fake_forge.url, "--fluxgym", str(_fluxgym(tmp_path / "fg")))
    assert code == 0 and report["ok"] is True
    (server,) = _by_area(report, "forge")
    assert server["status"] == "ok" and server["name"] == fake_forge.url
    assert "upscalers" in server["detail"] and "samplers" in server["detail"]
    fluxgym = {c["name"]: c for c in _by_area(report, "fluxgym")}
    assert fluxgym["models"]["status"] == "ok"
    assert fluxgym["accelerate"]["detail"].endswith("env/bin/accelerate")
    assert {c["name"] for c in _by_area(report, "cache")} == {"folder", "disk"}
    assert fake_forge.job_requests == 0  # only GETs: nothing queued on the GPU


def test_doctor_fails_with_the_fix_for_each_problem(unused_tcp_port, tmp_path, make_fake_forge):
    locked = make_fake_forge(auth="me:secret")
    code, report = _doctor("--api-url", f"http://127.0.0.1:{unused_tcp_port}", "--api-url", locked.url,
                           "--fluxgym", str(tmp_path / "nothing"))
    assert code == 1 and report["ok"] is False
    down, refused = _by_area(report, "forge")
    assert down["status"] == "fail" and "--api" in down["fix"]
    assert refused["status"] == "fail" and "--api-auth" in refused["fix"]
    (fluxgym,) = _by_area(report, "fluxgym")
    assert fluxgym["status"] == "fail" and "sd-scripts" in fluxgym["fix"]
    assert "secret" not in json.dumps(report)


def test_doctor_warns_about_models_fluxgym_has_not_downloaded(tmp_path):
    code, report = _doctor("--fluxgym", str(_fluxgym(tmp_path / "fg", models=False)))
    assert code == 0  # a warning is not a failure
    models = next(c for c in _by_area(report, "fluxgym") if c["name"] == "models")
    assert models["status"] == "warn" and "models/unet/flux1-dev.sft" in models["detail"]
    assert [c["status"] for c in _by_area(report, "forge")] == ["skip"]


def test_doctor_table_names_every_check(fake_forge):
    r = runner.invoke(app, ["doctor", "--api-url", fake_forge.url])
    assert r.exit_code == 0, r.output
    assert "python: interpreter" in r.stdout and f"forge: {fake_forge.url}" in r.stdout
