"""Captions: text rules (trigger word, tags, tokens, lint, bulk edits), the tag index, the captioning job and the caption backends.

The public names of its modules are importable from this package; each module
loads on first use (PEP 562), so importing the package stays cheap and free of
import cycles.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    'BACKENDS': 'job',
    'BAD_CHARS': 'encoding',
    'BOILERPLATE': 'text',
    'BulkReport': 'text',
    'CLIP_LIMIT': 'text',
    'CLIP_REPOS': 'text',
    'CLIP_TOKENIZER_ENV': 'text',
    'CaptionConflict': 'sync',
    'CaptionFinding': 'text',
    'CaptionJob': 'runner',
    'CaptionOutcome': 'job',
    'CaptionReport': 'job',
    'CaptionStamp': 'sync',
    'CaptionText': 'encoding',
    'DEFAULT_THRESHOLDS': 'text',
    'DRAFT_PATTERN': 'text',
    'FREQUENCY_MIN_SHARE': 'tags',
    'MODES': 'job',
    'REFUSED': 'encoding',
    'SEVERITIES': 'text',
    'SOURCE_WEIGHT': 'tags',
    'T5_LIMIT': 'text',
    'T5_REPOS': 'text',
    'T5_TOKENIZER_ENV': 'text',
    'TagIndex': 'tags',
    'TagProposal': 'tags',
    'TagStat': 'tags',
    'TokenCount': 'text',
    'TokenCounter': 'text',
    'UTF16_MIN_NUL_SHARE': 'encoding',
    'add_tag': 'tags',
    'apply_to_captions': 'text',
    'apply_trigger': 'text',
    'backend_settings': 'job',
    'bulk_dedup_tags': 'text',
    'bulk_prefix': 'text',
    'bulk_replace': 'text',
    'bulk_sort_tags': 'text',
    'bulk_suffix': 'text',
    'bulk_trigger_first': 'text',
    'caption_status': 'job',
    'caption_style': 'text',
    'changed_on_disk': 'sync',
    'clean_generated': 'text',
    'complete': 'tags',
    'contains_trigger': 'text',
    'count_tokens': 'text',
    'dataset_trigger': 'job',
    'decode_caption': 'encoding',
    'dedup_tags': 'text',
    'default_backend': 'job',
    'default_counter': 'text',
    'delete_tag': 'tags',
    'describe_settings': 'job',
    'draft_relpaths': 'job',
    'estimate_clip_tokens': 'text',
    'estimate_t5_tokens': 'text',
    'find_local_tokenizer': 'text',
    'get_caption_backend': 'job',
    'is_draft_text': 'text',
    'join_tags': 'text',
    'lint': 'text',
    'lint_many': 'text',
    'merge_tags': 'tags',
    'new_op_id': 'text',
    'operations': 'text',
    'proposals': 'job',
    'propose': 'tags',
    'propose_many': 'tags',
    'read_caption_file': 'encoding',
    'read_stamp': 'sync',
    'rename_tag': 'tags',
    'run_caption': 'job',
    'save_caption': 'sync',
    'save_default_backend': 'job',
    'sort_tags': 'text',
    'split_tags': 'text',
    'stamp_of_record': 'sync',
    'starts_with_trigger': 'text',
    'tag_key': 'text',
    'tag_table': 'tags',
    'undo_operation': 'text',
    'user_written': 'sync',
    'words': 'text',
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
