"""Render a :class:`ReportData` as an A4 PDF, byte-identical for identical inputs.

Determinism: reportlab runs in invariant mode (no random document id, no wall-clock time), the
PDF creation date is the report date of the data, fonts are the PDF base fonts (nothing
embedded), and images are compressed by reportlab from pixels that are themselves deterministic.
"""

from __future__ import annotations

import io
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, CondPageBreak, Flowable, Frame, KeepTogether, PageTemplate

from core import __version__
from core.report import _sections as sections
from core.report._styles import FONT, FONT_BOLD, INK, fmt_date, pdf_date
from core.report.branding import logo_png
from core.report.colours import BRAND, MUTED, RULE, WARNING
from core.report.data import ReportData, ReportSettings
from core.report.overview import render_overview

PAGE_W, PAGE_H = A4
MARGIN_X = 16 * mm
HEADER_H = 24 * mm
BANNER_H = 9 * mm
FOOTER_H = 14 * mm

RESEARCH_ONLY = "For research use only — not for diagnostic use."
SYNTHETIC_BANNER = "SYNTHETIC DEMO DATA"
TITLE = "Immune cell density report"


def _canvas_class(data: ReportData, settings: ReportSettings) -> type[Canvas]:
    """A canvas that knows the page count (for "Page 1 of 2") and writes the fixed date."""
    created = pdf_date(data.report_date)
    logo = ImageReader(io.BytesIO(logo_png(settings.logo_path)))
    version = data.software_version or __version__

    class ReportCanvas(Canvas):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["invariant"] = 1
            super().__init__(*args, **kwargs)
            self.setDateFormatter(lambda *_: created)
            self._pages: list[dict[str, object]] = []  # each page's canvas state

        def showPage(self) -> None:  # noqa: N802 - reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                _page_furniture(self, data, settings, logo, version, total)
                super().showPage()
            super().save()

    return ReportCanvas


def _page_furniture(c: Canvas, data: ReportData, settings: ReportSettings, logo: ImageReader,
                    version: str, total: int) -> None:
    """Header (logo, lab, title, case), synthetic banner, footer (research use, page x of n)."""
    c.saveState()
    top = PAGE_H - 10 * mm
    logo_h = 14 * mm
    c.drawImage(logo, MARGIN_X, top - logo_h, logo_h, logo_h, mask="auto")
    x = MARGIN_X + logo_h + 4 * mm
    c.setFillColor(colors.HexColor(BRAND))
    c.setFont(FONT_BOLD, 13)
    c.drawString(x, top - 5.2 * mm, settings.lab_name)
    c.setFont(FONT, 8)
    c.setFillColor(colors.HexColor(MUTED))
    c.drawString(x, top - 9.6 * mm, settings.lab_address or "Immune cell scoring from a Hoechst stain")
    right = PAGE_W - MARGIN_X
    c.setFillColor(INK)
    c.setFont(FONT_BOLD, 11)
    c.drawRightString(right, top - 5.2 * mm, TITLE)
    c.setFont(FONT, 8)
    c.setFillColor(colors.HexColor(MUTED))
    c.drawRightString(right, top - 9.6 * mm, f"Case {data.case_id} · printed {fmt_date(settings.printed_at)}"
                      if settings.printed_at else f"Case {data.case_id} · {fmt_date(data.report_date, with_time=False)}")
    rule_y = PAGE_H - HEADER_H
    c.setStrokeColor(colors.HexColor(BRAND))
    c.setLineWidth(1.2)
    c.line(MARGIN_X, rule_y, right, rule_y)
    if data.synthetic:
        y = rule_y - 2 * mm - BANNER_H + 2 * mm
        c.setFillColor(colors.HexColor(WARNING))
        c.roundRect(MARGIN_X, y, right - MARGIN_X, BANNER_H - 2 * mm, 1.5 * mm, stroke=0, fill=1)
        c.setFillColor(colors.white)
        c.setFont(FONT_BOLD, 10)
        c.drawString(MARGIN_X + 4 * mm, y + 2.4 * mm, SYNTHETIC_BANNER)
        c.setFont(FONT, 8)
        c.drawRightString(right - 4 * mm, y + 2.5 * mm,
                          "Computer-generated phantom slide: the results describe no patient.")
    # Footer.
    fy = FOOTER_H - 4 * mm
    c.setStrokeColor(colors.HexColor(RULE))
    c.setLineWidth(0.5)
    c.line(MARGIN_X, fy + 4.2 * mm, right, fy + 4.2 * mm)
    c.setFont(FONT_BOLD, 7.6)
    c.setFillColor(INK)
    c.drawString(MARGIN_X, fy, RESEARCH_ONLY)
    c.setFont(FONT, 7.4)
    c.setFillColor(colors.HexColor(MUTED))
    c.drawCentredString(PAGE_W / 2 + 18 * mm, fy, f"HoechstScore {version}")
    c.drawRightString(right, fy, f"Page {c.getPageNumber()} of {total}")
    c.restoreState()


