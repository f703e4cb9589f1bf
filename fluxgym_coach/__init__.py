"""fluxgym-coach: prepare image datasets for FLUX LoRA training with Fluxgym / kohya sd-scripts.

Core modules (no UI): :mod:`.imaging`, :mod:`.store`, :mod:`.dataset`,
:mod:`.image_cache`, :mod:`.backends`, :mod:`.pipeline`, :mod:`.export`.
Front ends: :mod:`.cli` (the ``fluxgym-coach`` command) and :mod:`.tui`.
"""

__version__ = "0.5.0"
