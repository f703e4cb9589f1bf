"""Enhancement: parameters, the resumable job, variants, and the backends (embedded, Forge / A1111, Real-ESRGAN, spandrel).

The public names of its modules are importable from this package; each module
loads on first use (PEP 562), so importing the package stays cheap and free of
import cycles.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_LAZY = {
    'BACKGROUND': 'server_io',
    'BackendError': 'enhancer',
    'COLORIZE_SKIPPED': 'job',
    'Chunker': 'chunks',
    'DESCRIBE_THREADS': 'job',
    'EnhanceDefaults': 'defaults',
    'EnhanceJob': 'job',
    'EnhanceReport': 'job',
    'EnhancementError': 'enhancer',
    'FLAT_STD': 'server_io',
    'FileResult': 'enhancer',
    'FilesReport': 'enhancer',
    'ImageCache': 'enhancer',
    'ImageEnhancer': 'enhancer',
    'Journal': 'job',
    'MIN_CORRELATION': 'server_io',
    'Outcome': 'job',
    'PNG_LEVEL': 'server_io',
    'ResultCheckError': 'server_io',
    'ScaleDecision': 'sizing',
    'SIGNATURE_SIDE': 'server_io',
    'Source': 'job',
    'T': 'chunks',
    'check_input': 'enhancer',
    'check_result': 'server_io',
    'correlation': 'server_io',
    'decide_scale': 'sizing',
    'default_output': 'enhancer',
    'describe_source': 'job',
    'enhance_defaults': 'defaults',
    'enhance_files': 'enhancer',
    'enhance_image': 'enhancer',
    'flat_signature': 'server_io',
    'is_plain_resize': 'server_io',
    'job_id_for': 'job',
    'match_results': 'server_io',
    'record_variants': 'job',
    'run_enhance': 'job',
    'server_image': 'server_io',
    'server_upload': 'server_io',
    'signature': 'server_io',
}


__getattr__ = lazy_exports(__name__, _LAZY, globals())

__all__ = sorted(_LAZY)