#: The overview's height on page 1: it gives way, down to the smaller figure, when what is above it
#: grows (a long case label, a note that a score is near a category cut), so that page 1 still shows
#: the scores, the densities and the overview together and the report keeps its two pages.
OVERVIEW_MAX_H, OVERVIEW_MIN_H = 88 * mm, 60 * mm


def _height(flowables: list[Flowable], width: float) -> float:
    """Height the flowables take in a column of ``width`` (their spacing included), measured on a
    scratch canvas. A KeepTogether is measured by its content: its own wrap answers "too tall"."""
    scratch = Canvas(io.BytesIO())
    total = 0.0
    for f in flowables:
        if isinstance(f, KeepTogether):  # its spacing is its content's
            total += _height(f._content, width)
        else:
            total += f.wrapOn(scratch, width, PAGE_H)[1] + f.getSpaceBefore() + f.getSpaceAfter()
    return total


def _story(data: ReportData, settings: ReportSettings, width: float, frame_height: float) -> list[Flowable]:
    story: list[Flowable] = []
    story += sections.identification(data, settings, width)
    story += sections.scores(data, width)
    story += sections.region_table(data, width)
    left = frame_height - _height(story, width)
    picture = render_overview(data.thumbnail, data.thumbnail_downsample, data.mpp, data.regions, data.density)
    max_height = OVERVIEW_MAX_H
    overview = sections.overview(picture, width, max_height=max_height)
    while max_height > OVERVIEW_MIN_H and _height(overview, width) > left:
        max_height = max(OVERVIEW_MIN_H, max_height - 2 * mm)
        overview = sections.overview(picture, width, max_height=max_height)
    story += overview
    story.append(CondPageBreak(70 * mm))  # cohort, model and QC start a page unless most of one is left
    story += sections.cohort_and_model(data, width)
    story += sections.quality(data, width)
    story += sections.method(data)
    story += sections.signature(data, width)
    return story


def render_report(data: ReportData, settings: ReportSettings | None = None) -> bytes:
    """The report as PDF bytes (A4, one or two pages). Same inputs, same bytes."""
    settings = settings or ReportSettings()
    if settings.logo_path is not None and not Path(settings.logo_path).is_file():
        raise FileNotFoundError(f"Logo file {settings.logo_path} does not exist; choose a PNG or JPEG file.")
    buf = io.BytesIO()
    top = HEADER_H + (BANNER_H if data.synthetic else 0) + 2 * mm
    frame = Frame(MARGIN_X, FOOTER_H + 2 * mm, PAGE_W - 2 * MARGIN_X, PAGE_H - top - FOOTER_H - 2 * mm,
                  leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0, id="body")
    doc = BaseDocTemplate(
        buf, pagesize=A4, pageTemplates=[PageTemplate(id="page", frames=[frame])], invariant=1,
        title=f"{TITLE} – case {data.case_id}", author=settings.lab_name, subject=RESEARCH_ONLY,
        creator=f"HoechstScore {data.software_version or __version__}", producer="HoechstScore (ReportLab)",
        leftMargin=MARGIN_X, rightMargin=MARGIN_X, topMargin=top, bottomMargin=FOOTER_H,
    )
    doc.build(_story(data, settings, frame._width, frame._height), canvasmaker=_canvas_class(data, settings))
    return buf.getvalue()


def write_report(path: str | Path, data: ReportData, settings: ReportSettings | None = None) -> Path:
    """Render and write the report to ``path`` (parent folders created); returns the path."""
    path = Path(path)
    pdf = render_report(data, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pdf)
    return path
