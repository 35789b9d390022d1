"""The ``hoechstscore`` command: start the desktop app, or say how to install Qt when it is missing.

Qt (PySide6, pyqtgraph) is the optional extra ``app``: a headless install (a cluster node running
``python -m core cohort``) has no Qt, and the GUI command must then say so in one line instead of
ending in an ImportError traceback. Nothing here imports Qt before checking that it is there.
"""

from __future__ import annotations

import importlib.util
import sys

#: The modules the desktop app cannot start without, and the distribution that brings each.
QT_MODULES = {"PySide6": "PySide6-Essentials", "pyqtgraph": "pyqtgraph"}


def missing_qt() -> list[str]:
    """Distributions of :data:`QT_MODULES` that are not installed."""
    return [dist for module, dist in QT_MODULES.items() if importlib.util.find_spec(module) is None]


def main(argv: list[str] | None = None) -> int:
    missing = missing_qt()
    if missing:
        print(
            f"The HoechstScore desktop app needs Qt, and {', '.join(missing)} is not installed: this is a "
            "headless install. Install the app's extra with `pip install 'hoechstscore[app]'`, or use the "
            "headless commands (`python -m core --help`, e.g. `python -m core cohort`).",
            file=sys.stderr,
        )
        return 3
    from app.__main__ import main as app_main

    return int(app_main(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
