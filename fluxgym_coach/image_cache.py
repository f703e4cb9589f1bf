"""Kept for the name the original specification uses: this module *is*
:mod:`fluxgym_coach.cache` (one module object under both names)."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module('fluxgym_coach.cache')
