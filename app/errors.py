"""Where every error ends up: one handler, a log file, and dialogs a lab user can act on.

Errors core raises on purpose (:class:`core.errors.CoreError`) are shown as they are: their
messages are written for the user. Anything else is a bug: the full traceback goes to the log
file (``platformdirs.user_log_dir``) and the user sees a short notice with "Copy details".
``install_excepthook`` routes uncaught exceptions (also those raised in Qt slots) to the same place.
"""

from __future__ import annotations

import logging
import sys
import traceback
from logging.handlers import RotatingFileHandler
from pathlib import Path
from types import TracebackType

import platformdirs
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from core.errors import Cancelled, CoreError

log = logging.getLogger("hoechstscore")


def log_file() -> Path:
    return Path(platformdirs.user_log_dir("HoechstScore", appauthor=False)) / "hoechstscore.log"


def setup_logging(path: Path | None = None) -> Path:
    """Log to a rotating file (created if needed); returns its path."""
    path = path or log_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    if not any(isinstance(h, RotatingFileHandler) for h in root.handlers):
        handler = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    return path


class ErrorReporter:
    """Shows errors; keeps the last dialog so tests can look at it and the app keeps running."""

    def __init__(self) -> None:
        self.last_dialog: QMessageBox | None = None
        self.last_error: BaseException | None = None

    def report(self, exc: BaseException, parent: QWidget | None = None, action: str = "") -> None:
        self.last_error = exc
        if isinstance(exc, Cancelled):
            return
        if isinstance(exc, CoreError):
            log.warning("%s: %s", action or "Error", exc)
            box = QMessageBox(QMessageBox.Icon.Warning, "HoechstScore", str(exc), parent=parent)
            if action:
                box.setText(f"{action} failed.")
                box.setInformativeText(str(exc))
        else:
            details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            log.error("Unexpected error%s\n%s", f" ({action})" if action else "", details)
            box = QMessageBox(QMessageBox.Icon.Critical, "HoechstScore",
                              "Something went wrong inside HoechstScore. Your work is saved; you can go on.",
                              parent=parent)
            what = f"{action} failed. " if action else ""
            box.setInformativeText(f"{what}Details for whoever maintains HoechstScore are in the log: {log_file()} "
                                   "(or press Copy details).")
            box.setDetailedText(details)
            copy = box.addButton("Copy details", QMessageBox.ButtonRole.ActionRole)
            copy.clicked.disconnect()
            copy.clicked.connect(self._copy_details)
            self._details = details
        box.addButton(QMessageBox.StandardButton.Ok)
        self.last_dialog = box
        box.open()  # not exec(): never block the event loop (analysis keeps running)

    def _copy_details(self) -> None:
        QApplication.clipboard().setText(getattr(self, "_details", ""))

    def excepthook(self, etype: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(etype, KeyboardInterrupt):
            sys.__excepthook__(etype, exc, tb)
            return
        exc.__traceback__ = tb
        self.report(exc, QApplication.activeWindow())


REPORTER = ErrorReporter()


def install_excepthook() -> None:
    """Send uncaught exceptions (Qt slots included) to :data:`REPORTER`."""
    sys.excepthook = REPORTER.excepthook
