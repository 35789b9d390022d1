"""SettingsDialog: model, device, precision, IM half-width, database URL, lab name and logo."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from app.settings import AppSettings
from core.models.precision import PRECISION_CHOICES


def _installed_models() -> list[tuple[str, str]]:
    """(label, folder) of every installed model; the shipped demo model first."""
    out: list[tuple[str, str]] = [("Default (shipped demo model)", "")]
    try:
        from core.models.installed import list_models

        for path, card in list_models():
            out.append((f"{card.name} ({path.name})", str(path)))
    except Exception:  # no model folder yet: only the default
        pass
    return out


class SettingsDialog(QDialog):
    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        form = QFormLayout(self)
        self.model = QComboBox()
        for label, path in _installed_models():
            self.model.addItem(label, path)
        if settings.analysis.model_dir and self.model.findData(settings.analysis.model_dir) < 0:
            self.model.addItem(settings.analysis.model_dir, settings.analysis.model_dir)
        self.model.setCurrentIndex(max(0, self.model.findData(settings.analysis.model_dir)))
        form.addRow("Model", self.model)
        self.device = QComboBox()
        for d in ("auto", "cpu", "cuda"):
            self.device.addItem(d)
        self.device.setCurrentText(settings.analysis.device)
        form.addRow("Device", self.device)
        self.precision = QComboBox()
        for p in PRECISION_CHOICES:
            self.precision.addItem(p)
        self.precision.setCurrentText(settings.analysis.precision)
        self.precision.setToolTip("fp32: the same numbers on every computer. bf16/fp16: faster on GPUs "
                                  "(and CPUs with AMX), checked against fp32 at load. auto: fp32 on a "
                                  "CPU, bf16/fp16 on a GPU.")
        form.addRow("Precision", self.precision)
        self.im_width = QDoubleSpinBox()
        self.im_width.setRange(50, 2000)
        self.im_width.setSuffix(" µm")
        self.im_width.setValue(settings.analysis.im_half_width_um)
        form.addRow("IM half-width", self.im_width)
        self.cohort = QLineEdit(settings.analysis.cohort_csv)
        self.cohort.setPlaceholderText("Cases flagged as reference in the case database")
        self.cohort.setToolTip("An imported reference cohort table (CSV of CD3_CT … CD20_IM in cells/mm²). "
                               "Empty: the cases flagged as reference. The SYNTHETIC demo cohort is used "
                               "only for the demo case.")
        form.addRow("Reference cohort CSV", self.cohort)
        self.db = QLineEdit(settings.store.database_url)
        self.db.setPlaceholderText("cases.db in your data folder")
        form.addRow("Database URL", self.db)
        self.lab = QLineEdit(settings.report.lab_name)
        form.addRow("Lab name", self.lab)
        self.address = QLineEdit(settings.report.lab_address)
        form.addRow("Lab address", self.address)
        logo_row = QHBoxLayout()
        self.logo = QLineEdit(settings.report.logo_path)
        browse = QPushButton("…")
        browse.clicked.connect(self._browse_logo)
        logo_row.addWidget(self.logo, 1)
        logo_row.addWidget(browse)
        form.addRow("Lab logo", logo_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse_logo(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Lab logo", "", "Images (*.png *.jpg *.jpeg)")
        if path:
            self.logo.setText(path)

    def result_settings(self) -> AppSettings:
        s = self.settings
        s.analysis.model_dir = self.model.currentData() or ""
        s.analysis.device = self.device.currentText()
        s.analysis.precision = self.precision.currentText()
        s.analysis.im_half_width_um = self.im_width.value()
        s.analysis.cohort_csv = self.cohort.text().strip()
        s.store.database_url = self.db.text().strip()
        s.report.lab_name = self.lab.text().strip()
        s.report.lab_address = self.address.text().strip()
        s.report.logo_path = self.logo.text().strip()
        return s
