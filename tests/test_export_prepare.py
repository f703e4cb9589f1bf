"""export.py, prepare.py and their commands: the dataset Fluxgym and kohya train on."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import toml as toml_0_10_2

from fluxgym_coach.audit.buckets import BucketSettings, place
from fluxgym_coach.cli import app
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.export.fluxgym import ExportError, caption_for_export, export_dataset, safe_stem
from tests.helpers_images import jpeg_with_orientation, photo_like, png_header_only, save

runner = CliRunner()
KOHYA_EXTS = {".png", ".jpg"}


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.iterdir() if p.is_file() or p.is_symlink() and p.exists()}


def validate_fluxgym_export(out: Path, slug: str, trigger: str, resolution: int,
                            expect_upscaled: bool) -> list[Path]:
    """Check every rule of a Fluxgym/kohya dataset; returns the image files."""
    ds_dir, outputs = out / "datasets" / slug, out / "outputs" / slug
    images = sorted(p for p in ds_dir.iterdir() if p.suffix != ".txt")
    captions = sorted(p for p in ds_dir.iterdir() if p.suffix == ".txt")
    assert images and len(images) == len(captions)
    stems = [p.stem for p in images]
    assert len({s.lower() for s in stems}) == len(stems)
    for img in images:
        assert img.suffix in KOHYA_EXTS
        assert all(c.isascii() and (c.isalnum() or c in "_-") for c in img.stem)
        with Image.open(img) as im:
            assert im.mode == "RGB"
            assert {"PNG": ".png", "JPEG": ".jpg"}[im.format] == img.suffix
            w, h = im.size
        # zero-crop export: a 32-multiple size of area <= resolution^2 that kohya keeps as it is
        assert w % 32 == 0 and h % 32 == 0 and w * h <= resolution ** 2, (img.name, w, h)
        if expect_upscaled and max(w, h) / min(w, h) <= 3:
            assert w * h >= 0.9 * resolution ** 2, (img.name, w, h)
        raw = (ds_dir / f"{img.stem}.txt").read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf")
        text = raw.decode("utf-8")
        assert text.strip() and "\n" not in text.strip()
        assert text.lower().startswith(trigger.lower())
    text = (outputs / "dataset.toml").read_text()
    toml = tomllib.loads(text)
    assert toml_0_10_2.loads(text) == toml  # kohya's parser reads the same
    assert toml["general"] == {"shuffle_caption": False, "caption_extension": ".txt", "keep_tokens": 1}
    (ds,) = toml["datasets"]
    assert ds["resolution"] == resolution and ds["batch_size"] == 1 and ds["keep_tokens"] == 1
    assert ds["enable_bucket"] is True and ds["bucket_no_upscale"] is True
    (subset,) = ds["subsets"]
    assert subset["image_dir"] == f"datasets/{slug}"  # relative to the Fluxgym folder train.sh runs in
    settings = BucketSettings("kohya", ds["resolution"], ds["enable_bucket"], ds["bucket_no_upscale"],
                              bucket_reso_steps=ds["bucket_reso_steps"])
    for img in images:
        with Image.open(img) as im:
            assert place(im.size, settings).unchanged, img.name  # kohya neither rescales nor crops
    assert subset["class_tokens"] == trigger and subset["num_repeats"] == 10
    assert (outputs / "sample_prompts.txt").read_text().strip() == trigger
    manifest = [json.loads(line) for line in (outputs / "manifest.jsonl").read_text().splitlines()]
    assert sorted(m["file"] for m in manifest) == [p.name for p in images]
    return images


def test_prepare_on_example_dataset_makes_a_valid_fluxgym_dataset(example_dataset, tmp_path):
    before = _digests(example_dataset)
    out = tmp_path / "fluxgym"
    r = runner.invoke(app, ["prepare", str(example_dataset), "--out", str(out), "--trigger", "ohwx",
                            "--name", "My Style"])
    assert r.exit_code == 0, r.output
    images = validate_fluxgym_export(out, "my-style", "ohwx", 1024, expect_upscaled=True)
    assert len(images) == 6
    assert "captions missing" in r.stdout
    assert "next: write the 4 missing captions: fluxgym-coach tui" in r.stdout
    assert "next: train: copy" in r.stdout  # tmp_path is not a Fluxgym folder
    chelsea = (out / "datasets" / "my-style" / "chelsea.txt").read_text()
    assert chelsea == "ohwx, a tabby cat lying on a wooden floor, looking at the camera"
    assert (out / "datasets" / "my-style" / "camera.txt").read_text() == "ohwx"
    assert "colorization needs a Forge backend" in r.output
    after = {k: v for k, v in _digests(example_dataset).items()}
    assert after == before  # originals and sidecars untouched


def test_prepare_refuses_a_non_empty_target_and_force_cleans_stale_files(example_dataset, tmp_path):
    out = tmp_path / "fg"
    assert runner.invoke(app, ["prepare", str(example_dataset), "-o", str(out), "-t", "ohwx"]).exit_code == 0
    stale = out / "datasets" / "dataset"
    (stale / "old_1024x1024_flux.npz").write_bytes(b"x")
    (stale / "old.png").write_bytes(b"x")
    (out / "outputs" / "dataset" / "my-lora.safetensors").write_bytes(b"weights")
    r = runner.invoke(app, ["prepare", str(example_dataset), "-o", str(out), "-t", "ohwx"])
    assert r.exit_code == 2 and "--force" in r.output
    r = runner.invoke(app, ["prepare", str(example_dataset), "-o", str(out), "-t", "ohwx", "--force"])
    assert r.exit_code == 0, r.output
    assert not (stale / "old_1024x1024_flux.npz").exists() and not (stale / "old.png").exists()
    assert (out / "outputs" / "dataset" / "my-lora.safetensors").read_bytes() == b"weights"
    assert "enhanced, from cache" in r.stdout


def test_export_alone_never_upscales_and_says_so(example_dataset, tmp_path):
    with Dataset(example_dataset) as ds:
        ds.scan()
        report = export_dataset(ds, tmp_path / "fg", "cats", "ohwx", resolution=512)
    validate_fluxgym_export(tmp_path / "fg", "cats", "ohwx", 512, expect_upscaled=False)
    # below 80 % of 512^2 after the grid: 448x288 (49 %) and 384x320; coffee 576x384 is 84 %
    assert sorted(report.below_resolution) == ["chelsea.png", "horse.png"]
    sizes = {f.source: (f.width, f.height) for f in report.files}
    assert sizes["astronaut.png"] == (512, 512) and sizes["chelsea.png"] == (448, 288)  # from 451x300


def test_export_applies_exif_orientation_and_flattens_alpha(tmp_path):
    root = tmp_path / "ds"
    jpeg_with_orientation(root.mkdir() or root / "rot.jpg", (1200, 800), 6)
    rgba = Image.new("RGBA", (1100, 900), (10, 200, 10, 0))
    rgba.paste((200, 10, 10, 255), (0, 0, 550, 900))
    save(rgba, root / "alpha.png")
    with Dataset(root) as ds:
        ds.scan()
        export_dataset(ds, tmp_path / "fg", "t", "ohwx", resolution=768)
    with Image.open(tmp_path / "fg/datasets/t/rot.jpg") as im:
        assert im.size == (608, 928)  # portrait after rotation (800x1200 -> the 768 bucket grid)
    with Image.open(tmp_path / "fg/datasets/t/alpha.png") as im:
        assert im.mode == "RGB"
        assert im.getpixel((im.width - 1, 0)) == (255, 255, 255)


def test_bad_input_is_reported_by_name_and_the_rest_goes_on(tmp_path):
    root = tmp_path / "messy"
    root.mkdir()
    save(photo_like((1100, 1000), seed=1), root / "good photo.png")
    save(photo_like((1100, 1000), seed=2), root / "Été à Zürich.jpg", quality=90)
    save(photo_like((1100, 1000), seed=3), root / "a b.png")
    save(photo_like((1100, 1000), seed=4), root / "a-b.png")
    (root / "empty.jpg").write_bytes(b"")
    buf = io.BytesIO()
    photo_like((900, 900), seed=5).save(buf, "JPEG")
    (root / "truncated.jpg").write_bytes(buf.getvalue()[:3000])
    (root / "notes.png").write_text("this is text")
    png_header_only(root / "bomb.png", 40000, 40000)
    os.symlink(root / "gone.png", root / "unreadable.png")
    (root / "good photo.txt").write_bytes("une photo réussie".encode("cp1252"))
    before = _digests(root)
    out = tmp_path / "fg"
    r = runner.invoke(app, ["prepare", str(root), "-o", str(out), "-t", "ohwx", "--json"])
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    errors = data["scan"]["errors"]
    assert set(errors) == {"empty.jpg", "truncated.jpg", "notes.png", "bomb.png", "unreadable.png"}
    assert "empty file" in errors["empty.jpg"] and "truncated" in errors["truncated.jpg"]
    assert "not an image" in errors["notes.png"] and "too many pixels" in errors["bomb.png"]
    assert "good photo.png" in data["scan"]["warnings"]
    files = {f["source"]: f["file"] for f in data["export"]["files"]}
    assert set(files) == {"good photo.png", "Été à Zürich.jpg", "a b.png", "a-b.png"}
    assert Path(files["Été à Zürich.jpg"]).stem == "Ete_a_Zurich"
    assert {files["a b.png"], files["a-b.png"]} == {"a_b.png", "a_b-2.png"}
    assert any("collides" in w for w in data["export"]["warnings"]["a-b.png"])
    caption = (out / "datasets" / "messy" / "good_photo.txt").read_bytes().decode("utf-8")
    assert caption == "ohwx, une photo réussie"
    assert _digests(root) == before  # nothing of the user's was changed
    validate_fluxgym_export(out, "messy", "ohwx", 1024, expect_upscaled=True)


def test_prepare_names_unreadable_images_with_the_same_exit_code_on_a_second_run(example_dataset, tmp_path):
    """issue 11 item 13: the second run (the dataset already scanned) names the unreadable
    image and exits 1 as the first run did, in the table and in --json."""
    (example_dataset / "broken.png").write_bytes(b"not a png at all")
    args = ["prepare", str(example_dataset), "-o", str(tmp_path / "fg"), "-t", "ohwx", "--backend", "local",
            "--force"]
    for _ in range(2):
        r = runner.invoke(app, args)
        assert r.exit_code == 1, r.output
        assert "broken.png" in r.stderr and "Pillow" in " ".join(r.stderr.split())
    r = runner.invoke(app, args + ["--json"])
    assert r.exit_code == 1 and list(json.loads(r.stdout)["scan"]["errors"]) == ["broken.png"]


def test_export_names_unreadable_images_on_a_second_run_and_reuses_the_last_name(example_dataset, tmp_path):
    """issue 11 item 13 for `export`: an image an earlier run found unreadable is named and
    fails the run again. Without --name, the name of the last export is used (as the TUI's
    form pre-fills it), else the folder's."""
    (example_dataset / "broken.png").write_bytes(b"not a png at all")
    out = tmp_path / "fg"
    args = ["export", str(example_dataset), "-o", str(out), "-t", "ohwx", "-r", "512", "--force"]
    r = runner.invoke(app, args + ["-n", "my style"])
    assert r.exit_code == 1 and "broken.png" in r.stderr, r.output
    r = runner.invoke(app, args + ["--json"])
    assert r.exit_code == 1, r.output
    data = json.loads(r.stdout)
    assert data["dataset_dir"].endswith("my-style") and "broken.png" in data["skipped"]
    assert not (out / "datasets" / "dataset").exists()


