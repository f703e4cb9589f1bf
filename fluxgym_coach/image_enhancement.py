"""Kept for the name the original specification uses: this module *is*
:mod:`fluxgym_coach.enhance.enhancer` (one module object under both names)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module('fluxgym_coach.enhance.enhancer')
