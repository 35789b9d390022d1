"""Type styles and number formats of the report, in one place so every section looks the same.

The report uses the PDF base fonts (Helvetica): nothing is embedded, so the bytes do not depend on
the fonts installed on the machine. Their encoding covers µ, ², en/em dashes and the middle dot,
which is every symbol the report prints; ≤/≥ are written out in words.
"""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT, TA_RIGHT
from reportlab.lib.styles import ParagraphStyle

from core.report.colours import BRAND, MUTED

FONT = "Helvetica"
FONT_BOLD = "Helvetica-Bold"
FONT_ITALIC = "Helvetica-Oblique"

INK = colors.HexColor("#1b1f24")

BODY = ParagraphStyle("body", fontName=FONT, fontSize=8.6, leading=11.2, textColor=INK, alignment=TA_LEFT)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=7.4, leading=9.4, textColor=colors.HexColor(MUTED))
SMALL_RIGHT = ParagraphStyle("small_right", parent=SMALL, alignment=TA_RIGHT)
CELL = ParagraphStyle("cell", parent=BODY, fontSize=8.2, leading=10.2)
CELL_RIGHT = ParagraphStyle("cell_right", parent=CELL, alignment=TA_RIGHT)
CELL_HEAD = ParagraphStyle("cell_head", parent=CELL, fontName=FONT_BOLD, textColor=colors.HexColor(BRAND))
CELL_HEAD_RIGHT = ParagraphStyle("cell_head_right", parent=CELL_HEAD, alignment=TA_RIGHT)
CELL_HEAD_CENTRE = ParagraphStyle("cell_head_centre", parent=CELL_HEAD, alignment=TA_CENTER)
LABEL = ParagraphStyle("label", parent=CELL, textColor=colors.HexColor(MUTED))
H1 = ParagraphStyle("h1", parent=BODY, fontName=FONT_BOLD, fontSize=15, leading=19, textColor=colors.HexColor(BRAND))
H2 = ParagraphStyle(
    "h2", parent=BODY, fontName=FONT_BOLD, fontSize=10.5, leading=13, textColor=colors.HexColor(BRAND),
    spaceBefore=9, spaceAfter=4,
)
BOX_TITLE = ParagraphStyle("box_title", parent=BODY, fontName=FONT_BOLD, fontSize=9.2, leading=11.5,
                           textColor=colors.HexColor(BRAND))
RESULT = ParagraphStyle("result", parent=BODY, fontName=FONT_BOLD, fontSize=17, leading=21, textColor=INK)
WARN = ParagraphStyle("warn", parent=BODY, textColor=colors.HexColor("#8a1c14"))


def esc(text: object) -> str:
    """Text for a Paragraph: XML special characters escaped."""
    return escape(str(text))


def fmt_density(value: float | None) -> str:
    """cells/mm²: whole numbers from 100 up, one decimal below; an en dash when missing."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def fmt_count(value: int | None) -> str:
    return "–" if value is None else f"{int(value):,}"


def fmt_area(value: float | None) -> str:
    """mm² with three significant decimals for small regions."""
    if value is None:
        return "–"
    return f"{value:,.3f}" if abs(value) < 1 else f"{value:,.2f}"


def fmt_percentile(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def fmt_fraction(value: float | None) -> str:
    return "–" if value is None else f"{100.0 * value:.1f} %"


def fmt_date(value: datetime | None, with_time: bool = True) -> str:
    """ISO-like date (and time, to the minute); aware datetimes are shown in UTC."""
    if value is None:
        return "–"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
        suffix = " UTC"
    else:
        suffix = ""
    return value.strftime("%Y-%m-%d %H:%M") + suffix if with_time else value.strftime("%Y-%m-%d")


def pdf_date(value: datetime) -> str:
    """The PDF ``D:`` date string of the document info (creation/modification date)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("D:%Y%m%d%H%M%S+00'00'")
