"""The export's files as kohya and Fluxgym read them: TOML parsed by kohya's own
parser (``toml`` 0.10.2), a relative ``image_dir`` that survives the documented
copy into a Fluxgym folder, ``train.sh``'s pre-flight, and staging + swap (a
kill never leaves a visible partial export)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest
import toml as toml_0_10_2

from fluxgym_coach.export import fluxgym as export_mod
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.export.fluxgym import dataset_toml, export_dataset
from fluxgym_coach.export.train_script import MODEL_PATHS, TRAINER
from tests.helpers_images import photo_like, save

HOSTILE = ["l'oeil", 'say "hi"', "back\\slash\\n", "#not a comment", "ünïcödé 日本 🙂",
           "with  spaces ", "'''", '"""', "a\tb", "C:\\Users\\me\\it's", "\\u0022", "\"'"]


@pytest.mark.parametrize("value", HOSTILE)
def test_toml_reads_back_the_same_with_kohyas_parser_and_tomllib(value):
    text = dataset_toml(f"datasets/{value}", value, 1024, 10)
    assert "[[datasets]]" in text and "[[datasets.subsets]]" in text and "{" not in text
    ours, kohyas = tomllib.loads(text), toml_0_10_2.loads(text)
    assert ours == kohyas
    (subset,) = kohyas["datasets"][0]["subsets"]
    assert subset["class_tokens"] == value and subset["image_dir"] == f"datasets/{value}"
    assert kohyas["datasets"][0]["bucket_no_upscale"] is True


def test_every_short_hostile_string_reads_back_or_is_refused():
    import itertools

    from fluxgym_coach.export.files import toml_safe
    refused = 0
    for n in (1, 2, 3):
        for combo in itertools.product(['"', "'", "\\", "#", "a", " ", "\t", "é", "u"], repeat=n):
            v = "".join(combo)
            if not toml_safe(v):
                refused += 1
                continue
            text = dataset_toml("datasets/x", v, 512, 1)
            assert toml_0_10_2.loads(text) == tomllib.loads(text), repr(v)
            assert toml_0_10_2.loads(text)["datasets"][0]["subsets"][0]["class_tokens"] == v, repr(v)
    assert 0 < refused < 30


def _stand_in_accelerate(bin_dir: Path) -> None:
    """An ``accelerate`` that reads ``--dataset_config`` with toml 0.10.2 (as kohya
    does) and counts the images in each ``image_dir`` resolved from its working
    folder, as kohya would; the count goes to $ACCELERATE_LOG."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "accelerate"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import os, sys, toml
        argv = sys.argv[1:]
        cfg = toml.load(argv[argv.index("--dataset_config") + 1])
        n = 0
        for ds in cfg["datasets"]:
            for sub in ds["subsets"]:
                d = sub["image_dir"]
                n += len([f for f in os.listdir(d) if f.endswith((".png", ".jpg"))])
        open(os.environ["ACCELERATE_LOG"], "w").write(f"{{os.getcwd()}}\\n{{n}}\\n")
        """))
    script.chmod(0o755)


def _fluxgym_folder(root: Path) -> None:
    for rel in [TRAINER, *MODEL_PATHS.values()]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


