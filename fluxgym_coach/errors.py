"""The one exception root of fluxgym-coach.

Every error the package raises on purpose derives from :class:`FluxgymCoachError`,
so a front end catches one class and maps it to its presentation in one place
(the CLI's exit codes: :func:`fluxgym_coach.cli.common.exit_code_for`). Errors
that are also a built-in kind keep that base too (``StoreError`` is a
``RuntimeError``, ``CommitError`` a ``ValueError``), so existing ``except``
clauses keep working.

=====================  ==========================================  =========
class                  raised when                                 CLI exit
=====================  ==========================================  =========
``DatasetError``       the folder is not a usable dataset          2
``ExportError``        the export target or arguments are bad      2
``ImageReadError``     an image file cannot be decoded             1
``BackendError``       a backend refused the job or is unreachable 3
``StoreError``         the project store is unusable               2
``PluginError``        a plugin cannot be loaded or configured     2
=====================  ==========================================  =========
"""

from __future__ import annotations


class FluxgymCoachError(Exception):
    """Root of every error fluxgym-coach raises on purpose; ``str(exc)`` names the file
    or setting concerned and the fix."""


__all__ = ["FluxgymCoachError"]
