"""Built-in plugins: ``core`` (enhance, caption, audit, export as actions) and ``similarity``."""
