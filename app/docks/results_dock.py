"""ScorePanel: region areas, counts and densities, both scores with their parts, cohort, and charts.

Takes the scores as stored (``CaseScores.to_dict()`` form), so a reopened case shows exactly what
was saved, and reads them back as core's typed results (``CaseScores.from_dict``). Words come from
core's score classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.classes import marker_colour
from core.scores import IS_PARAMETERS, CaseScores, ImmunoscoreLike, TAndBScore

#: After a category the counting error could change (core.scores.near_cut); the sentence is under Parts.
_NEAR = " <span style='color:#e0a030'>⚠ near a cut</span>"


def _fmt(v: Any, digits: int = 1) -> str:
    return "—" if v is None else f"{v:,.{digits}f}"


class ScorePanel(QWidget):
    """Tables and charts of one case's scores; emits export requests."""

    export_csv = Signal()
    export_geojson = Signal()
    report_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.headline = QLabel("No scores yet: open a case, run the analysis and draw the tumour.")
        self.headline.setWordWrap(True)
        self.headline.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.headline)
        tabs = QTabWidget()
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        tabs.addTab(self.table, "Densities")
        self.parts = QLabel()
        self.parts.setWordWrap(True)
        self.parts.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.parts.setTextFormat(Qt.TextFormat.RichText)
        tabs.addTab(self.parts, "Scores")
        pg.setConfigOptions(antialias=True)
        self.density_plot = pg.PlotWidget(background="#202327")
        self.density_plot.setLabel("left", "cells/mm²")
        tabs.addTab(self.density_plot, "Chart")
        self.cohort_plot = pg.PlotWidget(background="#202327")
        tabs.addTab(self.cohort_plot, "Cohort")
        layout.addWidget(tabs, 1)
        row = QHBoxLayout()
        for text, sig in (("Cells CSV…", self.export_csv), ("GeoJSON…", self.export_geojson),
                          ("Report…", self.report_requested)):
            b = QPushButton(text)
            b.clicked.connect(sig)
            row.addWidget(b)
        layout.addLayout(row)
        self.cohort_values: dict[str, np.ndarray] = {}

    def set_cohort(self, cohort: Any) -> None:
        """Reference distributions (core.scores.ReferenceCohort; None: no cohort) for the cohort chart."""
        self.cohort_values = {} if cohort is None else {p: cohort.values(p) for p in IS_PARAMETERS}

    def show_scores(self, scores: CaseScores | None, warnings: list[str] | None = None) -> None:
        """Show a case's scores (None: none yet)."""
        if scores is None:
            self.headline.setText("No scores yet: open a case, run the analysis and draw the tumour.")
            self.table.setRowCount(0)
            self.parts.setText("")
            self.density_plot.clear()
            self.cohort_plot.clear()
            return
        typed = scores
        isl, tb = typed.immunoscore_like, typed.t_and_b
        version = isl.provenance.cohort_version
        near = typed.near_cut_notes()
        self.headline.setText(
            f"<b>{ImmunoscoreLike.name}:</b> {isl.label} "
            f"{'(' + isl.category + ')' if isl.category else ''}{_NEAR if ImmunoscoreLike.name in near else ''} &nbsp; "
            f"<b>{TAndBScore.name}:</b> {tb.label}{_NEAR if TAndBScore.name in near else ''}<br>"
            f"<span style='color:#999'>Reference cohort: {isl.cohort_name or 'none'} (n={isl.cohort_n}"
            f"{', version ' + version if version else ''})</span>")
        self._fill_table(typed.densities)
        self._fill_parts(isl, tb, list(near.values()) + list(typed.warnings) + list(warnings or []))
        self._plot_densities(typed.densities)
        self._plot_cohort(isl)

    def _fill_table(self, densities: Any) -> None:
        regions, groups = densities.regions, list(densities.marker_groups)
        headers = ["Region", "Area (mm²)"] + [f"{g} cells" for g in groups] + [f"{g} /mm²" for g in groups]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(regions))
        for i, r in enumerate(regions):
            values = [r.region, _fmt(r.area_mm2, 3)] + [f"{r.counts[g]:,}" for g in groups] + [
                _fmt(r.densities[g]) for g in groups]
            for j, v in enumerate(values):
                item = QTableWidgetItem(str(v))
                if j:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()

    def _fill_parts(self, isl: Any, tb: Any, warnings: list[str]) -> None:
        rows = []
        for p in IS_PARAMETERS:
            rows.append(f"<tr><td>{p}</td><td align=right>{_fmt(isl.values.get(p))}</td>"
                        f"<td align=right>{_fmt(isl.percentiles.get(p))}</td><td></td></tr>")
        tb_rows = "".join(
            f"<tr><td>{p}</td><td align=right>{_fmt(v)}</td><td align=right>{_fmt(tb.cutoffs.get(p))}</td>"
            f"<td>{tb.calls.get(p, '')}</td></tr>" for p, v in tb.values.items())
        reason = f"<p>Not evaluable: {isl.reason}</p>" if not isl.evaluable and isl.reason else ""
        tb_reason = f"<p>Not evaluable: {tb.reason}</p>" if not tb.evaluable and tb.reason else ""
        warn = "".join(f"<p style='color:#e0a030'>⚠ {w}</p>" for w in dict.fromkeys(warnings))
        self.parts.setText(
            f"<h3>{ImmunoscoreLike.name}: {isl.label}</h3>{reason}"
            f"<p>Mean percentile {_fmt(isl.mean_percentile)}</p>"
            "<table cellpadding=3><tr><th>Part</th><th>cells/mm²</th><th>Percentile</th><th></th></tr>"
            + "".join(rows) + "</table>"
            f"<h3>{TAndBScore.name}: {tb.label}</h3>{tb_reason}"
            "<table cellpadding=3><tr><th>Part</th><th>cells/mm²</th><th>Cut-off</th><th>Call</th></tr>"
            + tb_rows + "</table>" + warn)

    def _plot_densities(self, densities: Any) -> None:
        plot = self.density_plot.getPlotItem()
        plot.clear()
        regions, groups = densities.regions, list(densities.marker_groups)
        if not regions or not groups:
            return
        width = 0.8 / len(groups)
        for gi, g in enumerate(groups):
            xs = np.arange(len(regions)) + (gi - (len(groups) - 1) / 2) * width
            ys = [r.densities[g] or 0.0 for r in regions]
            plot.addItem(pg.BarGraphItem(x=xs, height=ys, width=width * 0.9, brush=marker_colour(g)))
        plot.getAxis("bottom").setTicks([[(i, r.region) for i, r in enumerate(regions)]])
        # One legend, refilled: clear() keeps the plot's legend, and a new one per redraw (or named
        # bars, which add themselves) grew it by three entries at every rescore.
        legend = plot.legend if plot.legend is not None else plot.addLegend(offset=(5, 5))
        legend.clear()
        for g in groups:
            legend.addItem(pg.BarGraphItem(x=[0], height=[0], width=1, brush=marker_colour(g)), g)

    def _plot_cohort(self, isl: Any) -> None:
        plot = self.cohort_plot
        plot.clear()
        values = isl.values
        rng = np.random.default_rng(0)
        for i, p in enumerate(IS_PARAMETERS):
            ref = self.cohort_values.get(p)
            if ref is not None and ref.size:
                jitter = rng.uniform(-0.25, 0.25, ref.size)
                plot.plot(i + jitter, np.log10(np.maximum(ref, 1e-3)), pen=None, symbol="o", symbolSize=4,
                          symbolBrush=(160, 160, 160, 120), symbolPen=None)
            v = values.get(p)
            if v:
                plot.plot([i - 0.35, i + 0.35], [np.log10(v)] * 2, pen=pg.mkPen("#ff4d4d", width=3))
        plot.getAxis("bottom").setTicks([[(i, p) for i, p in enumerate(IS_PARAMETERS)]])
        plot.setLabel("left", "log10 cells/mm² (red: this case)")
