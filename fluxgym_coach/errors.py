"""The one exception root of fluxgym-coach.

Every error the package raises on purpose derives from :class:`FluxgymCoachError`,
so a front end catches one class and maps it to its presentation in one place:
the CLI's root group (:class:`fluxgym_coach.cli.LazyCommands`) turns one that a
command leaves unhandled into ``error: <message>`` and the exit code of
:func:`fluxgym_coach.cli.common.exit_code_for`. Errors that are also a built-in
kind keep that base too (``StoreError`` is a ``RuntimeError``, ``CommitError``,
``ResizeLimitError`` and ``ForgeOnlyOption`` are ``ValueError``), so existing
``except`` clauses keep working. ``tests/test_errors.py`` checks that every
exception class of the package derives from this root, and the exit codes below.

=======================  ==========================================  =========
class                    raised when                                 CLI exit
=======================  ==========================================  =========
``DatasetError``         the folder is not a usable dataset          2
``ExportError``          the export target or arguments are bad      2
``PreflightError``       a dataset.toml cannot be checked            2
``ImageReadError``       an image file cannot be decoded             1
``EnhancementError``     images failed to enhance (ImageEnhancer)    1
``BackendError``         a backend refused the job or is unreachable 3
``CaptionBackendError``  a caption backend cannot caption            3
``StoreError``           the project store is unusable               2
``PluginError``          a plugin cannot be loaded or configured     2
``ResizeLimitError``     a resize beyond the limits (x8, 8:1)        2
=======================  ==========================================  =========
"""

from __future__ import annotations


class FluxgymCoachError(Exception):
    """Root of every error fluxgym-coach raises on purpose; ``str(exc)`` names the file
    or setting concerned and the fix."""


__all__ = ["FluxgymCoachError"]
