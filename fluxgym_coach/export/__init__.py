"""Export: the Fluxgym / kohya dataset writer, train.sh, and prepare (scan -> enhance -> export).

The public names of its modules are importable from this package; each module
loads on first use (PEP 562), so importing the package stays cheap and free of
import cycles.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {
    'BUCKET_STEPS': 'fluxgym',
    'Box': 'framing',
    'CROP_MODES': 'fluxgym',
    'DEFAULT_REPEATS': 'fluxgym',
    'ExportError': 'fluxgym',
    'ExportReport': 'results',
    'ExportedFile': 'results',
    'FACE_MARGIN': 'framing',
    'Frame': 'framing',
    'KOHYA_EXTS': 'preflight',
    'KOHYA_IMAGE_GLOBS': 'train_script',
    'MIN_CUT_FOR_FACES': 'fluxgym',
    'MODEL_PATHS': 'train_script',
    'NEEDS_CAPTION': 'fluxgym',
    'OUTPUT_FILES': 'files',
    'PARTIAL': 'files',
    'PreflightError': 'preflight',
    'PrepareReport': 'prepare',
    'RESOLUTIONS': 'fluxgym',
    'SALIENCY_GAIN': 'framing',
    'TRAINER': 'train_script',
    'VRAM_CHOICES': 'train_script',
    'bucket_settings': 'fluxgym',
    'caption_for_export': 'fluxgym',
    'check_dataset_config': 'preflight',
    'check_target': 'fluxgym',
    'choose_window': 'framing',
    'dataset_toml': 'fluxgym',
    'dataset_toml_text': 'files',
    'decode_upright': 'framing',
    'enhancement_candidates': 'prepare',
    'env_python': 'preflight',
    'export_dataset': 'fluxgym',
    'lora_slug': 'fluxgym',
    'prepare_dataset': 'prepare',
    'remove_partials': 'files',
    'render': 'framing',
    'safe_stem': 'fluxgym',
    'select_new_variants': 'prepare',
    'source_of': 'prepare',
    'staging_dir': 'files',
    'starts_with_trigger': 'fluxgym',
    'swap_in': 'files',
    'toml_safe': 'files',
    'toml_string': 'files',
    'toml_value': 'files',
    'train_args': 'preflight',
    'train_arguments': 'train_script',
    'train_script': 'train_script',
    'unfinished_export': 'files',
    'zero_crop_bucket': 'framing',
}


__getattr__ = lazy_exports(__name__, _LAZY, globals())

__all__ = sorted(_LAZY)
