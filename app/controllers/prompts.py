"""Prompts: the one place the window's controllers show errors, notices, questions and file dialogs.

Every controller gets the same :class:`Prompts` in its constructor rather than calling into the
window, so "catch the error and show it" is written once (:meth:`Prompts.attempt`) and tests can
answer a modal question with real clicks (:attr:`Prompts.question`).

Declared state, owned here and nowhere else:

* ``question``: the modal dialog being asked (None when none is open);
* ``last_notice``: the last non-blocking notice shown (tests read it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, ParamSpec, TypeVar

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox, QWidget

from app.errors import ErrorReporter
from app.settings import AppSettings, SettingsStore

if TYPE_CHECKING:
    from app.case_session import CaseSession

P = ParamSpec("P")
T = TypeVar("T")


class Prompts(QObject):
    """Errors, notices, modal questions and file dialogs over one parent widget (the main window)."""

    def __init__(self, widget: QWidget, reporter: ErrorReporter, settings: AppSettings,
                 settings_store: SettingsStore, session: CaseSession) -> None:
        super().__init__(widget)
        self.widget = widget  # the parent of every dialog and message box
        self.reporter = reporter
        self.settings, self.settings_store, self.session = settings, settings_store, session
        self.question: QDialog | None = None
        self.last_notice: QMessageBox | None = None

    def attempt(self, action: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """``fn(*args)``, or None with the error shown as ``action`` failing: one place for every
        error of a command (a CoreError shown in words, anything else logged too)."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            self.reporter.report(exc, self.widget, action)
            return None

    def report(self, exc: BaseException, action: str = "") -> None:
        """Show an error that did not come through :meth:`attempt` (a worker's failure)."""
        self.reporter.report(exc, self.widget, action)

    def notice(self, title: str, text: str) -> QMessageBox:
        """Tell the user something without blocking (window-modal, ``open()`` not ``exec()``): an
        analysis or a queued rescore keeps running; kept as ``last_notice``."""
        box = QMessageBox(QMessageBox.Icon.Information, title, text, QMessageBox.StandardButton.Ok, self.widget)
        box.open()
        self.last_notice = box
        return box

    def exec_dialog(self, dialog: QDialog) -> bool:
        """Run a modal question; kept as ``question`` while open (tests answer it with real clicks)."""
        self.question = dialog
        try:
            return dialog.exec() == QDialog.DialogCode.Accepted
        finally:
            self.question = None

    def ask_path(self, mode: Literal["open", "save"], title: str, name: str, filters: str) -> str:
        """A file dialog that starts in the folder last used (not the program's working folder) and
        remembers the folder of the answer; "" when cancelled."""
        folder = self.settings.slides.last_folder
        start = str(Path(folder) / name) if folder and Path(folder).is_dir() else name
        ask = QFileDialog.getOpenFileName if mode == "open" else QFileDialog.getSaveFileName
        path, _ = ask(self.widget, title, start, filters)
        if path:
            self.settings.slides.last_folder = str(Path(path).parent)
            self.settings_store.save(self.settings)
        return path

    def export_name(self, what: str) -> str:
        """A default file name that says which case and version it came from: S24-1-v2-cells.csv."""
        case = self.session.case
        return f"{case.accession}-v{case.version}-{what}" if case is not None else what
