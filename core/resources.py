"""The files shipped with HoechstScore, found through :mod:`importlib.resources`.

The demo model, the demo reference cohort, the logo and the icons live in the repository's
top-level ``resources/`` folder, which is installed as the package ``hoechstscore_resources``
(``setup.py``; the PyInstaller bundle copies it under the same name). Asking the import system for
that package finds the files the same way in a source checkout with an editable install, in an
installed wheel and in the bundle; a path counted up from a module's ``__file__`` finds them only
in the first. Every reader of a shipped file goes through :func:`resource_path`.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from core.errors import ResourceError

__all__ = ["RESOURCE_PACKAGE", "demo_cohort_csv", "demo_model_dir", "logo_png_path", "resource_path"]

#: The import name under which ``resources/`` is installed.
RESOURCE_PACKAGE = "hoechstscore_resources"


def resource_path(*parts: str) -> Path:
    """The path of a shipped file or folder, e.g. ``resource_path("models", "demo")``.

    Whether the file exists is the caller's question (a missing logo is drawn instead); a
    ResourceError says when the package itself is not installed, or not as files on disk.
    """
    try:
        root = importlib.resources.files(RESOURCE_PACKAGE)
    except ModuleNotFoundError as err:
        raise ResourceError(
            f"HoechstScore's shipped files (package {RESOURCE_PACKAGE}) are not installed: install the "
            "package with 'pip install -e .' in a source checkout (or 'make setup'), or 'pip install .'."
        ) from err
    path = root.joinpath(*parts)
    if not isinstance(path, Path):
        raise ResourceError(
            f"HoechstScore's shipped files are installed inside an archive ({root}); install the package "
            "as files on disk (pip install, not a zipped install)."
        )
    return path


def demo_model_dir() -> Path:
    """The shipped demo model's folder (``model.json`` + ``model.safetensors``)."""
    return resource_path("models", "demo")


def demo_cohort_csv() -> Path:
    """The shipped synthetic demo reference cohort (CSV, one case per row)."""
    return resource_path("reference", "demo_cohort.csv")


def logo_png_path() -> Path:
    """The shipped logo (PNG) the report prints; it may be missing (the report then draws it)."""
    return resource_path("branding", "logo.png")
