"""AnalysisPanel: which model and device, Run/Cancel, progress with ETA and cell count."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.progress import Eta, Progress


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class AnalysisPanel(QWidget):
    run_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.model_label = QLabel("—")
        self.model_label.setWordWrap(True)
        self.device_label = QLabel("—")
        form.addRow("Model", self.model_label)
        form.addRow("Device", self.device_label)
        layout.addLayout(form)
        row = QHBoxLayout()
        self.run_button = QPushButton("Run analysis")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_requested)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self._eta: Eta | None = None

    def set_model(self, name: str, device: str) -> None:
        self.model_label.setText(name)
        self.device_label.setText(device)

    def reset(self) -> None:
        """Another case was opened: nothing shown here belongs to it yet."""
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText("Ready.")

    def started(self) -> None:
        self._eta = Eta()
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.status.setText("Starting…")

    def show_progress(self, p: Progress, n_cells: int) -> None:
        if p.total > 0:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
        else:
            self.progress.setRange(0, 0)
        eta = self._eta.remaining(p) if self._eta else None
        extra = f" — about {_duration(eta)} left" if eta is not None else ""
        cells = f"\n{n_cells:,} cells so far" if n_cells else ""
        self.status.setText(f"{p.message}{extra}{cells}")

    def ended(self, message: str) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if message.startswith("Finished") else 0)
        self.status.setText(message)
