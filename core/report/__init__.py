"""The PDF report a pathologist reads and signs: one or two A4 pages, no Qt.

The caller builds a :class:`ReportData` (plain values: identifiers, dates, thumbnail, regions in
µm, densities, scores, cohort, model, QC, signature) and a :class:`ReportSettings` (lab name,
logo, operator); :func:`render_report` returns PDF bytes, byte-identical for identical inputs.
:func:`render_overview` draws the overview picture alone (the app can show the same picture);
:func:`render_pages` rasterises the PDF's pages for a preview of exactly what will be saved.
"""

from core.report.data import (
    MIN_COHORT_SIZE,
    CohortSummary,
    DensityOverlay,
    ImmunoscoreSummary,
    ModelSummary,
    QCSummary,
    RegionLike,
    RegionStat,
    ReportData,
    ReportSettings,
    ScoreComponent,
    Signature,
    TBSummary,
)
from core.report.overview import Overview, render_overview
from core.report.pdf import RESEARCH_ONLY, SYNTHETIC_BANNER, render_report, write_report
from core.report.preview import render_pages

__all__ = [
    "MIN_COHORT_SIZE",
    "RESEARCH_ONLY",
    "SYNTHETIC_BANNER",
    "CohortSummary",
    "DensityOverlay",
    "ImmunoscoreSummary",
    "ModelSummary",
    "Overview",
    "QCSummary",
    "RegionLike",
    "RegionStat",
    "ReportData",
    "ReportSettings",
    "ScoreComponent",
    "Signature",
    "TBSummary",
    "render_overview",
    "render_pages",
    "render_report",
    "write_report",
]
