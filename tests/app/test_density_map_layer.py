"""The density map as the user sees it: a real SlideView and MainWindow on a real slide, pixels read
back from a grab, the raster and its scale computed by core from a real cell table.

A cluster of CD3 and CD8_CD3LO cells, wider than tall, sits in the top-left corner of the slide
(1024² level-0 px at 0.5 µm/px, tests/app/conftest.py) and nowhere else: the map tints the cluster in
the marker's colour, in core's colour at the right place (also zoomed in on its flank), and leaves
the far corner alone; CD20+ (no CD20 cells) draws nothing; the legend's top is what core computes
for the same cells; a stored tissue mask that leaves the cluster out removes the map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QImage

from app.viewer.slide_view import BACKGROUND, SlideView
from core.cells import make_cell_table
from core.classes import class_index, marker_colour
from core.density_map import (
    DensityOverlay,
    analysed_density,
    density_ceiling,
    density_from_cells,
    density_rgba,
)
from core.engine.summary import AnalysisSummary
from core.tissue_mask import encode_mask
from tests.app.conftest import MPP, grab_view

SIZE = 1024  # level-0 px of the test slide
CLUSTER = QPointF(250.0, 130.0)  # centre of the cells, level-0 px
HALF = (200.0, 40.0)  # half width and height of the cluster: long and flat, so a swapped x/y shows
FAR = QPointF(900.0, 900.0)  # > 4 smoothing sigmas (where core's Gaussian stops) from the cluster


def cluster_cells(n: int = 400, seed: int = 1) -> pd.DataFrame:
    """CD3 and CD8_CD3LO cells (both CD3+, the latter also CD8+) in a rectangle around CLUSTER."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(CLUSTER.x() - HALF[0], CLUSTER.x() + HALF[0], n)
    y = rng.uniform(CLUSTER.y() - HALF[1], CLUSTER.y() + HALF[1], n)
    cls = np.where(np.arange(n) % 2 == 0, class_index("CD3"), class_index("CD8_CD3LO"))
    return make_cell_table(x, y, cls, np.full(n, 0.9), np.full(n, 30.0), (MPP, MPP))


def _extent() -> tuple[float, float]:
    return SIZE * MPP, SIZE * MPP


def _rgb(img: QImage, p: QPointF) -> np.ndarray:
    c = QColor(img.pixel(round(p.x()), round(p.y())))
    return np.array([c.red(), c.green(), c.blue()], dtype=float)


def _expected(backdrop: np.ndarray, overlay: DensityOverlay, at: QPointF) -> np.ndarray:
    """The backdrop pixel with core's RGBA of the raster pixel under ``at`` (level-0 px) composited on it."""
    values, downsample = overlay.values, overlay.downsample
    rgba = density_rgba(values, density_ceiling(values), marker_colour(overlay.label), on_dark=True).astype(float)
    px = rgba[int(at.y() / downsample), int(at.x() / downsample)]
    a = px[3] / 255
    return px[:3] * a + backdrop * (1 - a)


def test_the_map_tints_the_cluster_in_the_marker_colour_and_nothing_else(qtbot, view: SlideView) -> None:  # noqa: ANN001
    layer = view.density
    assert layer is not None and not layer.isVisible()  # hidden until asked for
    assert view.cells.zValue() > layer.zValue() > 0  # over the tiles (background), under the cells
    # CD8+ (the CD8_CD3LO half of the cells): its red, unlike CD3+'s green, shows a red/blue swap.
    overlay = density_from_cells(cluster_cells(), _extent(), (MPP, MPP), "CD8+")
    layer.set_overlay(overlay)
    hidden = grab_view(qtbot, view)
    layer.setVisible(True)
    shown = grab_view(qtbot, view)
    c, far = view.mapFromScene(CLUSTER), view.mapFromScene(FAR)
    tint = np.array(QColor(marker_colour("CD8+")).getRgb()[:3], dtype=float)
    before, after = _rgb(hidden, c), _rgb(shown, c)
    assert np.abs(after - before).max() > 40, (before, after)
    assert np.linalg.norm(after - tint) < np.linalg.norm(before - tint) - 40  # towards the CD8+ colour
    # The colour is core's, composited where the raster says (smooth scaling blurs it by a raster
    # pixel): at the centre, beyond the cluster's end and below it (fainter: it is flat).
    for p in (CLUSTER, QPointF(CLUSTER.x() + HALF[0] + 30, CLUSTER.y()), QPointF(CLUSTER.x(), CLUSTER.y() + 120)):
        s = view.mapFromScene(p)
        expected = _expected(_rgb(hidden, s), overlay, p)
        assert np.abs(_rgb(shown, s) - expected).max() <= 8, (p, _rgb(shown, s), expected)
    assert np.array_equal(_rgb(shown, far), _rgb(hidden, far))  # far from the cells: untouched

    # Zoomed in on the cluster's flank, only the exposed part of the raster is drawn, still in place.
    flank = QPointF(CLUSTER.x() + HALF[0] + 30, CLUSTER.y() + HALF[1] + 30)
    view.centerOn(flank)
    view.set_zoom(2.0)
    layer.setVisible(False)
    bare = grab_view(qtbot, view)
    layer.setVisible(True)
    over = grab_view(qtbot, view)
    f = view.mapFromScene(flank)
    expected = _expected(_rgb(bare, f), overlay, flank)
    assert np.abs(_rgb(over, f) - _rgb(bare, f)).max() > 15
    assert np.abs(_rgb(over, f) - expected).max() <= 8, (_rgb(over, f), expected)

    view.fit()
    layer.set_overlay(density_from_cells(cluster_cells(), _extent(), (MPP, MPP), "CD20+"))  # no CD20 cells
    assert layer.vmax is None and layer.pixmap is None
    assert np.array_equal(_rgb(grab_view(qtbot, view), c), before)


