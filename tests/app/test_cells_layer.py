"""The cell overlay as the user sees it: real SlideView, real slide, pixels read back from a grab.

The overlay picks a style by zoom and crowding (rings around nuclei, discs, square dots, or a
density raster) and stamps sprites from an atlas in one drawPixmapFragments call; these tests
check that each cell lands where its level-0 coordinates map on screen, in its class colour, that
hidden classes vanish, and that the style and the number of cells drawn follow the thresholds.
Slide: 1024² level-0 px at 0.5 µm/px (tests/app/conftest.py); view 400² screen px.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QImage

from app.viewer.cells_layer import CELL_DIAMETER_UM, MAX_POINTS
from app.viewer.slide_view import SlideView
from core.classes import CLASS_COLOURS
from tests.app.conftest import MPP, grab_view


def _rgb(img: QImage, x: float, y: float) -> np.ndarray:
    c = QColor(img.pixel(round(x), round(y)))
    return np.array([c.red(), c.green(), c.blue()])


def _is(img: QImage, x: float, y: float, colour: str, tol: int = 30) -> bool:
    """Whether the pixel at (x, y) is ``colour`` (hex) to within ``tol`` per channel."""
    q = QColor(colour)
    return bool(np.abs(_rgb(img, x, y) - [q.red(), q.green(), q.blue()]).max() <= tol)


def _show(view: SlideView, x: np.ndarray, y: np.ndarray, cls: np.ndarray, centre: QPointF, zoom: float) -> None:
    view.cells.set_cells(x, y, cls)
    view.centerOn(centre)
    view.set_zoom(zoom)
    assert view.zoom == pytest.approx(zoom)


def test_ring_around_the_nucleus_at_high_zoom_and_hidden_class(qtbot, view: SlideView) -> None:  # noqa: ANN001
    cls, colour = 4, CLASS_COLOURS[4]
    cell = QPointF(500.5, 520.5)
    _show(view, np.array([cell.x()]), np.array([cell.y()]), np.array([cls]), cell, 4.0)
    img = grab_view(qtbot, view)
    assert view.cells.last_style == "ring" and view.cells.last_drawn == 1
    c = view.mapFromScene(cell)
    radius = CELL_DIAMETER_UM / MPP * view.zoom / 2  # the nucleus's radius on screen (28 px)

    def ring_hits(image: QImage) -> int:
        """Of 16 directions, how many find the class colour within 3 px inside the nucleus's edge."""
        hits = 0
        for k in range(16):
            a = 2 * math.pi * k / 16
            if any(_is(image, c.x() + r * math.cos(a), c.y() + r * math.sin(a), colour)
                   for r in np.arange(radius - 3, radius + 0.5, 0.5)):
                hits += 1
        return hits

    assert ring_hits(img) == 16  # a closed ring, centred on the cell, the size of the nucleus
    inside = [(c.x() + r * math.cos(a), c.y() + r * math.sin(a)) for r in (0, radius / 2) for a in (0, 2, 4)]
    outside = [(c.x() + (radius + 5) * math.cos(a), c.y() + (radius + 5) * math.sin(a)) for a in (0, 2, 4)]
    assert not any(_is(img, x, y, colour) for x, y in inside + outside)  # the nucleus stays visible

    view.cells.set_class_visible(cls, False)
    hidden = grab_view(qtbot, view)
    assert view.cells.last_drawn == 0 and ring_hits(hidden) == 0
    view.cells.set_class_visible(cls, True)
    assert ring_hits(grab_view(qtbot, view)) == 16


def test_discs_carry_each_cells_class_colour(qtbot, view: SlideView) -> None:  # noqa: ANN001
    cells = {1: QPointF(400.0, 400.0), 2: QPointF(600.0, 450.0), 3: QPointF(450.0, 620.0)}
    x = np.array([p.x() for p in cells.values()])
    y = np.array([p.y() for p in cells.values()])
    _show(view, x, y, np.array(list(cells)), QPointF(500, 500), 0.5)
    img = grab_view(qtbot, view)
    assert view.cells.last_style == "disc" and view.cells.last_drawn == 3
    for cls, p in cells.items():
        s = view.mapFromScene(p)
        assert _is(img, s.x(), s.y(), CLASS_COLOURS[cls], tol=12), (cls, _rgb(img, s.x(), s.y()))
        others = [CLASS_COLOURS[o] for o in cells if o != cls]
        assert not any(_is(img, s.x(), s.y(), o) for o in others)
        assert not _is(img, s.x() + 8, s.y(), CLASS_COLOURS[cls])  # a 7 px disc, not a blob


