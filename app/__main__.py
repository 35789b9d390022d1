"""``python -m app`` / ``hoechstscore``: start the desktop app.

``--demo`` opens the demo case (made by core.demo on first use, in the background);
``--screenshot PATH`` then saves a picture of the window and exits; ``--guide-screenshots DIR``
saves one picture per step of the user guide.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from app.errors import REPORTER, install_excepthook, setup_logging

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hoechstscore", description="HoechstScore desktop app")
    p.add_argument("slide", nargs="?", help="a slide to open as a new case")
    p.add_argument("--demo", action="store_true", help="open the demo case (synthetic slide)")
    p.add_argument("--screenshot", metavar="PATH", help="with --demo: save a screenshot and exit")
    p.add_argument("--guide-screenshots", metavar="DIR", help="save the user guide's screenshots and exit")
    p.add_argument("--model", metavar="DIR", help="model folder (default: settings, else the shipped demo model)")
    p.add_argument("--db", metavar="URL", default=os.environ.get("HOECHSTSCORE_DB_URL") or None,
                   help="case database URL (default: $HOECHSTSCORE_DB_URL, else the settings, else cases.db)")
    p.add_argument("--settings", metavar="INI", help="settings file (default: the user's settings)")
    p.add_argument("--size", type=int, default=4096, help="demo slide size in pixels")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from app.settings import SettingsStore
    from app.style import apply_style

    setup_logging()
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("HoechstScore")
    app.setOrganizationName("HoechstScore")
    apply_style(app)
    install_excepthook()
    qsettings = QSettings(args.settings, QSettings.Format.IniFormat) if args.settings else None
    window = MainWindow(SettingsStore(qsettings), REPORTER)
    if args.model:
        window.settings.analysis.model_dir = str(Path(args.model).resolve())
        window.settings_controller.show_model()
    if args.db:
        window.session.set_database_url(args.db)
        window.cases.refresh_list()
    if args.screenshot or args.guide_screenshots:
        window.resize(1600, 1000)  # pictures do not depend on the last session's window layout
    window.show()
    if args.guide_screenshots:
        from app.guide import GuideRecorder

        recorder = GuideRecorder(window, Path(args.guide_screenshots), args.size)
        recorder.start()
    elif args.demo:
        from app.demo_runner import DemoRunner

        runner = DemoRunner(window, args.size, Path(args.screenshot) if args.screenshot else None)
        runner.start()
    elif args.slide:
        window.cases.open_slide_file(args.slide, Path(args.slide).name.split(".")[0])
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
