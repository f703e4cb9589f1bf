"""Audit: measures, quality and caption findings, duplicates, trainer buckets and the HTML report.

The public names of its modules are importable from this package; each module
loads on first use (PEP 562), so importing the package stays cheap and free of
import cycles.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    'AUDIT_PROFILES': 'buckets',
    'AuditReport': 'rules',
    'Bucket': 'rules',
    'BucketError': 'buckets',
    'BucketFinding': 'buckets',
    'BucketSettings': 'buckets',
    'CODES': 'rules',
    'CaptionStats': 'report',
    'Check': 'report',
    'DEFAULT_THRESHOLD': 'duplicates',
    'DETECTOR': 'faces',
    'DETECT_AREA': 'faces',
    'DuplicateGroup': 'rules',
    'ExtraMeasures': 'measures',
    'FLUXGYM_MAX_IMAGES': 'report',
    'FLUXGYM_MIN_IMAGES': 'report',
    'FaceBox': 'faces',
    'ImageAudit': 'rules',
    'KOHYA_FORMATS': 'rules',
    'LOSSLESS_FORMATS': 'keeper',
    'MEASURE_VERSION': 'measures',
    'MIN_AREA_SHARE': 'buckets',
    'MIN_FACE': 'faces',
    'MULTI_INDEX_MIN': 'duplicates',
    'NOT_SIMULATED': 'buckets',
    'Placement': 'buckets',
    'ReportResult': 'report',
    'SETTINGS_KEY': 'rules',
    'SEVERITIES': 'rules',
    'THUMB_SIDE': 'report',
    'TRAINERS': 'buckets',
    'Thresholds': 'rules',
    'aitk_placer': 'buckets',
    'area_fraction': 'buckets',
    'audit_dataset': 'rules',
    'bit_depth': 'measures',
    'bucket_resolutions': 'rules',
    'build_report': 'rules',
    'caption_findings': 'rules',
    'caption_stats': 'report',
    'category_of': 'rules',
    'crop_rectangle': 'buckets',
    'dataset_bucket_findings': 'buckets',
    'detect_faces': 'faces',
    'detector_available': 'faces',
    'dpipe_placer': 'buckets',
    'duplicate_groups': 'rules',
    'ensure_measures': 'rules',
    'exact_duplicate_groups': 'duplicates',
    'exhaustive_pairs': 'duplicates',
    'extra_from_decoded': 'measures',
    'faces_for': 'faces',
    'hamming_matrix': 'duplicates',
    'has_alpha': 'measures',
    'hex_to_uint64': 'duplicates',
    'image_findings': 'rules',
    'is_derived_name': 'keeper',
    'kohya_adjust_limits': 'buckets',
    'kohya_bucket_list': 'buckets',
    'kohya_placer': 'buckets',
    'measure_extra': 'rules',
    'measure_file': 'measures',
    'measure_rows': 'measures',
    'measures_sql': 'measures',
    'multi_index_pairs': 'duplicates',
    'near_duplicate_groups': 'duplicates',
    'near_duplicate_pairs': 'duplicates',
    'place': 'buckets',
    'place_many': 'buckets',
    'placer': 'buckets',
    'rank': 'keeper',
    'read_and_measure': 'measures',
    'readiness': 'report',
    'reason': 'keeper',
    'render_html': 'report',
    'save_faces': 'faces',
    'save_measures': 'measures',
    'saved_trigger': 'rules',
    'select_bucket': 'rules',
    'stored_faces': 'faces',
    'stored_findings': 'rules',
    'stored_measures': 'measures',
    'stored_report': 'rules',
    'thumbnails': 'report',
    'write_report': 'report',
}


def __getattr__(name: str) -> Any:
    """Load the module that defines ``name`` on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = sorted(_LAZY)