def _run(script: Path, bin_dir: Path, log: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", ACCELERATE_LOG=str(log))
    return subprocess.run(["bash", str(script)], cwd="/", env=env, capture_output=True, text=True, timeout=60)


def test_export_copied_into_fluxgym_trains_from_the_copy_and_train_sh_checks_image_dir(tmp_path):
    src = tmp_path / "it's my data"
    src.mkdir()
    for i in range(3):
        save(photo_like((900, 700), seed=i), src / f"p{i}.png")
    out = tmp_path / "export 'here'"
    with Dataset(src) as ds:
        ds.scan()
        report = export_dataset(ds, out, "L'oeil", "l'oeil", resolution=512)
    assert len(report.files) == 3 and not report.failed
    fluxgym = tmp_path / "fluxgym"
    _fluxgym_folder(fluxgym)
    for part in ("datasets", "outputs"):  # what the CLI tells the user to do
        shutil.copytree(out / part, fluxgym / part)
    shutil.rmtree(out)  # the old folder is gone: training must not depend on it
    slug = report.dataset_dir.name
    script = fluxgym / "outputs" / slug / "train.sh"
    bin_dir, log = tmp_path / "bin", tmp_path / "accelerate.log"
    _stand_in_accelerate(bin_dir)
    done = _run(script, bin_dir, log)
    assert done.returncode == 0, done.stderr
    cwd, count = log.read_text().split()
    assert Path(cwd) == fluxgym and count == "3"
    # the images are missing: train.sh stops before accelerate, with the fix
    log.unlink()
    for p in (fluxgym / "datasets" / slug).glob("*.png"):
        p.unlink()
    done = _run(script, bin_dir, log)
    assert done.returncode == 3 and "holds no png" in done.stderr and not log.exists()
    shutil.rmtree(fluxgym / "datasets" / slug)
    done = _run(script, bin_dir, log)
    assert done.returncode == 3 and "copy datasets/ and outputs/" in done.stderr and not log.exists()


def _dataset(root: Path, n: int) -> Path:
    root.mkdir()
    for i in range(n):
        save(photo_like((800, 600), seed=i), root / f"img{i:03d}.png")
    return root


def test_an_interrupted_export_is_invisible_and_a_rerun_needs_no_force(tmp_path, monkeypatch):
    src = _dataset(tmp_path / "src", 6)
    out = tmp_path / "fg"
    real = export_mod._export_one
    calls = []

    def dies_on_the_fourth(job, rec):
        calls.append(rec.relpath)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(job, rec)
    monkeypatch.setattr(export_mod, "_export_one", dies_on_the_fourth)
    with Dataset(src) as ds:
        ds.scan()
        with pytest.raises(KeyboardInterrupt):
            export_dataset(ds, out, "s", "ohwx", resolution=512, workers=1)
        assert not (out / "datasets" / "s").exists()  # only the hidden staging folder
        assert [p.name for p in (out / "datasets").iterdir()][0].startswith(".s.partial-")
        assert not (out / "outputs" / "s" / "dataset.toml").exists()
        # killed after the swap, before dataset.toml: the re-run still needs no --force
        monkeypatch.setattr(export_mod, "_export_one", real)
        monkeypatch.setattr(export_mod, "dataset_toml", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            export_dataset(ds, out, "s", "ohwx", resolution=512)
        assert (out / "outputs" / "s" / "manifest.jsonl").exists()
        monkeypatch.undo()
        report = export_dataset(ds, out, "s", "ohwx", resolution=512)
    assert len(report.files) == 6
    assert sorted(p.name for p in (out / "datasets").iterdir()) == ["s"]  # staging folders removed
    assert (out / "outputs" / "s" / "dataset.toml").exists()


def test_sigkill_during_export_leaves_no_partial_dataset(tmp_path):
    src = _dataset(tmp_path / "src", 10)
    with Dataset(src) as ds:
        ds.scan()
    out = tmp_path / "fg"
    code = ("import sys; from fluxgym_coach.dataset import Dataset; from fluxgym_coach.export.fluxgym import export_dataset\n"
            f"ds = Dataset({str(src)!r}); export_dataset(ds, {str(out)!r}, 'k', 'ohwx', resolution=512, workers=1)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), *sys.path]))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # wait until the export is writing images
            staged = list((out / "datasets").glob(".k.partial-*/*.png")) if (out / "datasets").is_dir() else []
            if staged or proc.poll() is not None:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the export finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (out / "datasets" / "k").exists()
    assert not (out / "outputs" / "k" / "dataset.toml").exists()
    with Dataset(src) as ds:  # the same command again just works
        report = export_dataset(ds, out, "k", "ohwx", resolution=512)
    assert len(report.files) == 10 and (out / "outputs" / "k" / "dataset.toml").exists()
    assert [p.name for p in (out / "datasets").iterdir()] == ["k"]
