"""ReportDialog: preview the PDF report (QtPdf when installed, else a summary) and save it."""

from __future__ import annotations

from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget


class ReportDialog(QDialog):
    """Shows ``pdf`` (bytes); Save accepts the dialog, the caller asks where."""

    def __init__(self, pdf: bytes, summary: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Report preview")
        self.resize(760, 900)
        layout = QVBoxLayout(self)
        self.pages = 0
        try:
            from PySide6.QtPdf import QPdfDocument
            from PySide6.QtPdfWidgets import QPdfView

            self._bytes = QByteArray(pdf)
            self._buffer = QBuffer(self._bytes)
            self._buffer.open(QIODevice.OpenModeFlag.ReadOnly)
            self.document = QPdfDocument(self)
            self.document.load(self._buffer)
            self.pages = self.document.pageCount()
            view = QPdfView(self)
            view.setDocument(self.document)
            view.setPageMode(QPdfView.PageMode.MultiPage)
            view.setZoomMode(QPdfView.ZoomMode.FitToWidth)
            layout.addWidget(view, 1)
        except ImportError:  # QtPdf is not part of PySide6-Essentials
            text = QLabel(f"<p>The PDF preview needs QtPdf, which is not installed. Summary:</p><pre>{summary}</pre>")
            text.setWordWrap(True)
            layout.addWidget(text, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
