"""Make ``simpletuner.jsonl.gz``: SimpleTuner's own bucketing code run on random sizes.

Not run by the test suite (it needs a SimpleTuner checkout). Usage::

    python tests/data/buckets/make_simpletuner.py GIT_DIR [COMMIT] > rows.jsonl
    python tests/data/buckets/make_simpletuner.py --datasets GIT_DIR [COMMIT] > datasets.jsonl

``GIT_DIR`` is a bare clone of bghira/SimpleTuner (``git --git-dir`` form).
The three files that decide a sample's geometry are loaded *unchanged* from
that commit: ``simpletuner/helpers/multiaspect/image.py`` (``MultiaspectImage``:
target and intermediary sizes for ``resolution_type`` pixel and area),
``simpletuner/helpers/image_manipulation/cropping.py`` (centre/corner/random
crop) and ``simpletuner/helpers/image_manipulation/training_sample.py``
(``TrainingSample.prepare``: crop or not, square/preserve/closest aspect,
``maximum_image_size`` / ``target_downsample_size``). Their heavy imports
(torch, torchvision, diffusers, the Rust ``trainingsample`` package, the
webhook and model registries) are replaced by stand-ins that none of the
geometry touches; ``StateTracker`` is a stand-in holding the arguments
(``aspect_bucket_alignment``, ``aspect_bucket_rounding``), the data backend
config and the per-aspect resolution cache, which is emptied before every size
(each size is computed as the first of its aspect). Samples are prepared from
metadata only (``image=None``, ``original_size`` given), the path SimpleTuner's
metadata scan uses when it reads sizes without pixels; the crop handlers then
return their offsets without cutting.

With ``--datasets`` it writes ``simpletuner_datasets.jsonl.gz`` rows instead:
whole datasets prepared one after another with *one* per-aspect cache, as
SimpleTuner's metadata scan does, so each aspect's first target size is reused
for the later sizes of that aspect; each row also has ``dataset`` (its id) and
``index`` (its place in the order the sizes were prepared).

Each row: ``size``, the settings, ``target`` (the training size),
``resized`` (the size the crop handler cut from, or the target when the image
is resized straight to it), ``offset`` (left, top) in ``resized`` pixels, and
``aspect`` (the bucket key). Rows with ``error`` are sizes where SimpleTuner
raises.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import types
from pathlib import Path

FILES = ("simpletuner/helpers/multiaspect/image.py",
         "simpletuner/helpers/image_manipulation/cropping.py",
         "simpletuner/helpers/image_manipulation/training_sample.py")


class _StateTracker:
    args = types.SimpleNamespace(aspect_bucket_alignment=64, aspect_bucket_rounding=2)
    config: dict = {}
    cache: dict = {}

    @classmethod
    def get_args(cls):
        return cls.args

    @classmethod
    def get_resolution_by_aspect(cls, dataloader_resolution, aspect):
        return cls.cache.get((dataloader_resolution, aspect))

    @classmethod
    def set_resolution_by_aspect(cls, dataloader_resolution, aspect, resolution):
        cls.cache[(dataloader_resolution, aspect)] = resolution

    @classmethod
    def get_data_backend_config(cls, data_backend_id):
        return cls.config

    @staticmethod
    def get_metadata_by_filepath(path, data_backend_id):
        return None

    @staticmethod
    def get_model():
        return None

    @staticmethod
    def get_webhook_handler():
        return None


def _stub(name: str, **attrs) -> None:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod


def load(git_dir: str, commit: str):
    """Import SimpleTuner's three geometry modules from ``commit`` with stand-ins for the rest."""
    root = Path(tempfile.mkdtemp(prefix="st-"))
    for f in FILES:
        text = subprocess.run(["git", "--git-dir", git_dir, "show", f"{commit}:{f}"], check=True,
                              capture_output=True, text=True).stdout
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text(text)
    for pkg in ("simpletuner", "simpletuner/helpers", "simpletuner/helpers/multiaspect",
                "simpletuner/helpers/image_manipulation"):
        (root / pkg / "__init__.py").touch()
    _stub("torchvision", transforms=None)
    _stub("trainingsample")
    _stub("diffusers")
    _stub("diffusers.utils")
    _stub("diffusers.utils.export_utils", export_to_gif=None)
    _stub("simpletuner.helpers.training")
    _stub("simpletuner.helpers.training.state_tracker", StateTracker=_StateTracker)
    _stub("simpletuner.helpers.training.multi_process", should_log=lambda: False)
    _stub("simpletuner.helpers.image_manipulation.batched_training_samples",
          BatchedTrainingSamples=lambda: None)
    _stub("simpletuner.helpers.multiaspect.video", resize_video_frames=None)
    sys.path.insert(0, str(root))
    import simpletuner.helpers.training  # noqa: F401  (the stand-in package)
    from simpletuner.helpers.image_manipulation.training_sample import TrainingSample
    return TrainingSample


