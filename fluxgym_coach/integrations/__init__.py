"""Adapters that run fluxgym-coach actions inside other programs (Panoptic)."""
