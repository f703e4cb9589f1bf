"""``python -m fluxgym_coach`` runs the same CLI as the ``fluxgym-coach`` command."""

from .cli import main

if __name__ == "__main__":
    main()
