"""Caption backends behind one Protocol (:class:`CaptionBackend`).

``draft`` (embedded, offline), ``openai`` (any OpenAI-compatible server with
vision), ``forge`` (Forge/A1111 interrogate: CLIP or deepdanbooru) and
``florence2`` (local Florence-2, optional extra). Build one with
:func:`fluxgym_coach.captions.job.get_caption_backend`.
"""

from .base import (PROMPT_PLACEHOLDERS, CaptionBackend, CaptionBackendError, CaptionRequest,
                   CaptionResult)

__all__ = ["PROMPT_PLACEHOLDERS", "CaptionBackend", "CaptionBackendError", "CaptionRequest",
           "CaptionResult"]
