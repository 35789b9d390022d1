"""HoechstScore's shipped files, installed as the package ``hoechstscore_resources``.

This folder holds data, not code: the demo model (``models/demo``), the demo reference cohort
(``reference/``), the logo (``branding/``) and the app icons (``icons/``). The repository keeps it at
the top level; ``setup.py`` installs it under the import name ``hoechstscore_resources`` (editable
install and wheel alike) and ``installer/hoechstscore.spec`` copies it into the bundle under the same
name, so :func:`core.resources.resource_path` finds the files with :mod:`importlib.resources` in all
three. Use that function, never a path relative to a module's ``__file__``.
"""
