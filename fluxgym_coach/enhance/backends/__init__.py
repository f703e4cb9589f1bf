"""Engines behind small Protocols: the embedded Pillow default and HTTP servers.

``get_enhance_backend(name, **options)`` builds one by name; see
:mod:`fluxgym_coach.enhance.backends.base` for the Protocols.
"""

from .base import BackendError, EnhanceBackend, EnhanceItem, EnhanceParams, get_enhance_backend

__all__ = ["BackendError", "EnhanceBackend", "EnhanceItem", "EnhanceParams", "get_enhance_backend"]
