"""SigningController: the Case menu — sign as a lab user, new version (asked first), versions, audit
log, hide, patient fields, reference flag — and the guard that keeps tools off a signed case.

Declared state: none of its own. The case's state lives in :class:`app.case_session.CaseSession`;
this only asks and shows. ``case_listed`` tells the window that hiding changed what its Case menu
says (the session's ``case_changed`` covers everything else).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox

from app.case_session import CaseSession
from app.controllers.case import CaseController
from app.controllers.prompts import Prompts
from app.dialogs.signing import AddUserDialog, AuditDialog, SignDialog, VersionsDialog
from app.viewer import ToolMode

#: Tools that change regions: on a signed case they first offer a new version.
EDITING_TOOLS = (ToolMode.POLYGON, ToolMode.RECTANGLE, ToolMode.BRUSH)


class SigningController(QObject):
    """Case menu commands (see the module docstring)."""

    case_listed = Signal()  # the open case was hidden from, or put back on, the case list

    def __init__(self, session: CaseSession, cases: CaseController, prompts: Prompts,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.cases, self.prompts = session, cases, prompts

    def add_user_dialog(self) -> bool:
        dlg = AddUserDialog(self.prompts.widget)
        if not self.prompts.exec_dialog(dlg):
            return False
        user = self.prompts.attempt("Adding the lab user", self.session.store.add_user, dlg.username.text(),
                                    dlg.display_name.text(), dlg.secret.text())
        return user is not None

    def sign_case(self) -> None:
        s = self.session
        if s.case is None or s.read_only:
            return
        users = self.prompts.attempt("Reading the lab users", s.store.list_users)
        if users == []:
            ask = QMessageBox(QMessageBox.Icon.Question, "Sign case",
                              "Nobody can sign yet: add the lab users who sign cases, each with a password "
                              "or PIN.", parent=self.prompts.widget)
            add = ask.addButton("Add a lab user…", QMessageBox.ButtonRole.AcceptRole)
            ask.addButton(QMessageBox.StandardButton.Cancel)
            self.prompts.exec_dialog(ask)
            if ask.clickedButton() is not add or not self.add_user_dialog():
                return
            users = self.prompts.attempt("Reading the lab users", s.store.list_users)
        if not users or s.case is None:
            return
        dlg = SignDialog(f"{s.case.accession} v{s.case.version}", users, self.prompts.widget)
        if self.prompts.exec_dialog(dlg):
            self.prompts.attempt("Signing the case", s.sign, dlg.username(), dlg.secret.text(), dlg.meaning_text())

    def offer_new_version(self, doing: str) -> bool:
        """Ask before anything acts on a signed case; True when a new draft version is now open."""
        s = self.session
        if s.case is None or not s.read_only:
            return s.case is not None
        box = QMessageBox(QMessageBox.Icon.Question, "Signed case",
                          f"{s.case.accession} v{s.case.version} is signed by {s.case.signed_by} and cannot be "
                          f"changed ({doing}).", parent=self.prompts.widget)
        box.setInformativeText("Make a new version to amend it? The signed version stays as it is and can "
                               "still be opened (Case › Versions…).")
        make = box.addButton("New version", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        self.prompts.exec_dialog(box)
        if box.clickedButton() is not make:
            return False
        self.prompts.attempt("Making a new version", s.new_version)
        return not s.read_only

    def new_version(self) -> None:
        self.offer_new_version("you asked for a new version")

    def guard_tool(self, mode: ToolMode) -> ToolMode:
        """The tool to use: an editing tool on a signed case only after a new version is made."""
        if mode in EDITING_TOOLS and self.session.read_only and not self.offer_new_version(
                f"drawing with the {mode.value} tool"):
            return ToolMode.MOVE
        return mode

    def versions_dialog(self) -> None:
        versions = self.prompts.attempt("Reading the versions", self.session.versions)
        case = self.session.case
        if not versions or case is None:
            return
        dlg = VersionsDialog(versions, case.id, self.prompts.widget)
        chosen = dlg.chosen_id() if self.prompts.exec_dialog(dlg) else None
        if chosen is not None and chosen != case.id:
            self.cases.open_case(chosen)

    def audit_dialog(self) -> None:
        found = self.prompts.attempt("Reading the audit log", self.session.audit_log)
        if found is None or self.session.case is None:
            return
        entries, versions = found
        self.prompts.exec_dialog(AuditDialog(self.session.case.accession, entries, versions, self.prompts.widget))

    def toggle_hidden(self) -> None:
        """Take the open case off the case list (all versions), or put a hidden one back. Cases are
        never deleted: their audit trail and signed versions must stay."""
        s = self.session
        if s.case is None:
            return
        case = self.prompts.attempt("Hiding the case", s.store.set_hidden, s.case.id, not s.case.is_hidden)
        if case is not None:
            s.case = case
            self.case_listed.emit()
            self.cases.refresh_hidden()

    def save_patient(self, patient_id: str, name: str, birth_date: str) -> None:
        self.prompts.attempt("Saving the patient fields", self.session.update_patient, patient_id, name, birth_date)

    def set_reference(self, flag: bool) -> None:
        self.prompts.attempt("Marking the reference case", self.session.set_reference, flag)
