"""The Textual terminal UI (``fluxgym-coach tui DATASET``)."""