def test_crowded_view_draws_dots_for_the_visible_cells_only(qtbot, view: SlideView) -> None:  # noqa: ANN001
    rng = np.random.default_rng(3)
    n_in, n_out = 7000, 3000  # 4/5 of the block is drawn: 5600 > 5000, dots (rings would overlap)
    # A block well inside the visible square [312, 712]², and a block far outside it.
    x = np.concatenate([rng.uniform(362, 662, n_in), rng.uniform(0, 250, n_out), [330.0]])
    y = np.concatenate([rng.uniform(362, 662, n_in), rng.uniform(0, 1024, n_out), [330.0]])
    cls = np.concatenate([rng.integers(0, 5, n_in + n_out), [3]])  # class 0 ("other") is never drawn
    _show(view, x, y, cls, QPointF(512, 512), 1.0)
    visible = view.visible_rect()
    assert visible.contains(QRectF(325, 325, 345, 345)) and not visible.intersects(QRectF(0, 0, 251, 1024))
    in_view = np.zeros(len(x), bool)
    in_view[:n_in] = True
    in_view[-1] = True
    img = grab_view(qtbot, view)
    assert view.cells.last_style == "dot"
    assert view.cells.last_drawn == int((in_view & (cls != 0)).sum())
    # A lone cell at the top left (clear of the scale bar and the navigator): its dot in its colour.
    lone = view.mapFromScene(QPointF(330.0, 330.0))
    assert _is(img, lone.x(), lone.y(), CLASS_COLOURS[3], tol=12)

    view.cells.set_class_visible(2, False)
    img = grab_view(qtbot, view)
    assert view.cells.last_drawn == int((in_view & np.isin(cls, [1, 3, 4])).sum())
    view.cells.set_class_visible(3, False)
    img = grab_view(qtbot, view)
    assert not _is(img, lone.x(), lone.y(), CLASS_COLOURS[3])


def test_too_many_cells_zoomed_out_become_a_density_raster(qtbot, view: SlideView) -> None:  # noqa: ANN001
    rng = np.random.default_rng(5)
    n = MAX_POINTS + 10_000
    x, y = rng.uniform(0, 1024, n), rng.uniform(0, 1024, n)
    _show(view, x, y, np.full(n, 3), QPointF(512, 512), view.fit_zoom())
    shown = grab_view(qtbot, view)
    assert view.cells.last_style == "density" and view.cells.last_drawn == 0
    view.cells.set_class_visible(3, False)
    backdrop = grab_view(qtbot, view)
    # ~85 cells per 32² px bin: the raster is at its full opacity (230/255) in the class colour.
    q = QColor(CLASS_COLOURS[3])
    colour = np.array([q.red(), q.green(), q.blue()])
    for sx, sy in ((100, 100), (200, 200), (120, 250), (250, 320)):  # clear of the navigator, scale bar
        expected = (230 * colour + 25 * _rgb(backdrop, sx, sy)) / 255
        assert np.abs(_rgb(shown, sx, sy) - expected).max() <= 8, (sx, sy, _rgb(shown, sx, sy), expected)

    view.cells.set_class_visible(3, True)
    few = 20_000  # the same zoom with fewer cells than the limit: cells, not a raster
    view.cells.set_cells(x[:few], y[:few], np.full(few, 3))
    grab_view(qtbot, view)
    assert view.cells.last_style == "dot" and view.cells.last_drawn == few


