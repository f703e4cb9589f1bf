"""Pre-flight: what kohya will do with an exported ``dataset.toml``, before training.

:func:`check_dataset_config` answers, for ``DIR/outputs/NAME/dataset.toml``:
images found, captions read, buckets with their counts, per-image bucket /
resize / crop, steps per epoch and total steps for the ``train.sh`` settings.

Two engines, always named in the result (``engine``):

``sd-scripts``
    When the Fluxgym folder has ``sd-scripts/`` and its Python environment
    (``env/bin/python``, or ``env/Scripts/python.exe``), a small script runs
    *in that environment* from the Fluxgym folder: it builds the parser with
    ``flux_train_network.setup_parser()``, parses ``train.sh``'s arguments,
    then ``config_util.load_user_config``, ``BlueprintGenerator(ConfigSanitizer(
    True, True, masked_loss, True)).generate`` and
    ``generate_dataset_group_by_blueprint`` (which runs ``make_buckets``): the
    trainer's own parser, dataset construction and bucketing. No model weights
    are opened.
``simulator``
    Otherwise: our :mod:`fluxgym_coach.audit.buckets` on the image headers (kohya
    ignores EXIF orientation, so do we here), with kohya's config defaults.

Steps per epoch follow ``BaseDataset.make_buckets``: each bucket holds every
image ``num_repeats`` times and yields ``ceil(count / batch_size)`` batches;
``train_network.py`` then takes ``ceil(batches / gradient_accumulation_steps)``
update steps per epoch.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import FluxgymCoachError
from ..audit.buckets import BucketError, BucketSettings, place
from .train_script import TRAINER

KOHYA_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP")


class PreflightError(FluxgymCoachError):
    """The config cannot be checked (missing or unparsable file); the message says why."""


def env_python(fluxgym: Path) -> Path | None:
    """The Python of a Fluxgym folder's environment, or None."""
    for rel in ("env/bin/python", "env/Scripts/python.exe"):
        if (fluxgym / rel).is_file():
            return fluxgym / rel
    return None


def train_args(script: Path) -> list[str]:
    """The arguments ``train.sh`` passes to ``flux_train_network.py`` ([] if none found)."""
    if not script.is_file():
        return []
    text = script.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        if TRAINER in line and "accelerate" in line:
            words = shlex.split(line, comments=True)
            return words[words.index(TRAINER) + 1:]
    return []


def _flag(args: list[str], name: str, default: Any) -> Any:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else default


_ENV_SCRIPT = r'''
import json, math, sys
sys.path.insert(0, "sd-scripts")
import flux_train_network
from library import config_util
args = flux_train_network.setup_parser().parse_args(json.loads(sys.argv[1]))
gen = config_util.BlueprintGenerator(config_util.ConfigSanitizer(True, True, args.masked_loss, True))
bp = gen.generate(config_util.load_user_config(args.dataset_config), args)
group, _ = config_util.generate_dataset_group_by_blueprint(bp.dataset_group)
images = []
for ds in group.datasets:
    for info in ds.image_data.values():
        images.append({"path": info.absolute_path, "size": list(info.image_size),
                       "bucket": list(info.bucket_reso), "resized": list(info.resized_size),
                       "caption": bool(info.caption), "repeats": info.num_repeats})
print("@@PREFLIGHT@@" + json.dumps({"images": images, "batches": len(group),
      "epochs": args.max_train_epochs, "grad_accum": args.gradient_accumulation_steps}))
'''