def test_strict_turns_warnings_into_failure(example_dataset, tmp_path):
    (example_dataset / "horse.png").unlink()
    (example_dataset / "camera.png").unlink()
    for p in example_dataset.glob("*.png"):
        if not (example_dataset / f"{p.stem}.txt").exists():
            (example_dataset / f"{p.stem}.txt").write_text("ohwx, a photo")
    (example_dataset / "rocket.txt").write_text("ohwx, a rocket")
    args = ["prepare", str(example_dataset), "-o", str(tmp_path / "fg"), "-t", "ohwx", "-r", "512"]
    assert runner.invoke(app, args).exit_code == 0
    (example_dataset / "rocket.txt").unlink()
    assert runner.invoke(app, args + ["--force"]).exit_code == 0
    r = runner.invoke(app, args + ["--force", "--strict"])
    assert r.exit_code == 1 and "needs caption" in r.output


def test_prepare_on_all_real_images(real_dataset, tmp_path):
    r = runner.invoke(app, ["prepare", str(real_dataset), "-o", str(tmp_path / "fg"), "-t", "ohwx", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert len(data["export"]["files"]) == len([p for p in real_dataset.iterdir() if p.is_file()])
    validate_fluxgym_export(tmp_path / "fg", "real", "ohwx", 1024, expect_upscaled=True)
    files = {f["source"]: f for f in data["export"]["files"]}
    assert files["retina.jpg"]["variant"] == "original"  # already 1411 px: not upscaled
    assert files["astronaut.png"]["variant"] != "original"
    assert "colorization needs a Forge backend" in data["enhance_reasons"]["camera.png"]


def _fake_fluxgym(root: Path) -> Path:
    """A Fluxgym folder with sd-scripts' trainer and the model files (empty), and a
    stand-in ``accelerate`` that records its working folder and arguments; returns
    the folder holding that ``accelerate``."""
    from fluxgym_coach.export.train_script import MODEL_PATHS, TRAINER
    for rel in [TRAINER, *MODEL_PATHS.values()]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    bin_dir = root.parent / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "accelerate"
    stub.write_text('#!/bin/sh\npwd > "$ACCELERATE_LOG"\nfor a in "$@"; do echo "$a" >> "$ACCELERATE_LOG"; done\n')
    stub.chmod(0o755)
    return bin_dir


def _run_train_sh(script: Path, bin_dir: Path, log: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", ACCELERATE_LOG=str(log))
    return subprocess.run(["bash", str(script)], cwd="/", env=env, capture_output=True, text=True,
                          timeout=30)


@pytest.mark.parametrize("vram, expected, absent", [
    ("20G", ["--optimizer_type", "adamw8bit"], ["--split_mode"]),
    ("12G", ["--optimizer_type", "adafactor", "relative_step=False", "--split_mode",
             "train_blocks=single"], ["adamw8bit"]),
])
def test_export_writes_a_train_sh_that_trains_from_the_fluxgym_folder(
        example_dataset, tmp_path, vram, expected, absent):
    root = tmp_path / "fluxgym"
    bin_dir = _fake_fluxgym(root)
    with Dataset(example_dataset) as ds:
        ds.scan()
        report = export_dataset(ds, root, "My Style", "ohwx", resolution=512, vram=vram)
    script = root / "outputs" / "my-style" / "train.sh"
    assert report.train_script == script and report.fluxgym_root and report.missing_models == []
    assert os.access(script, os.X_OK)
    log = tmp_path / "accelerate.log"
    from fluxgym_coach.cli.cmd_export import next_steps
    assert next_steps(report, example_dataset)[-1] == f"train: bash {script}"
    done = _run_train_sh(script, bin_dir, log)  # run from "/": the script finds its folder
    assert done.returncode == 0, done.stderr
    cwd, *argv = log.read_text().splitlines()
    assert Path(cwd) == root
    assert argv[:2] == ["launch", "--mixed_precision"] and "sd-scripts/flux_train_network.py" in argv

    def value(flag: str) -> str:
        return argv[argv.index(flag) + 1]
    # every path it names exists from the folder it runs in
    for flag in ("--pretrained_model_name_or_path", "--clip_l", "--t5xxl", "--ae", "--dataset_config"):
        assert (root / value(flag)).is_file(), flag
    assert tomllib.loads((root / value("--dataset_config")).read_text())["datasets"][0]["resolution"] == 512
    assert value("--output_dir") == "outputs/my-style" and value("--output_name") == "my-style"
    assert value("--network_module") == "networks.lora_flux" and value("--learning_rate") == "8e-4"
    assert "--cache_text_encoder_outputs" in argv and "--fp8_base" in argv
    for word in expected:
        assert word in argv
    for word in absent:
        assert word not in argv


def test_train_sh_outside_a_fluxgym_folder_says_where_to_run_it(example_dataset, tmp_path):
    out = tmp_path / "plain"
    r = runner.invoke(app, ["export", str(example_dataset), "-o", str(out), "-t", "ohwx", "--vram", "16G"])
    assert r.exit_code == 0, r.output
    assert "train.sh" in r.stdout and "no sd-scripts/" in r.stdout
    script = out / "outputs" / "dataset" / "train.sh"
    assert "adafactor" in script.read_text()
    done = _run_train_sh(script, tmp_path, tmp_path / "never.log")
    assert done.returncode == 2 and "sd-scripts/flux_train_network.py not found" in done.stderr
    assert not (tmp_path / "never.log").exists()
    r = runner.invoke(app, ["export", str(example_dataset), "-o", str(out), "-t", "ohwx", "--vram", "8G"])
    assert r.exit_code == 2 and "8G" in r.output
    # a Fluxgym folder whose models are not downloaded yet: said, with the missing files
    (out / "sd-scripts").mkdir()
    (out / "models" / "vae").mkdir(parents=True)
    (out / "models" / "vae" / "ae.sft").write_bytes(b"")
    r = runner.invoke(app, ["export", str(example_dataset), "-o", str(out), "-t", "ohwx", "--force",
                            "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["fluxgym_root"] is True
    assert data["missing_models"] == ["models/unet/flux1-dev.sft", "models/clip/clip_l.safetensors",
                                      "models/clip/t5xxl_fp16.safetensors"]


def test_export_argument_errors(example_dataset, tmp_path):
    with Dataset(example_dataset) as ds:
        with pytest.raises(ExportError, match="trigger"):
            export_dataset(ds, tmp_path / "x", "n", "  ")
        with pytest.raises(ExportError, match="inside the dataset"):
            export_dataset(ds, example_dataset / "out", "n", "ohwx")
        with pytest.raises(ExportError, match="multiple of 64"):
            export_dataset(ds, tmp_path / "x", "n", "ohwx", resolution=1000)
        with pytest.raises(ExportError, match="no letters"):
            export_dataset(ds, tmp_path / "x", "!!!", "ohwx")
        with pytest.raises(ExportError, match="unknown VRAM size '8G'"):
            export_dataset(ds, tmp_path / "x", "n", "ohwx", vram="8G")


@pytest.mark.parametrize("caption, expected", [
    (None, ("ohwx", "placeholder")),
    ("  ", ("ohwx", "placeholder")),
    ("ohwx, a cat", ("ohwx, a cat", "ohwx")),
    ("OHWX a cat", ("OHWX a cat", "ohwx")),
    ("ohwxy cat", ("ohwx, ohwxy cat", "trigger added")),
    ("a cat\nsecond line", ("ohwx, a cat second line", "trigger added")),
])
def test_caption_rules(caption, expected):
    text, status = caption_for_export(caption, "ohwx")
    assert text == expected[0]
    assert status == ("ok" if expected[1] == "ohwx" else expected[1])


def test_safe_stem():
    assert safe_stem("Été à Zürich") == "Ete_a_Zurich"
    assert safe_stem("日本") != "" and safe_stem("🙂") == "image"


def test_python_dash_m_runs_the_same_cli():
    r = subprocess.run([sys.executable, "-m", "fluxgym_coach", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "prepare" in r.stdout and "export" in r.stdout


def test_prepare_learned_defaults_uses_accepted_settings_unless_overridden(example_dataset, tmp_path):
    from fluxgym_coach.feedback import ACCEPT, Decision, record_decision

    with Dataset(example_dataset) as ds:
        ds.scan()
        rel = ds.images()[0].relpath
        for i in range(6):  # six judged variants (only the latest decision per variant counts)
            record_decision(ds.store, Decision(rel, ACCEPT, variant=f"k{i}", source="test",
                                               params={"sharpen": 0.4, "upscaler": "Lanczos"}))
    base = ["prepare", str(example_dataset), "-o", str(tmp_path / "fg"), "-t", "ohwx", "--force",
            "--learned-defaults", "--json"]
    r = runner.invoke(app, base)
    assert r.exit_code == 0, r.output
    files = json.loads(r.stdout)["export"]["files"]
    assert {f["params"].get("sharpen") for f in files if f["variant"] != "original"} == {0.4}
    r = runner.invoke(app, base + ["--sharpen", "0.1"])
    files = json.loads(r.stdout)["export"]["files"]
    assert {f["params"].get("sharpen") for f in files if f["variant"] != "original"} == {0.1}
