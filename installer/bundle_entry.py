"""The one program inside the frozen bundle: it runs the command whose name it was started under.

Why one program with several names (``hoechstscore``, ``hoechstscore-core``,
``hoechstscore-retrain`` are links to it in the bundle folder) rather than three frozen programs:
PyInstaller gives each frozen program its own archive of the compiled Python modules (~70 MB here),
and its MERGE is meant for one-file programs; a dispatcher costs nothing and keeps one set of
files. On Windows, where links are not at hand, the spec builds three launchers that run this same
script (installer/hoechstscore.spec).

``hoechstscore --bundle-info`` prints where the running Python lives (``sys.executable`` and the
bundle folder), the torch build and whether a GPU was found: the smoke test uses it to prove that
the bundle runs its own Python and not one on the user's PATH.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

#: Command name -> (module, function) run with the remaining arguments.
COMMANDS = {
    "hoechstscore": ("app.launch", "main"),
    "hoechstscore-core": ("core.cli", "main"),
    "hoechstscore-retrain": ("training.retrain", "main"),
}


def command_name(argv0: str) -> str:
    """The command this program was started as (``hoechstscore`` for unknown names)."""
    name = os.path.basename(argv0).lower()
    name = name.removesuffix(".exe")
    return name if name in COMMANDS else "hoechstscore"


def bundle_info() -> int:
    """Print where this program runs from and what it found (no Qt is started)."""
    import torch

    frozen = getattr(sys, "frozen", False)
    print(f"sys.executable: {sys.executable}")
    print(f"frozen: {bool(frozen)}")
    print(f"bundle: {getattr(sys, '_MEIPASS', '-')}")
    print(f"python: {sys.version.split()[0]}")
    print(f"torch: {torch.__version__}")
    print(f"cuda available: {torch.cuda.is_available()}")
    # The native parts a lab PC needs besides torch: each import loads its shared libraries.
    import imagecodecs
    import pylibCZIrw.czi  # noqa: F401 - loads the CZI reader's library
    import pypdfium2

    print(f"pdfium: {pypdfium2.PDFIUM_INFO}")
    print(f"imagecodecs: {imagecodecs.__version__}")
    try:
        from PySide6 import QtCore, QtGui, QtWidgets  # noqa: F401 - loads Qt's libraries, starts no window

        print(f"qt: {QtCore.qVersion()}")
    except ImportError as err:  # a headless bundle would say so instead of failing
        print(f"qt: missing ({err})")
    return 0


def main() -> int:
    # A frozen program that starts worker processes (Dask's LocalCluster in `cohort`) must call
    # this first, or each worker would start the whole program again.
    multiprocessing.freeze_support()
    name = command_name(sys.argv[0])
    args = sys.argv[1:]
    if args[:1] == ["--bundle-info"]:
        return bundle_info()
    module_name, func_name = COMMANDS[name]
    module = __import__(module_name, fromlist=[func_name])
    return int(getattr(module, func_name)(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