def _run_sd_scripts(fluxgym: Path, python: Path, args: list[str], timeout: float) -> dict[str, Any]:
    done = subprocess.run([str(python), "-c", _ENV_SCRIPT, json.dumps(args)], cwd=fluxgym,
                          capture_output=True, text=True, timeout=timeout)
    marker = [ln for ln in done.stdout.splitlines() if ln.startswith("@@PREFLIGHT@@")]
    if done.returncode != 0 or not marker:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise PreflightError("sd-scripts could not build the dataset: " + " / ".join(tail))
    data = json.loads(marker[-1][len("@@PREFLIGHT@@"):])
    for im in data["images"]:
        im["offset"] = [max(0, im["resized"][0] - im["bucket"][0]) // 2,
                        max(0, im["resized"][1] - im["bucket"][1]) // 2]
    data["steps_per_epoch"] = math.ceil(data["batches"] / max(1, data["grad_accum"] or 1))
    return data


def _settings(ds: dict[str, Any]) -> BucketSettings:
    res = ds.get("resolution", 512)
    if isinstance(res, list):
        res = res[0]
    return BucketSettings("kohya", int(res), bool(ds.get("enable_bucket", False)),
                          bool(ds.get("bucket_no_upscale", False)), int(ds.get("min_bucket_reso", 256)),
                          int(ds.get("max_bucket_reso", 1024)), int(ds.get("bucket_reso_steps", 64)))


def _simulate(fluxgym: Path, config: dict[str, Any], args: list[str]) -> dict[str, Any]:
    general = config.get("general", {})
    images: list[dict[str, Any]] = []
    batches = 0
    for ds in config.get("datasets", []):
        settings = _settings(ds)
        batch = int(ds.get("batch_size", general.get("batch_size", 1)))
        counts: Counter = Counter()
        for sub in ds.get("subsets", []):
            folder = fluxgym / sub.get("image_dir", "")
            ext = sub.get("caption_extension", ds.get("caption_extension", general.get("caption_extension", ".caption")))
            repeats = int(sub.get("num_repeats", 1))
            files = sorted(p for p in folder.iterdir() if p.suffix in KOHYA_EXTS) if folder.is_dir() else []
            for p in files:
                with Image.open(p) as im:
                    size = im.size  # header size: kohya ignores EXIF orientation
                row: dict[str, Any] = {"path": str(p), "size": list(size), "repeats": repeats,
                                       "caption": (p.with_suffix(ext)).is_file()}
                try:
                    pl = place(size, settings)
                    row |= {"bucket": list(pl.bucket), "resized": list(pl.resized), "offset": list(pl.offset)}
                    counts[pl.bucket] += repeats
                except BucketError as exc:
                    row["error"] = str(exc)
                images.append(row)
        batches += sum(math.ceil(n / batch) for n in counts.values())
    grad = int(_flag(args, "--gradient_accumulation_steps", 1))
    return {"images": images, "batches": batches, "epochs": int(_flag(args, "--max_train_epochs", 1)),
            "grad_accum": grad, "steps_per_epoch": math.ceil(batches / grad)}


def check_dataset_config(toml_path: str | Path, fluxgym: str | Path | None = None,
                         use_sd_scripts: bool = True, timeout: float = 300) -> dict[str, Any]:
    """Check ``DIR/outputs/NAME/dataset.toml`` (see the module docstring).

    ``fluxgym`` defaults to the folder two levels above the toml's folder.
    Returns a dict: ``engine`` ("sd-scripts" or "simulator"), ``engine_note``
    (why the simulator was used), ``images`` (path, size, bucket, resized,
    offset, caption, repeats), ``buckets`` ({"WxH": count with repeats}),
    ``images_found``, ``captions_read``, ``steps_per_epoch``, ``epochs``,
    ``total_steps``. Raises :class:`PreflightError` for a missing or
    unparsable toml, or when sd-scripts fails to build the dataset.
    """
    toml_path = Path(toml_path).expanduser().resolve()
    root = Path(fluxgym).expanduser().resolve() if fluxgym else toml_path.parent.parent.parent
    try:
        config = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PreflightError(f"cannot read {toml_path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PreflightError(f"{toml_path} is not valid TOML: {exc}") from None
    args = train_args(toml_path.parent / "train.sh") or ["--dataset_config", str(toml_path)]
    python = env_python(root) if use_sd_scripts else None
    if python is not None and (root / TRAINER).is_file():
        data = _run_sd_scripts(root, python, args, timeout)
        data |= {"engine": "sd-scripts", "engine_note": None}
    else:
        data = _simulate(root, config, args)
        why = ("sd-scripts/ or its env/ is not in " + str(root)) if use_sd_scripts else "asked for"
        data |= {"engine": "simulator", "engine_note": f"fluxgym-coach's kohya simulator ({why})"}
    counts: Counter = Counter()
    for im in data["images"]:
        if "bucket" in im:
            counts["x".join(map(str, im["bucket"]))] += im.get("repeats", 1)
    data |= {"buckets": dict(sorted(counts.items())), "images_found": len(data["images"]),
             "captions_read": sum(1 for im in data["images"] if im.get("caption")),
             "total_steps": data["steps_per_epoch"] * data["epochs"], "fluxgym": str(root),
             "toml": str(toml_path)}
    return data
