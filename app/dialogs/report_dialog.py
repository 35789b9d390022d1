"""ReportDialog: preview the PDF report page by page and save it.

The pages are rasterised by :func:`core.report.render_pages` (PDFium) from the very bytes that
Save writes, so what the user checks is what gets printed. QtPdf would do the same but is a Qt
Addon, missing from PySide6-Essentials; a QScrollArea of page images needs nothing more.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGraphicsDropShadowEffect,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.viewer.display import pack_argb
from app.viewer.tiles import array_to_qimage
from core.report import render_pages

PREVIEW_DPI = 110.0  # sharp enough to read the tables at the dialog's width, ~60 ms for two pages
PAGE_MARGIN = 18     # px of grey "desk" around and between the pages
DESK = "#5f6368"


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """An (h, w, 3) uint8 RGB array as a QImage that owns its pixels (see ``array_to_qimage``)."""
    return array_to_qimage(pack_argb(rgb[..., 0], rgb[..., 1], rgb[..., 2]))


class ReportDialog(QDialog):
    """Shows ``pdf`` (bytes) as stacked page images; Save accepts the dialog, the caller asks where.

    ``pages`` is the number of pages, ``page_labels`` the QLabels showing them (scaled to the
    scroll area's width whenever that width changes; the full-resolution images are kept).
    """

    def __init__(self, pdf: bytes, summary: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Report preview")
        layout = QVBoxLayout(self)
        self.images = [rgb_to_qimage(page) for page in render_pages(pdf, PREVIEW_DPI)]
        self.pages = len(self.images)

        self.summary_label = QLabel(summary)
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.count_label = QLabel(f"{self.pages} page{'s' if self.pages != 1 else ''}")
        self.count_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        header = QHBoxLayout()
        header.addWidget(self.summary_label, 1)
        header.addWidget(self.count_label)
        layout.addLayout(header)

        desk = QWidget()
        desk.setObjectName("desk")
        desk.setStyleSheet(f"#desk {{ background: {DESK}; }}")
        column = QVBoxLayout(desk)
        column.setContentsMargins(PAGE_MARGIN, PAGE_MARGIN, PAGE_MARGIN, PAGE_MARGIN)
        column.setSpacing(PAGE_MARGIN)
        self.page_labels: list[QLabel] = []
        for i in range(self.pages):
            label = QLabel()
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setStyleSheet("background: white; border: 1px solid #3c4043;")
            label.setToolTip(f"Page {i + 1} of {self.pages}")
            shadow = QGraphicsDropShadowEffect(label)  # the "sheet of paper" look
            shadow.setBlurRadius(12)
            shadow.setOffset(2, 3)
            shadow.setColor(QColor(0, 0, 0, 140))
            label.setGraphicsEffect(shadow)
            column.addWidget(label, 0, Qt.AlignmentFlag.AlignHCenter)
            self.page_labels.append(label)
        column.addStretch(1)

        self.scroll_area = QScrollArea()
        self.scroll_area.setWidget(desk)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Always on: a bar that came and went with the page height would change the width the
        # pages are fitted to, and refitting could make it come and go again.
        self.scroll_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.scroll_area.viewport().installEventFilter(self)
        layout.addWidget(self.scroll_area, 1)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(760, 900)
        self._fit_pages()

    def page_width(self) -> int:
        """Width in px a page gets: the scroll area's viewport less the desk margins.

        Before the dialog is first shown the viewport has no real size yet, so the width is
        estimated from the dialog's; the viewport's first resize then fits the pages exactly.
        """
        if self.scroll_area.isVisible():
            available = self.scroll_area.viewport().width()
        else:
            layout = self.layout()
            margin = layout.contentsMargins().left() if layout is not None else 0
            available = self.width() - 2 * margin \
                - self.scroll_area.verticalScrollBar().sizeHint().width()
        return max(120, available - 2 * PAGE_MARGIN)

    def _fit_pages(self) -> None:
        """Scale every page to the current width (sharp on high-DPI screens via the pixel ratio)."""
        width = self.page_width()
        ratio = self.devicePixelRatioF()
        for label, image in zip(self.page_labels, self.images, strict=True):
            scaled = image.scaledToWidth(max(1, round(width * ratio)), Qt.TransformationMode.SmoothTransformation)
            pixmap = QPixmap.fromImage(scaled)
            pixmap.setDevicePixelRatio(ratio)
            label.setPixmap(pixmap)
            label.setFixedSize(pixmap.deviceIndependentSize().toSize() + QSize(2, 2))  # + the 1 px border

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if watched is self.scroll_area.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_pages()
        return super().eventFilter(watched, event)
