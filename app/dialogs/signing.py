"""Signing dialogs: sign as a named lab user with a PIN, add a lab user, a case's versions, its audit log.

A signature is a lab user's, checked against the store (:meth:`core.store.CaseStore.sign_as`), and
says what it means: the dialog states the meaning the signer picks, and it is stored and printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

#: What a signature can mean; the first is the usual sign-out of a case.
MEANINGS = (
    "Approval: I have reviewed the regions, the cells and the scores of this case and approve this "
    "report as its final result.",
    "Review: I have reviewed this case; its approval is given by another signature or document.",
    "Technical check: I confirm the slide, the pixel size, the nuclear channel and the analysis "
    "settings are correct; this is not a diagnostic approval.",
)


def _ok_cancel(dialog: QDialog, ok_text: str) -> QDialogButtonBox:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.button(QDialogButtonBox.StandardButton.Ok).setText(ok_text)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons


def _password_field() -> QLineEdit:
    edit = QLineEdit()
    edit.setEchoMode(QLineEdit.EchoMode.Password)
    return edit


class SignDialog(QDialog):
    """Who signs (a lab user), their PIN, and what the signature means."""

    def __init__(self, case_label: str, users: Sequence[Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Sign case {case_label}")
        layout = QVBoxLayout(self)
        intro = QLabel(f"Signing makes <b>{case_label}</b> final: nobody can change it afterwards. "
                       "Changes then need a new version, and this one stays as signed.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.user = QComboBox()
        for u in users:
            self.user.addItem(f"{u.display_name} ({u.username})", u.username)
        form.addRow("Signed by", self.user)
        self.secret = _password_field()
        form.addRow("Password or PIN", self.secret)
        self.meaning = QComboBox()
        for text in MEANINGS:
            self.meaning.addItem(text.split(":", 1)[0], text)
        form.addRow("Meaning", self.meaning)
        layout.addLayout(form)
        self.statement = QLabel()
        self.statement.setWordWrap(True)
        self.statement.setStyleSheet("padding: 6px; border: 1px solid #888;")
        layout.addWidget(self.statement)
        self.meaning.currentIndexChanged.connect(self._show_meaning)
        self._show_meaning()
        self.buttons = _ok_cancel(self, "Sign")
        layout.addWidget(self.buttons)
        self.secret.textChanged.connect(self._update)
        self._update()
        self.setMinimumWidth(460)

    def _show_meaning(self, _i: int = 0) -> None:
        self.statement.setText(f"By signing you state: “{self.meaning_text().split(': ', 1)[1]}”")

    def _update(self, _t: str = "") -> None:
        ok = bool(self.secret.text()) and self.user.count() > 0
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    def username(self) -> str:
        return str(self.user.currentData())

    def meaning_text(self) -> str:
        return str(self.meaning.currentData())


class AddUserDialog(QDialog):
    """A new lab user: login name, the full name printed on reports, a PIN typed twice."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a lab user")
        form = QFormLayout(self)
        note = QLabel("Lab users sign cases. The password or PIN (4 characters or more) is stored only "
                      "as an argon2 hash; nobody can read it back.")
        note.setWordWrap(True)
        form.addRow(note)
        self.username = QLineEdit()
        self.username.setPlaceholderText("e.g. jdoe")
        form.addRow("Login name", self.username)
        self.display_name = QLineEdit()
        self.display_name.setPlaceholderText("e.g. Dr Jane Doe")
        form.addRow("Full name", self.display_name)
        self.secret = _password_field()
        form.addRow("Password or PIN", self.secret)
        self.again = _password_field()
        form.addRow("Repeat it", self.again)
        self.mismatch = QLabel("")
        self.mismatch.setStyleSheet("color: #e05050;")
        form.addRow(self.mismatch)
        self.buttons = _ok_cancel(self, "Add user")
        form.addRow(self.buttons)
        for edit in (self.username, self.display_name, self.secret, self.again):
            edit.textChanged.connect(self._update)
        self._update()

    def _update(self, _t: str = "") -> None:
        same = self.secret.text() == self.again.text()
        self.mismatch.setText("" if same or not self.again.text() else "The two entries differ.")
        filled = all(e.text().strip() for e in (self.username, self.display_name, self.secret))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(filled and same)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> QTableWidget:
    table = QTableWidget(len(rows), len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().setVisible(False)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            table.setItem(i, j, QTableWidgetItem(value))
    table.resizeColumnsToContents()
    table.horizontalHeader().setStretchLastSection(True)
    return table


def _when(dt: Any) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M") if dt is not None else "–"


class VersionsDialog(QDialog):
    """Every version of a case; Open shows the chosen one (signed versions read-only)."""

    def __init__(self, versions: Sequence[Any], current_id: int | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Versions of {versions[0].accession}" if versions else "Versions")
        self.versions = list(versions)
        layout = QVBoxLayout(self)
        rows = [(f"v{v.version}", "signed" if v.is_signed else "draft", v.signed_by or "–", _when(v.signed_at),
                 _when(v.created_at)) for v in self.versions]
        self.table = _table(("Version", "Status", "Signed by", "Signed", "Created"), rows)
        for i, v in enumerate(self.versions):
            if v.id == current_id:
                self.table.selectRow(i)
        self.table.cellDoubleClicked.connect(lambda *_: self.accept())
        layout.addWidget(self.table)
        note = QLabel("Signed versions open read-only; only the newest version can be a draft.")
        note.setWordWrap(True)
        layout.addWidget(note)
        layout.addWidget(_ok_cancel(self, "Open"))
        self.resize(560, 300)

    def chosen_id(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return self.versions[rows[0].row()].id if rows else None


#: Audit actions in the words of a lab user.
ACTIONS = {
    "create": "created", "update": "changed", "sign": "signed", "signature": "signature meaning",
    "new_version": "new version", "superseded": "superseded by a new version", "add": "added",
    "start": "started", "finish": "finished", "save_cells": "cells saved", "set_reference": "reference flag",
    "delete": "deleted",
}


def _what(entry: Any) -> str:
    after = entry.after or {}
    detail = ""
    if entry.action == "signature":
        detail = f": {after.get('meaning', '')}"
    elif entry.entity == "case" and entry.action == "update" and entry.before:
        changed = [k for k, v in after.items() if entry.before.get(k) != v]
        detail = ": " + ", ".join(changed).replace("_", " ")
    elif entry.entity == "analysis" and "status" in after:
        detail = f": {after['status']}"
    return f"{entry.entity} {ACTIONS.get(entry.action, entry.action.replace('_', ' '))}{detail}"


class AuditDialog(QDialog):
    """Who did what and when to a case (all its versions), newest last, times local."""

    def __init__(self, title: str, entries: Sequence[Any], versions: dict[int, int],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Audit log — {title}")
        layout = QVBoxLayout(self)
        rows = [(_when(e.at), e.who, f"v{versions.get(e.case_id or -1, '?')}", _what(e)) for e in entries]
        self.table = _table(("When", "Who", "Version", "What"), rows)
        layout.addWidget(self.table)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignRight)
        self.resize(760, 420)
