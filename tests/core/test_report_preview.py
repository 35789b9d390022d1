"""The report preview's page images (core.report.render_pages) from a real report PDF.

Page count and page size are checked against pypdf, pixels against poppler's pdftoppm where it is
installed: two independent readers of the same bytes, so a wrong scale, a lost page or swapped
colour channels (PDFium renders BGR by default) would show.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from core.errors import CoreError
from core.report import render_pages, render_report
from tests.core.test_report import SETTINGS, make_data


@pytest.fixture(scope="module")
def report_pdf() -> bytes:
    return render_report(make_data(), SETTINGS)


def test_pages_match_the_pdf_and_are_a4(report_pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(report_pdf))
    pages = render_pages(report_pdf, dpi=110)
    assert len(pages) == len(reader.pages) == 2
    for page, pdf_page in zip(pages, reader.pages, strict=True):
        w_pt, h_pt = float(pdf_page.mediabox.width), float(pdf_page.mediabox.height)
        assert page.dtype == np.uint8 and page.ndim == 3 and page.shape[2] == 3
        assert page.shape[:2] == (math.ceil(h_pt * 110 / 72), math.ceil(w_pt * 110 / 72))
        assert page.shape[0] / page.shape[1] == pytest.approx(297 / 210, rel=0.01)  # A4
    half = render_pages(report_pdf, dpi=55)
    assert half[0].shape[1] == pytest.approx(pages[0].shape[1] / 2, abs=1)


def test_pages_have_ink_and_true_colours(report_pdf: bytes) -> None:
    pages = render_pages(report_pdf)
    for page in pages:
        p = page.astype(int)
        assert (p == 255).all(axis=2).mean() > 0.4  # a white sheet…
        ink = (p.sum(axis=2) < 300).mean()
        assert 0.005 < ink < 0.5, ink              # …with text and figures on it
    first = pages[0].astype(int)
    red = (first[..., 0] > 150) & (first[..., 1] < 70) & (first[..., 2] < 70)
    blue = (first[..., 2] > 150) & (first[..., 1] < 70) & (first[..., 0] < 70)
    assert red.sum() > 2000 and blue.sum() < red.sum() / 10  # the red synthetic banner stays red (RGB, not BGR)


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
def test_same_picture_as_poppler(report_pdf: bytes, tmp_path: Path) -> None:
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(report_pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(tmp_path / "p")], check=True, timeout=60)
    theirs = [np.asarray(Image.open(p).convert("RGB")).astype(float) for p in sorted(tmp_path.glob("p*.png"))]
    ours = render_pages(report_pdf, dpi=50)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
        assert abs(a.shape[0] - b.shape[0]) <= 1 and abs(a.shape[1] - b.shape[1]) <= 1
        # Antialiasing differs between the renderers (mean |Δ| ≈ 5 of 255); the layout does not
        # (the same page upside down differs by ≈ 18–34).
        assert np.abs(a[:h, :w] - b[:h, :w]).mean() < 8


@pytest.mark.parametrize("data", [b"", b"hello, not a PDF", b"\x89PNG\r\n\x1a\n" + bytes(200)], ids=["empty", "text", "png"])
def test_not_a_pdf_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(CoreError, match="(empty|not a readable PDF)"):
        render_pages(data)


def test_truncated_pdf_and_bad_dpi_are_refused(report_pdf: bytes) -> None:
    with pytest.raises(CoreError, match="not a readable PDF"):
        render_pages(report_pdf[:300])
    with pytest.raises(CoreError, match="positive"):
        render_pages(report_pdf, dpi=0)
