"""``train.sh``: the command Fluxgym would run to train a LoRA on an export.

Fluxgym writes ``outputs/<slug>/train.sh`` next to ``dataset.toml`` and runs
it from its own folder; the script calls kohya's
``sd-scripts/flux_train_network.py`` through ``accelerate``. The settings
below are Fluxgym's defaults as recorded in ``reference/fluxgym.md`` §4
(network dim 4, learning rate 8e-4, 16 epochs, a save every 4, shift timestep
sampling with a discrete flow shift of 3.1582, guidance 1.0, text-encoder
outputs and latents cached to disk, fp8 base model), with the optimizer
chosen by the GPU memory the user has, as Fluxgym's VRAM choice does:

=====  =================================================================
VRAM   optimizer flags
=====  =================================================================
20G    ``--optimizer_type adamw8bit``
16G    Adafactor with a fixed learning rate (``relative_step=False``,
       ``scale_parameter=False``, ``warmup_init=False``), constant
       schedule with warm-up, no gradient clipping
12G    as 16G, plus ``--split_mode`` training the single blocks only
=====  =================================================================

The script changes to the Fluxgym folder first (two levels above itself), so
it runs from anywhere; its model paths are Fluxgym's
(``models/unet/flux1-dev.sft``, ``models/clip/clip_l.safetensors``,
``models/clip/t5xxl_fp16.safetensors``, ``models/vae/ae.sft``), relative to
that folder. No sample images are generated (Fluxgym's default: the sampling
flags are added only when asked for).

Before launching, the script checks that the trainer exists and that the
dataset's ``image_dir`` (``datasets/<slug>``, relative to the Fluxgym folder,
as ``dataset.toml`` names it) exists and holds at least one image kohya
trains on; otherwise it exits 3 with the fix (kohya itself would start, find
no image and stop late, or train from a stale folder).
"""

from __future__ import annotations

import shlex

VRAM_CHOICES = ("20G", "16G", "12G")

#: Model files relative to the Fluxgym folder (Fluxgym's download locations).
MODEL_PATHS = {
    "--pretrained_model_name_or_path": "models/unet/flux1-dev.sft",
    "--clip_l": "models/clip/clip_l.safetensors",
    "--t5xxl": "models/clip/t5xxl_fp16.safetensors",
    "--ae": "models/vae/ae.sft",
}

TRAINER = "sd-scripts/flux_train_network.py"

_ADAFACTOR = [
    "--optimizer_type", "adafactor",
    "--optimizer_args", "relative_step=False", "scale_parameter=False", "warmup_init=False",
    "--lr_scheduler", "constant_with_warmup",
    "--max_grad_norm", "0.0",
]

_OPTIMIZER = {
    "20G": ["--optimizer_type", "adamw8bit"],
    "16G": _ADAFACTOR,
    "12G": [*_ADAFACTOR, "--split_mode", "--network_args", "train_blocks=single"],
}


def train_arguments(slug: str, vram: str = "20G") -> list[list[str]]:
    """The ``accelerate launch`` command line for ``outputs/<slug>``, one group
    of words per script line (a flag and its values). Paths are relative to
    the Fluxgym folder. Raises ValueError for a ``vram`` not in
    :data:`VRAM_CHOICES`."""
    if vram not in _OPTIMIZER:
        raise ValueError(f"unknown VRAM size {vram!r}: use one of {', '.join(VRAM_CHOICES)}")
    out = f"outputs/{slug}"
    groups: list[list[str]] = [
        ["accelerate", "launch"],
        ["--mixed_precision", "bf16"],
        ["--num_cpu_threads_per_process", "1"],
        [TRAINER],
        *([flag, path] for flag, path in MODEL_PATHS.items()),
        ["--cache_latents_to_disk"],
        ["--save_model_as", "safetensors"],
        ["--sdpa"],
        ["--persistent_data_loader_workers"],
        ["--max_data_loader_n_workers", "2"],
        ["--seed", "42"],
        ["--gradient_checkpointing"],
        ["--mixed_precision", "bf16"],
        ["--save_precision", "bf16"],
        ["--network_module", "networks.lora_flux"],
        ["--network_dim", "4"],
    ]
    opt = _OPTIMIZER[vram]
    # one line per flag: split the optimizer words at each "--"
    current: list[str] = []
    for word in opt:
        if word.startswith("--") and current:
            groups.append(current)
            current = []
        current.append(word)
    groups.append(current)
    groups += [
        ["--learning_rate", "8e-4"],
        ["--cache_text_encoder_outputs"],
        ["--cache_text_encoder_outputs_to_disk"],
        ["--fp8_base"],
        ["--highvram"],
        ["--max_train_epochs", "16"],
        ["--save_every_n_epochs", "4"],
        ["--dataset_config", f"{out}/dataset.toml"],
        ["--output_dir", out],
        ["--output_name", slug],
        ["--timestep_sampling", "shift"],
        ["--discrete_flow_shift", "3.1582"],
        ["--model_prediction_type", "raw"],
        ["--guidance_scale", "1.0"],
        ["--loss_type", "l2"],
    ]
    return groups


#: File name patterns kohya trains on (``IMAGE_EXTENSIONS``: lower or upper case).
KOHYA_IMAGE_GLOBS = ("png", "jpg", "jpeg", "webp", "bmp", "PNG", "JPG", "JPEG", "WEBP", "BMP")


def _image_dir_check(slug: str) -> str:
    image_dir = shlex.quote(f"datasets/{slug}")
    globs = " ".join(f'"$IMAGE_DIR"/*.{e}' for e in KOHYA_IMAGE_GLOBS)
    return (
        f"IMAGE_DIR={image_dir}\n"
        'if [ ! -d "$IMAGE_DIR" ]; then\n'
        '  echo "train.sh: the image folder $IMAGE_DIR is missing in $PWD: copy datasets/ and '
        'outputs/ from the export into this Fluxgym folder (or export again with -o $PWD)" >&2\n'
        "  exit 3\n"
        "fi\n"
        "shopt -s nullglob\n"
        f"IMAGES=({globs})\n"
        "shopt -u nullglob\n"
        'if [ "${#IMAGES[@]}" -eq 0 ]; then\n'
        '  echo "train.sh: $PWD/$IMAGE_DIR holds no png/jpg/jpeg/webp/bmp image kohya trains on: '
        'export the dataset again (fluxgym-coach export ... -o $PWD --force)" >&2\n'
        "  exit 3\n"
        "fi\n"
    )


def train_script(slug: str, vram: str = "20G") -> str:
    """The text of ``outputs/<slug>/train.sh`` (bash, LF line ends). Raises
    ValueError for an unknown ``vram``."""
    lines = [" ".join(shlex.quote(w) for w in g) for g in train_arguments(slug, vram)]
    body = " \\\n  ".join(lines)
    return (
        "#!/usr/bin/env bash\n"
        f"# Written by fluxgym-coach: Fluxgym's default training command for '{slug}'\n"
        f"# ({vram} VRAM). Runs from the Fluxgym folder two levels up, where sd-scripts/\n"
        "# and models/ are; edit the flags below as you would in Fluxgym's script box.\n"
        "set -euo pipefail\n"
        'cd "$(dirname "$0")/../.."\n'
        f"if [ ! -f {shlex.quote(TRAINER)} ]; then\n"
        f'  echo "train.sh: {TRAINER} not found in $PWD: put datasets/ and outputs/ in your '
        'Fluxgym folder" >&2\n'
        "  exit 2\n"
        "fi\n"
        f"{_image_dir_check(slug)}"
        f"{body}\n"
    )