def test_cells_added_in_blocks_match_cells_set_at_once() -> None:
    """An analysis adds cells block by block; the index must answer exactly as if built at once."""
    from app.viewer.cells_layer import MAX_MERGE, CellIndex

    rng = np.random.default_rng(4)
    size = (20_000, 12_000)
    n = 300_000
    x, y, cls = rng.uniform(0, size[0], n), rng.uniform(0, size[1], n), rng.integers(0, 5, n)
    whole = CellIndex(x, y, cls, size)
    blocks = CellIndex(np.empty(0), np.empty(0), np.empty(0, int), size)
    for lo in range(0, n, 1500):  # 200 blocks, as an analysis delivers them
        blocks.add(x[lo:lo + 1500], y[lo:lo + 1500], cls[lo:lo + 1500])
    assert len(blocks) == len(whole) == n
    # Few segments to visit: merged up to MAX_MERGE, then one per MAX_MERGE cells plus a short tail.
    assert len(blocks.segments) <= n // MAX_MERGE + 2 * int(np.log2(MAX_MERGE / 1500)) + 2
    for rect in (QRectF(0, 0, 600, 400), QRectF(5123.5, 777.2, 3000, 2500), QRectF(-50, -50, 30_000, 20_000)):
        a, b = whole.select(rect), blocks.select(rect)
        key = lambda t: np.lexsort((t[2], t[1], t[0]))  # noqa: E731 (order within buckets differs)
        assert all(np.array_equal(u[key(a)], v[key(b)]) for u, v in zip(a, b, strict=True))
        assert blocks.count_in(rect) == whole.count_in(rect) == len(a[0])
    assert np.array_equal(blocks.counts, whole.counts) and blocks.counts.sum() == n
    img_a, img_b = whole.density_image({1, 2, 3}), blocks.density_image({1, 2, 3})
    assert img_a == img_b


def test_streamed_cells_refresh_the_zoomed_out_raster_at_most_once_a_second(qtbot, view: SlideView) -> None:  # noqa: ANN001
    """Blocks arriving during an analysis mark the raster stale; it is remade within about a second."""
    from app.viewer.cells_layer import DENSITY_REFRESH_S

    rng = np.random.default_rng(6)
    n = MAX_POINTS + 10_000  # left half only: the right half stays empty
    _show(view, rng.uniform(0, 500, n), rng.uniform(0, 1024, n), np.full(n, 3), QPointF(512, 512), view.fit_zoom())
    before = grab_view(qtbot, view)
    assert view.cells.last_style == "density"
    spot = view.mapFromScene(QPointF(800, 512))  # an empty part of the slide
    block = 2000  # a dense block of CD8_CD3HI cells over that spot
    view.cells.add_cells(rng.uniform(780, 820, block), rng.uniform(490, 530, block), np.full(block, 4))
    soon = grab_view(qtbot, view)
    assert np.array_equal(_rgb(soon, spot.x(), spot.y()), _rgb(before, spot.x(), spot.y()))  # not remade yet
    qtbot.wait(int(DENSITY_REFRESH_S * 1000) + 300)  # the item's timer repaints when the raster is due
    later = view.viewport().grab().toImage()
    q = QColor(CLASS_COLOURS[4])
    assert np.abs(_rgb(later, spot.x(), spot.y()) - [q.red(), q.green(), q.blue()]).max() < 40
    assert view.cells.count == n + block


def test_a_card_with_another_class_order_draws_in_its_own_colours(qtbot, view: SlideView) -> None:  # noqa: ANN001
    """Class index 1 of a card listing CD20 first is a CD20 cell: drawn in that card's CD20 colour,
    and the Layers dock's boxes follow the same table."""
    from app.docks.layers_dock import LayersPanel
    from core.classes import DEFAULT_CLASS_TABLE, ClassTable

    table = ClassTable(("other", "CD20", "CD8_CD3HI", "CD3", "CD8_CD3LO"),
                       ("#808080", "#00ffff", "#d62728", "#2ca02c", "#ff7f0e"))
    cell = QPointF(400.0, 400.0)
    view.cells.set_class_table(table)
    _show(view, np.array([cell.x()]), np.array([cell.y()]), np.array([1]), QPointF(500, 500), 0.5)
    s = view.mapFromScene(cell)
    img = grab_view(qtbot, view)
    assert _is(img, s.x(), s.y(), "#00ffff", tol=12), _rgb(img, s.x(), s.y())
    assert not _is(img, s.x(), s.y(), CLASS_COLOURS[1])  # not the paper's index-1 colour
    view.cells.set_class_table(DEFAULT_CLASS_TABLE)  # cells already shown are recoloured
    img = grab_view(qtbot, view)
    assert _is(img, s.x(), s.y(), CLASS_COLOURS[1], tol=12)

    panel = LayersPanel()
    qtbot.addWidget(panel)
    panel.set_class_table(table)
    panel.set_counts({1: 7})
    assert panel.class_boxes[1].text().startswith("CD20+") and "(7)" in panel.class_boxes[1].text()
