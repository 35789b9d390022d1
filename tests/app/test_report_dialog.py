"""The report preview dialog shows the real PDF's pages as images (PDFium, no QtPdf needed)."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from pypdf import PdfReader
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QDialogButtonBox

from app.dialogs.report_dialog import ReportDialog
from core.errors import CoreError
from core.report import render_report
from tests.core.test_report import SETTINGS, make_data


@pytest.fixture(scope="module")
def report_pdf() -> bytes:
    return render_report(make_data(), SETTINGS)


def _pixels(label) -> np.ndarray:  # noqa: ANN001 (QLabel)
    img = label.pixmap().toImage().convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    return arr[:, : img.width() * 3].reshape(img.height(), img.width(), 3)


def test_dialog_shows_every_page_fitted_to_its_width(qtbot, report_pdf: bytes) -> None:  # noqa: ANN001
    t0 = time.perf_counter()
    dlg = ReportDialog(report_pdf, "IS2 · Intermediate", None)
    built_s = time.perf_counter() - t0
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    n = len(PdfReader(io.BytesIO(report_pdf)).pages)
    assert dlg.pages == n == len(dlg.page_labels) == 2
    assert dlg.count_label.text() == "2 pages"
    assert dlg.summary_label.text() == "IS2 · Intermediate"
    assert built_s < 1.0, built_s
    viewport_w = dlg.scroll_area.viewport().width()
    for label in dlg.page_labels:
        pix = label.pixmap()
        assert not pix.isNull()
        w, h = pix.deviceIndependentSize().width(), pix.deviceIndependentSize().height()
        assert 0.7 * viewport_w < w <= viewport_w  # fitted to the width, nothing cut off
        assert h / w == pytest.approx(297 / 210, rel=0.01)  # A4
        px = _pixels(label).astype(int)
        assert (px.sum(axis=2) < 300).mean() > 0.005  # text, not a blank sheet
    # The red synthetic-data banner of page 1 is in the picture the user sees.
    first = _pixels(dlg.page_labels[0]).astype(int)
    assert ((first[..., 0] > 150) & (first[..., 1] < 70) & (first[..., 2] < 70)).sum() > 500

    before = dlg.page_labels[0].pixmap().deviceIndependentSize().width()
    dlg.resize(dlg.width() - 250, dlg.height())
    qtbot.waitUntil(lambda: dlg.page_labels[0].pixmap().deviceIndependentSize().width() < before - 200)
    assert dlg.page_labels[0].pixmap().deviceIndependentSize().width() <= dlg.scroll_area.viewport().width()


def test_save_accepts_and_cancel_rejects(qtbot, report_pdf: bytes) -> None:  # noqa: ANN001
    for button, accepted in ((QDialogButtonBox.StandardButton.Save, True),
                             (QDialogButtonBox.StandardButton.Cancel, False)):
        dlg = ReportDialog(report_pdf, "", None)
        qtbot.addWidget(dlg)
        dlg.show()
        box = dlg.findChild(QDialogButtonBox)
        with qtbot.waitSignal(dlg.accepted if accepted else dlg.rejected, timeout=2000):
            box.button(button).click()


def test_not_a_pdf_raises_the_core_error(qtbot) -> None:  # noqa: ANN001
    with pytest.raises(CoreError, match="not a readable PDF"):
        ReportDialog(b"this is not a PDF at all", "", None)
