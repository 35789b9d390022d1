"""CasePanel: the open case (status, version, reference flag, sign) and the case browser (CaseTable)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)


class CaseTable(QTableWidget):
    """Cases found in the store; double-click opens one."""

    case_activated = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 4, parent)
        self.setHorizontalHeaderLabels(["Accession", "Version", "Status", "Updated"])
        self.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setStretchLastSection(True)
        self.cellDoubleClicked.connect(self._on_double_click)

    def set_cases(self, cases: list[Any]) -> None:
        self.setRowCount(len(cases))
        for i, c in enumerate(cases):
            status = str(c.status) + (" · reference" if c.is_reference else "") + (" · hidden" if c.is_hidden else "")
            for j, v in enumerate((c.accession, str(c.version), status, c.updated_at.strftime("%Y-%m-%d %H:%M"))):
                item = QTableWidgetItem(v)
                item.setData(Qt.ItemDataRole.UserRole, c.id)
                self.setItem(i, j, item)
        self.resizeColumnsToContents()

    def _on_double_click(self, row: int, _col: int) -> None:
        item = self.item(row, 0)
        if item is not None:
            self.case_activated.emit(int(item.data(Qt.ItemDataRole.UserRole)))


class PatientFields(QWidget):
    """Patient ID, name and birth date of the open case; Save writes them (drafts only)."""

    saved = Signal(str, str, str)  # patient id, name, birth date

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.patient_id, self.name, self.birth_date = QLineEdit(), QLineEdit(), QLineEdit()
        self.birth_date.setPlaceholderText("YYYY-MM-DD")
        self.name.setPlaceholderText("Family name, given name")
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Patient name", self.name)
        form.addRow("Birth date", self.birth_date)
        self.save = QPushButton("Save patient fields")
        self.save.clicked.connect(self._save)
        form.addRow(self.save)
        for edit in (self.patient_id, self.name, self.birth_date):
            edit.textEdited.connect(self._changed)
            edit.returnPressed.connect(self._save)
        self._changed()

    def show_case(self, case: Any) -> None:
        values = ("", "", "") if case is None else (case.patient_id or "", case.patient_name or "",
                                                     case.patient_birth_date or "")
        for edit, value in zip((self.patient_id, self.name, self.birth_date), values, strict=True):
            edit.setText(value)
            edit.setReadOnly(case is None or case.is_signed)
        self._stored = values
        self._changed()

    def values(self) -> tuple[str, str, str]:
        return (self.patient_id.text().strip(), self.name.text().strip(), self.birth_date.text().strip())

    def _changed(self, _t: str = "") -> None:
        self.save.setEnabled(not self.patient_id.isReadOnly() and self.values() != getattr(self, "_stored", None))

    def _save(self) -> None:
        if self.save.isEnabled():
            self.saved.emit(*self.values())


class CasePanel(QWidget):
    search_changed = Signal(str)
    sign_requested = Signal()
    new_version_requested = Signal()
    reference_toggled = Signal(bool)
    versions_requested = Signal()
    audit_requested = Signal()
    patient_edited = Signal(str, str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.info = QLabel("No case open. File › Open slide… (Ctrl+O) or pick a case below.")
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.info)
        row = QHBoxLayout()
        self.reference_box = QCheckBox("Reference case")
        self.reference_box.toggled.connect(self.reference_toggled)
        self.sign_button = QPushButton("Sign…")
        self.sign_button.clicked.connect(self.sign_requested)
        self.version_button = QPushButton("New version")
        self.version_button.clicked.connect(self.new_version_requested)
        for w in (self.reference_box, self.sign_button, self.version_button):
            row.addWidget(w)
        layout.addLayout(row)
        row2 = QHBoxLayout()
        self.versions_button = QPushButton("Versions…")
        self.versions_button.clicked.connect(self.versions_requested)
        self.audit_button = QPushButton("Audit log…")
        self.audit_button.clicked.connect(self.audit_requested)
        row2.addWidget(self.versions_button)
        row2.addWidget(self.audit_button)
        layout.addLayout(row2)
        self.patient = PatientFields()
        self.patient.saved.connect(self.patient_edited)
        layout.addWidget(self.patient)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search cases (accession, patient, notes)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.search_changed)
        layout.addWidget(self.search)
        self.show_hidden = QCheckBox("Show hidden cases")
        layout.addWidget(self.show_hidden)
        self.table = CaseTable()
        layout.addWidget(self.table, 1)
        self.show_case(None, None)

    def show_case(self, case: Any, slide_record: Any) -> None:
        has = case is not None
        for w in (self.reference_box, self.sign_button, self.version_button, self.versions_button,
                  self.audit_button):
            w.setEnabled(has)
        self.patient.show_case(case)
        if not has:
            self.info.setText("No case open. File › Open slide… (Ctrl+O) or pick a case below.")
            return
        signed = case.is_signed
        status = (f"<span style='color:#6fcf73'>signed by {case.signed_by}</span> (read-only)" if signed
                  else "<span style='color:#e0b040'>draft</span>")
        name = slide_record.path.rsplit("/", 1)[-1] if slide_record else "—"
        synthetic = " <b style='color:#ff6b6b'>SYNTHETIC</b>" if slide_record and slide_record.is_synthetic else ""
        self.info.setText(f"<b style='font-size:14pt'>{case.accession}</b> &nbsp;v{case.version} · {status}<br>"
                          f"Slide: {name}{synthetic}")
        self.reference_box.blockSignals(True)
        self.reference_box.setChecked(case.is_reference)
        self.reference_box.blockSignals(False)
        self.sign_button.setEnabled(not signed)
        self.version_button.setEnabled(signed)