def test_h_toggles_the_map_and_the_legend_follows_cells_marker_and_tissue(qtbot, window, slide_path: Path) -> None:  # noqa: ANN001
    assert window.cases.open_slide_file(slide_path, "T-DENSITY")
    panel, layer = window.layers_panel, window.view.density
    assert panel.density_vmax is None and "No CD3+ cells" in panel.density_legend.text()  # no cells yet
    assert [panel.marker_combo.itemText(i) for i in range(panel.marker_combo.count())][0] == "CD3+"

    window.activateWindow()
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_H)  # the shortcut, as the user presses it
    assert window.density_action.isChecked() and panel.density_box.isChecked() and layer.isVisible()
    window.density_action.trigger()
    assert not panel.density_box.isChecked() and not layer.isVisible()
    panel.density_box.setChecked(True)  # the dock's checkbox drives the action and the layer too
    assert window.density_action.isChecked() and layer.isVisible()

    cells = cluster_cells()
    window.session.set_cells(cells, None)
    vmax = density_ceiling(density_from_cells(cells, _extent(), (MPP, MPP), "CD3+").values)
    assert layer.vmax == panel.density_vmax == vmax
    assert panel.density_legend.text() == f"0 – {vmax:,.0f} CD3+ cells/mm² (50 µm smoothing)"
    bar = panel.density_bar.pixmap().toImage()  # 0 (left): the bare background; the top: the CD3+ green
    left, right = QColor(bar.pixel(0, 5)), QColor(bar.pixel(bar.width() - 1, 5))
    assert panel.density_bar.isVisibleTo(panel) and left == BACKGROUND
    assert right.green() > right.red() + 25 and right.green() > right.blue() + 25  # the marker green, lightened

    panel.marker_combo.setCurrentText("CD8+")  # half the cells are CD8_CD3LO
    cd8 = density_ceiling(density_from_cells(cells, _extent(), (MPP, MPP), "CD8+").values)
    assert layer.label == "CD8+" and panel.density_vmax == cd8 < vmax
    panel.marker_combo.setCurrentText("CD20+")
    assert layer.vmax is None and layer.pixmap is None and "No CD20+ cells" in panel.density_legend.text()
    panel.marker_combo.setCurrentText("CD3+")
    assert panel.density_vmax == vmax

    # The shown analysis' tissue mask (8 level-0 px per mask pixel) limits the map: all tissue keeps
    # it, tissue only in the bottom quarter (beyond the smoothing's reach) leaves nothing to show.
    mask = np.ones((SIZE // 8, SIZE // 8), bool)
    window.session.set_cells(cells, None, AnalysisSummary(tissue_mask=encode_mask(mask, 8.0)))
    assert panel.density_vmax == vmax
    mask[: SIZE * 3 // 32] = False
    summary = {"tissue_mask": encode_mask(mask, 8.0)}
    assert analysed_density(cells, _extent(), (MPP, MPP), "CD3+", summary).values.max() == 0
    window.session.set_cells(cells, None, AnalysisSummary.from_dict(summary))
    assert layer.vmax is None and panel.density_vmax is None
    assert "No CD3+ cells in the analysed tissue" in panel.density_legend.text()

    window.session.set_cells(cells.iloc[:0], None)  # no cells: no map
    assert layer.pixmap is None and panel.density_vmax is None
