"""The review app's actions, by concern: one mixin class per module, which
:class:`~fluxgym_coach.tui.app.ReviewApp` inherits from.

============  ====================================================================
``view``      the preview, the info panel and the editor follow the cursor
``navigate``  filters, sorts, the search, jumps, marks
``review``    accept / reject / exclude, the decision thread
``captions``  the caption editor; caption generation
``bulk``      bulk caption edits (trigger word first, search and replace)
``enhance``   enhance / reprocess through :func:`fluxgym_coach.core.enhance_images`
``jobs``      job rows, the problems log, cancelling
``scan``      the scan, the folder watcher, the audit
``export``    the export form and job
============  ====================================================================

The mixins hold no state of their own: ``ReviewApp.__init__`` sets every
attribute they use, and the key bindings stay in :mod:`fluxgym_coach.tui.keys`
(one table: keys, help screen and palette). Handlers named ``on_<message>``
work from a mixin (Textual looks them up along the MRO); ``@on(...)``
decorated handlers must be written in the ``App`` subclass itself (Textual's
metaclass collects them from its own body only), so those few stay in
:mod:`fluxgym_coach.tui.app` and call the mixins.
"""
