"""What the Case menu does: sign as a lab user, new version (asked first), versions, audit log,
patient fields, and the guard that keeps tools off a signed case.

Slots of :class:`app.main_window.MainWindow`, beside :class:`app.main_actions.ActionsMixin`; the
case's state lives in :class:`app.case_session.CaseSession`, this only asks and shows.
"""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from app.dialogs.signing import AddUserDialog, AuditDialog, SignDialog, VersionsDialog
from app.viewer import ToolMode

#: Tools that change regions: on a signed case they first offer a new version.
EDITING_TOOLS = (ToolMode.POLYGON, ToolMode.RECTANGLE, ToolMode.BRUSH)


class CaseActions:
    """Case menu slots (mixed into MainWindow)."""

    def add_user_dialog(self) -> bool:
        dlg = AddUserDialog(self)
        if not self.exec_dialog(dlg):
            return False
        user = self._try("Adding the lab user", self.session.store.add_user, dlg.username.text(),
                         dlg.display_name.text(), dlg.secret.text())
        return user is not None

    def sign_case(self) -> None:
        s = self.session
        if s.case is None or s.read_only:
            return
        users = self._try("Reading the lab users", s.store.list_users)
        if users == []:
            ask = QMessageBox(QMessageBox.Icon.Question, "Sign case",
                              "Nobody can sign yet: add the lab users who sign cases, each with a password "
                              "or PIN.", parent=self)
            add = ask.addButton("Add a lab user…", QMessageBox.ButtonRole.AcceptRole)
            ask.addButton(QMessageBox.StandardButton.Cancel)
            self.exec_dialog(ask)
            if ask.clickedButton() is not add or not self.add_user_dialog():
                return
            users = self._try("Reading the lab users", s.store.list_users)
        if not users:
            return
        dlg = SignDialog(f"{s.case.accession} v{s.case.version}", users, self)
        if self.exec_dialog(dlg):
            self._try("Signing the case", s.sign, dlg.username(), dlg.secret.text(), dlg.meaning_text())

    def offer_new_version(self, doing: str) -> bool:
        """Ask before anything acts on a signed case; True when a new draft version is now open."""
        s = self.session
        if s.case is None or not s.read_only:
            return s.case is not None
        box = QMessageBox(QMessageBox.Icon.Question, "Signed case",
                          f"{s.case.accession} v{s.case.version} is signed by {s.case.signed_by} and cannot be "
                          f"changed ({doing}).", parent=self)
        box.setInformativeText("Make a new version to amend it? The signed version stays as it is and can "
                               "still be opened (Case › Versions…).")
        make = box.addButton("New version", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        self.exec_dialog(box)
        if box.clickedButton() is not make:
            return False
        self._try("Making a new version", s.new_version)
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
        versions = self._try("Reading the versions", self.session.versions)
        if not versions:
            return
        dlg = VersionsDialog(versions, self.session.case.id, self)
        if self.exec_dialog(dlg) and dlg.chosen_id() is not None and dlg.chosen_id() != self.session.case.id:
            self.cases.open_case(dlg.chosen_id())

    def audit_dialog(self) -> None:
        found = self._try("Reading the audit log", self.session.audit_log)
        if found is None or self.session.case is None:
            return
        entries, versions = found
        self.exec_dialog(AuditDialog(self.session.case.accession, entries, versions, self))

    def toggle_hidden(self) -> None:
        """Take the open case off the case list (all versions), or put a hidden one back. Cases are
        never deleted: their audit trail and signed versions must stay."""
        s = self.session
        if s.case is None:
            return
        case = self._try("Hiding the case", s.store.set_hidden, s.case.id, not s.case.is_hidden)
        if case is not None:
            s.case = case
            self.hide_action.setText("Show case in the list" if case.is_hidden else "Hide case from the list")
            self.cases.refresh_list(self.case_panel.search.text())

    def save_patient(self, patient_id: str, name: str, birth_date: str) -> None:
        self._try("Saving the patient fields", self.session.update_patient, patient_id, name, birth_date)

    def show_read_only(self) -> None:
        """Grey out what cannot act on a signed case, and tell the viewer (no vertex dragging)."""
        s = self.session
        editable = s.case is not None and not s.read_only
        self.view.read_only = not editable
        for action in (self.delete_action, self.derive_action, self.import_action, self.run_action):
            action.setEnabled(editable)
        self.sign_action.setEnabled(editable)
        self.version_action.setEnabled(s.case is not None and s.read_only)
        for action in (self.versions_action, self.audit_action, self.hide_action):
            action.setEnabled(s.case is not None)
        hidden = s.case is not None and s.case.is_hidden
        self.hide_action.setText("Show case in the list" if hidden else "Hide case from the list")
        if not editable and self.view.tool_mode in EDITING_TOOLS:
            self.tool_actions[ToolMode.MOVE].setChecked(True)
            self.view.set_tool(ToolMode.MOVE)
