"""Rasterise a PDF report's pages, so that a viewer can show the very bytes that will be saved.

The app's preview used QtPdf, which PySide6-Essentials does not ship; rendering with PDFium
(pypdfium2) here keeps the preview Qt-free, testable in core, and faithful to the PDF itself
rather than to a re-drawing of the same data.
"""

from __future__ import annotations

import numpy as np
import pypdfium2 as pdfium

from core.errors import CoreError

POINTS_PER_INCH = 72.0  # PDF user space unit (1/72 in)


def render_pages(pdf: bytes, dpi: float = 110) -> list[np.ndarray]:
    """Each page of ``pdf`` as an RGB uint8 array of shape (H, W, 3), at ``dpi`` dots per inch.

    Raises :class:`CoreError` when ``pdf`` is not a readable PDF (empty, truncated, another file
    type) or ``dpi`` is not positive, so the app shows a message instead of a blank preview.
    """
    if dpi <= 0:
        raise CoreError(f"The preview resolution must be positive; got {dpi} dpi.")
    if not pdf:
        raise CoreError("The report is empty (0 bytes): make the report again.")
    try:
        document = pdfium.PdfDocument(bytes(pdf))
    except pdfium.PdfiumError as exc:
        head = bytes(pdf[:8])
        raise CoreError(f"The report cannot be previewed: the data is not a readable PDF "
                        f"({len(pdf):,} bytes starting {head!r}; {str(exc).rstrip('.')}). Make the report again.") from None
    pages: list[np.ndarray] = []
    try:
        for i in range(len(document)):
            page = document[i]
            try:
                bitmap = page.render(scale=dpi / POINTS_PER_INCH, rev_byteorder=True)  # RGB, not BGR
                # to_numpy() is a view of PDFium's buffer, freed with the bitmap: copy it out.
                pages.append(np.array(bitmap.to_numpy()[..., :3], dtype=np.uint8, copy=True))
                bitmap.close()
            finally:
                page.close()
    finally:
        document.close()
    return pages
