"""``fluxgym-coach enhance`` and ``fake-forge`` against the fake Forge server (real HTTP)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from fluxgym_coach import imaging
from fluxgym_coach.enhance.backends.forge import output_size
from fluxgym_coach.cli import app
from tests.fixtures_forge import draw_image

runner = CliRunner()


@pytest.fixture(autouse=True)
def default_backend(monkeypatch):
    """``enhance`` as a user runs it: ``--backend`` left at its default, ``auto``, which
    is Forge when ``--api-url`` is given (conftest sets ``local`` for every other test)."""
    monkeypatch.setenv("FLUXGYM_COACH_BACKEND", "auto")


def enhance(*args: str):
    return runner.invoke(app, ["enhance", *args], catch_exceptions=False)


def flat(text: str) -> str:
    """The output with line wrapping undone (Rich wraps long messages)."""
    return " ".join(text.split())


def test_folder_to_output_dir_with_colorize_and_cache(fake_forge, small_images, tmp_path):
    out = tmp_path / "out"
    r = enhance(str(small_images[0].parent), "-o", str(out), "--api-url", fake_forge.url,
                "--upscaler", "Lanczos", "--scale", "2", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["results"]
    assert [Path(x["output"]).name for x in rows] == sorted(f"{p.stem}_enhanced.png"
                                                            for p in small_images)
    assert {x["status"] for x in rows} == {"enhanced"}
    for p in small_images:
        im = Image.open(out / f"{p.stem}_enhanced.png")
        assert im.size == output_size(*Image.open(p).size, 2)
    assert not imaging.is_grayscale_rgb(imaging.load_upright_rgb(out / "bw_enhanced.png"))
    # again with --force: everything from the cache, no job request
    fake_forge.reset_counters()
    r = enhance(str(small_images[0].parent), "-o", str(out), "--api-url", fake_forge.url,
                "--upscaler", "Lanczos", "--scale", "2", "--force", "--json")
    assert r.exit_code == 0
    assert {x["status"] for x in json.loads(r.stdout)["results"]} == {"unchanged"}
    assert fake_forge.job_requests == 0


def test_existing_outputs_are_skipped_without_force(fake_forge, small_images):
    target = small_images[0].with_name("c0_enhanced.png")
    target.write_bytes(b"mine")
    r = enhance(str(small_images[0]), str(small_images[1]), "--api-url", fake_forge.url,
                "--upscaler", "Lanczos", "--no-colorize")
    assert r.exit_code == 0, r.output
    assert target.read_bytes() == b"mine"
    assert re.search(r"exists\s+.*c0.png", r.stdout) and "use --force" in flat(r.stdout)
    assert small_images[1].with_name("c1_enhanced.png").exists()
    assert fake_forge.images_processed == 1


def test_glob_single_output_file_format_and_scale(fake_forge, small_images, tmp_path):
    out = tmp_path / "one.jpg"
    r = enhance(str(small_images[0].parent / "c0.*"), "-o", str(out), "--api-url", fake_forge.url,
                "--scale", "3", "--upscaler", "R-ESRGAN 4x+")
    assert r.exit_code == 0, r.output
    assert Image.open(out).format == "JPEG" and Image.open(out).size == output_size(40, 30, 3)


def test_glob_skips_outputs_of_an_earlier_run(fake_forge, small_images):
    r = enhance(str(small_images[0].parent / "c*.png"), "--api-url", fake_forge.url,
                "--upscaler", "Lanczos", "--format", "webp")
    assert r.exit_code == 0, r.output
    r = enhance(str(small_images[0].parent / "c*.png"), "--api-url", fake_forge.url,
                "--upscaler", "Lanczos", "--format", "webp", "--json")
    rows = json.loads(r.stdout)["results"]
    assert len(rows) == 4 and {x["status"] for x in rows} == {"exists"}


def test_usage_errors_exit_2(fake_forge, small_images, tmp_path):
    r = enhance(str(tmp_path / "nope.png"), "--api-url", fake_forge.url)
    assert r.exit_code == 2 and "nope.png: no such file or folder" in flat(r.output)
    r = enhance(str(small_images[0]), "--scale", "5")
    assert r.exit_code == 2
    r = enhance(str(small_images[0]), "-o", str(small_images[0]), "--api-url", fake_forge.url)
    assert r.exit_code == 2 and "originals are never overwritten" in flat(r.output)
    (tmp_path / "empty").mkdir()
    r = enhance(str(tmp_path / "empty"))
    assert r.exit_code == 2 and "no image files" in flat(r.output)


def test_server_problems_exit_3(fake_forge, small_images, unused_tcp_port):
    r = enhance(str(small_images[0]), "--api-url", f"http://127.0.0.1:{unused_tcp_port}")
    assert r.exit_code == 3 and "start it with --api" in flat(r.output)
    r = enhance(str(small_images[0]), "--api-url", fake_forge.url, "--upscaler", "SwinIR 8x")
    assert r.exit_code == 3 and "closest: SwinIR 4x" in flat(r.output)


def test_auth_from_env_never_printed(make_fake_forge, small_images, monkeypatch):
    server = make_fake_forge(auth="ann:pa55word")
    r = enhance(str(small_images[0]), "--api-url", server.url, "--upscaler", "Lanczos")
    assert r.exit_code == 3 and "--api-auth" in flat(r.output)
    monkeypatch.setenv("FLUXGYM_COACH_API_AUTH", "ann:pa55word")
    r = enhance(str(small_images[0]), "--api-url", server.url, "--upscaler", "Lanczos", "-v")
    assert r.exit_code == 0, r.output
    assert "pa55word" not in r.output


def test_failed_image_exit_1(fake_forge, small_images):
    broken = small_images[0].parent / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n....")
    r = enhance(str(broken), str(small_images[0]), "--api-url", fake_forge.url, "--upscaler",
                "Lanczos")
    assert r.exit_code == 1
    assert "broken.png" in flat(r.output) and "c0_enhanced.png" in flat(r.stdout)


def test_pool_of_urls_comma_separated(make_fake_forge, small_images, tmp_path):
    a, b = make_fake_forge(), make_fake_forge()
    a.faults.job_latency = b.faults.job_latency = 0.05
    r = enhance(str(small_images[0].parent), "-o", str(tmp_path / "o"), "--api-url",
                f"{a.url},{b.url}", "--upscaler", "Lanczos", "--no-colorize")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "o").iterdir())) == 5


def test_local_backend_warns_about_bw(small_images, tmp_path):
    r = enhance(str(small_images[-1]), "-o", str(tmp_path / "x.png"), "--backend", "local", "--scale", "2")
    assert r.exit_code == 0
    assert "colorization needs a Forge backend" in flat(r.output)
    assert Image.open(tmp_path / "x.png").size == (72, 56)


def test_real_images_sizes_colorize_and_cached_rerun(real_dataset, make_fake_forge, tmp_path):
    server = make_fake_forge()
    out = tmp_path / "enhanced"
    r = enhance(str(real_dataset), "-o", str(out), "--api-url", server.url, "--scale", "2",
                "--upscaler", "R-ESRGAN 4x+", "--json", "--cache-dir", str(tmp_path / "cache"))
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["results"]
    assert len(rows) == len(list(real_dataset.iterdir()))
    gray_inputs = 0
    for row in rows:
        src, dst = Path(row["source"]), Path(row["output"])
        w, h = imaging.load_upright_rgb(src).size
        assert Image.open(dst).size == output_size(w, h, 2)
        if imaging.measure(imaging.open_image(src)).is_grayscale:
            gray_inputs += 1
            assert not imaging.measure(imaging.open_image(dst)).is_grayscale, src.name
    assert gray_inputs >= 1
    assert server.jobs_by_path["/sdapi/v1/img2img"] == gray_inputs
    server.reset_counters()
    r = enhance(str(real_dataset), "-o", str(out), "--api-url", server.url, "--scale", "2",
                "--upscaler", "R-ESRGAN 4x+", "--json", "--force", "--cache-dir",
                str(tmp_path / "cache"))
    assert r.exit_code == 0
    assert {x["status"] for x in json.loads(r.stdout)["results"]} == {"unchanged"}
    assert server.job_requests == 0


def test_python_m_and_fake_forge_command(tmp_path, unused_tcp_port):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "fluxgym_coach", "fake-forge", "--port",
                             str(unused_tcp_port), "--api-auth", "demo:topsecret"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{unused_tcp_port}" in line and "topsecret" not in line
        img = draw_image(tmp_path / "a.png", (20, 12))
        r = subprocess.run([sys.executable, "-m", "fluxgym_coach", "enhance", str(img), "--api-url",
                            f"http://127.0.0.1:{unused_tcp_port}", "--api-auth", "demo:topsecret",
                            "--upscaler", "Lanczos", "--scale", "2", "-q"],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        assert Image.open(tmp_path / "a_enhanced.png").size == (40, 24)
        assert "topsecret" not in flat(r.stdout) + r.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_ctrl_c_then_the_same_command_continues(fake_forge, tmp_path):
    import signal
    for i in range(8):
        draw_image(tmp_path / "in" / f"i{i}.png", (24, 16), seed=i)
    fake_forge.faults.image_latency = 0.15
    cmd = [sys.executable, "-m", "fluxgym_coach", "enhance", str(tmp_path / "in"), "-o",
           str(tmp_path / "out"), "--api-url", fake_forge.url, "--upscaler", "Lanczos",
           "--cache-dir", str(tmp_path / "cache"), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60

    def stored() -> int:
        return sum(1 for f in (tmp_path / "cache").rglob("*.png") if not f.name.startswith("."))

    while stored() < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "run the same command again" in flat(stderr)
    assert "Traceback" not in stderr
    assert fake_forge.interrupts >= 1          # the running job was interrupted on the server
    assert not (tmp_path / "out").exists()     # nothing half-written
    kept = stored()
    assert 2 <= kept < 8
    fake_forge.faults.image_latency = 0
    while not fake_forge.idle():  # a request queued before Ctrl-C still runs on the server
        time.sleep(0.01)
    fake_forge.reset_counters()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "out").iterdir())) == 8
    assert fake_forge.images_processed == 8 - kept   # finished images are not sent again


def test_cli_progress_bar_counts_work_inside_running_requests():
    from fluxgym_coach.cli.common import EventProgress
    from fluxgym_coach.events import InFlightProgress, ItemDone, JobStarted

    with EventProgress(quiet=True) as sink:
        sink(JobStarted("j", "enhance", 10))

        def completed() -> float:
            return sink.progress.tasks[0].completed

        sink(InFlightProgress("j", 3))
        assert completed() == 3
        sink(ItemDone("j", "a.png"))
        sink(ItemDone("j", "b.png"))
        sink(InFlightProgress("j", 0))  # a stale poll never moves the bar back
        assert completed() == 3
        for name in "cdef":
            sink(ItemDone("j", f"{name}.png"))
        assert completed() == 6
        sink(InFlightProgress("j", 2.0))
        assert completed() == 8


def test_problems_shared_by_many_files_print_as_one_line():
    from fluxgym_coach.cli.common import Problems, err, report_problems

    problems = Problems()
    for i in range(12):
        problems.warnings[f"img{i:02d}.png"] = ["needs caption"]
    problems.warnings["odd.png"] = ["below resolution 512"]
    problems.failures["bad.png"] = "truncated file"
    with err.capture() as captured:
        report_problems(problems)
    lines = [line for line in captured.get().splitlines() if line.strip()]
    text = " ".join(lines)
    assert "failed  bad.png: truncated file" in text and "odd.png: below resolution 512" in text
    assert text.count("needs caption") == 1
    assert "12 images: needs caption (img00.png, img01.png" in text and "and 4 more" in text