CONFIGS = []
# area resolutions are megapixels: 500², 512², 1000² and 1024² pixels (SimpleTuner's pixel_area turns a
# pixel edge into edge² / 1e6 megapixels)
for rtype, resolutions in (("pixel", (512, 768, 1024)), ("area", (0.25, 0.262144, 1.0, 1.048576))):
    for res in resolutions:
        for crop, style, aspect in ((False, "random", "square"), (False, "center", "square"),
                                    (True, "center", "square"), (True, "center", "preserve"),
                                    (True, "corner", "preserve"), (True, "center", "closest")):
            CONFIGS.append(dict(resolution_type=rtype, resolution=res, crop=crop, crop_style=style,
                                crop_aspect=aspect, alignment=64))
CONFIGS += [dict(resolution_type="area", resolution=1.0, crop=False, crop_style="center", crop_aspect="square",
                 alignment=16),
            dict(resolution_type="pixel", resolution=1024, crop=True, crop_style="center", crop_aspect="preserve",
                 alignment=8),
            dict(resolution_type="area", resolution=1.0, crop=True, crop_style="center", crop_aspect="preserve",
                 alignment=64, maximum_image_size=1.048576, target_downsample_size=1.6384),
            dict(resolution_type="pixel", resolution=1024, crop=True, crop_style="center", crop_aspect="preserve",
                 alignment=64, maximum_image_size=1536, target_downsample_size=1280)]
CLOSEST = [0.5, 0.67, 0.75, 1.0, 1.33, 1.5, 2.0]


def row(TrainingSample, size, cfg, keep_cache: bool = False) -> dict:
    """One golden row: SimpleTuner's geometry for ``size`` under ``cfg`` (the per-aspect
    cache emptied first unless ``keep_cache``)."""
    _StateTracker.args = types.SimpleNamespace(aspect_bucket_alignment=cfg["alignment"], aspect_bucket_rounding=2)
    _StateTracker.config = {"crop": cfg["crop"], "crop_style": cfg["crop_style"], "crop_aspect": cfg["crop_aspect"],
                            "crop_aspect_buckets": CLOSEST if cfg["crop_aspect"] == "closest" else [],
                            "resolution": cfg["resolution"], "resolution_type": cfg["resolution_type"],
                            "maximum_image_size": cfg.get("maximum_image_size"),
                            "target_downsample_size": cfg.get("target_downsample_size")}
    if not keep_cache:
        _StateTracker.cache = {}
    out = {"size": list(size), **cfg}
    try:
        s = TrainingSample(image=None, data_backend_id="golden", image_metadata={"original_size": size})
        p = s.prepare()
    except Exception as exc:  # noqa: BLE001 - the row records what SimpleTuner raises
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    c = s.cropper
    resized = (c.intermediary_width, c.intermediary_height) if c.intermediary_width is not None else p.target_size
    top, left = p.crop_coordinates
    out.update(target=list(p.target_size), resized=[int(resized[0]), int(resized[1])], offset=[left, top],
               aspect=p.aspect_ratio)
    return out


def sizes(n: int, seed: int) -> list[tuple[int, int]]:
    """``n`` random sizes, 1..8000 px a side, aspect up to 16:1, small sides over-sampled."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        if rng.random() < 0.15:
            w, h = rng.randint(1, 400), rng.randint(1, 400)
        else:
            w, h = rng.randint(64, 8000), rng.randint(64, 8000)
        if max(w, h) / min(w, h) <= 16:
            out.append((w, h))
    return out


def dataset_sizes(n: int, seed: int) -> list[tuple[int, int]]:
    """A dataset of ``n`` photo-like sizes: common aspects (1:1 .. 21:9, both ways) with a
    few pixels of jitter, so several sizes share an aspect key and may differ in target."""
    rng = random.Random(seed)
    aspects = (1.0, 4 / 3, 3 / 2, 16 / 9, 5 / 4, 7 / 5, 2.0, 21 / 9, 1.55, 1.45)
    out = []
    for _ in range(n):
        a = rng.choice(aspects) * rng.uniform(0.97, 1.03)
        short = rng.randint(300, 4000)
        w, h = round(short * a), short
        out.append((w, h) if rng.random() < 0.6 else (h, w))
    return out


def main_datasets(TrainingSample) -> None:
    """Whole datasets of 240 sizes (40 photo-like, 200 random), one cache each (emptied
    between datasets): the area configs, and two pixel ones (pixel mode never consults
    the cache)."""
    picked = [c for c in CONFIGS if c["resolution_type"] == "area"] + [
        c for c in CONFIGS if c["resolution_type"] == "pixel" and c["resolution"] == 1024][:2]
    for d, cfg in enumerate(picked):
        _StateTracker.cache = {}
        for i, size in enumerate(dataset_sizes(40, 1000 + d) + sizes(200, 2000 + d)):
            print(json.dumps({"dataset": d, "index": i, **row(TrainingSample, size, cfg, keep_cache=True)},
                             separators=(",", ":")))


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--datasets"]
    git_dir = args[0]
    commit = args[1] if len(args) > 1 else "HEAD"
    TrainingSample = load(git_dir, commit)
    if "--datasets" in sys.argv:
        main_datasets(TrainingSample)
        return
    for i, cfg in enumerate(CONFIGS):
        for size in sizes(60, i):
            print(json.dumps(row(TrainingSample, size, cfg), separators=(",", ":")))


if __name__ == "__main__":
    main()
