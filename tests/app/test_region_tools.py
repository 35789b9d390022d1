"""The drawing and editing tools, driven with real mouse events on the real window's slide view.

Every test goes press → move → release on the view's viewport (as a user's mouse would), then
reads the result where it matters: the case's RegionSet (in slide µm), the case store (autosave)
and the undo stack. Expected areas are worked out from the geometry of the gesture, not from the
tools' code. The test slide is 1024² level-0 px at 0.5 µm/px (tests/app/conftest.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest
import shapely.wkt
from PySide6.QtCore import QPoint, QPointF, Qt
from shapely.geometry import Point, Polygon

from app.main_window import MainWindow
from app.viewer import ToolMode
from app.viewer.tools import BrushTool
from tests.app.conftest import MPP

UM2_PER_PX = MPP * MPP


@pytest.fixture
def window(window: MainWindow, slide_path: Path) -> MainWindow:
    """The main window (tests/app/conftest.py) with the test slide open as a new case."""
    assert window.cases.open_slide_file(slide_path, "T-TOOLS")
    return window


def _vp(window: MainWindow, x_px: float, y_px: float) -> QPoint:
    """The viewport point over level-0 pixel (x, y)."""
    return window.view.mapFromScene(QPointF(x_px, y_px))


def _drag(qtbot, window: MainWindow, path: Sequence[tuple[float, float]]) -> None:  # noqa: ANN001
    """Press the left button at path[0], move through the other points with it held, release at the last."""
    vp = window.view.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=_vp(window, *path[0]))
    for x, y in path[1:]:
        qtbot.mouseMove(vp, _vp(window, x, y))  # QTest keeps the pressed button in the event's buttons()
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=_vp(window, *path[-1]))


def _stored(window: MainWindow) -> dict[str, Polygon]:
    """The case's regions as saved in the store: id → geometry (µm)."""
    s = window.session
    return {r.id: shapely.wkt.loads(r.geometry_wkt) for r in s.store.load_regions(s.case.id)}


def _only_region(window: MainWindow):  # noqa: ANN202 (core.regions.Region)
    regions = list(window.session.regions)
    assert len(regions) == 1, regions
    return regions[0]


def _draw_polygon(qtbot, window: MainWindow, pts: Sequence[tuple[float, float]]) -> None:  # noqa: ANN001
    window.tool_actions[ToolMode.POLYGON].trigger()
    vp = window.view.viewport()
    for x, y in pts:
        qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=_vp(window, x, y))
    qtbot.mouseDClick(vp, Qt.MouseButton.LeftButton, pos=_vp(window, *pts[-1]))


def _select_at(qtbot, window: MainWindow, x: float, y: float) -> None:  # noqa: ANN001
    window.tool_actions[ToolMode.SELECT].trigger()
    qtbot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=_vp(window, x, y))


def test_brush_stroke_is_the_buffered_line(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    window.tool_actions[ToolMode.BRUSH].trigger()
    view = window.view
    assert view.tool_mode is ToolMode.BRUSH
    stroke = [(300.0, 500.0), (400.0, 500.0), (500.0, 500.0), (600.0, 500.0), (700.0, 500.0)]
    r = BrushTool.radius_screen_px / view.zoom  # level-0 px: the brush is a fixed size on screen
    assert 300 - r > 0  # the whole stroke lies on the slide (a region is clipped to it)
    _drag(qtbot, window, stroke)

    region = _only_region(window)
    length = stroke[-1][0] - stroke[0][0]
    # A round-capped band: a rectangle 2r × L plus two half discs. Were the moves made without the
    # button held, only the disc at the press point (π r²) would be painted.
    expected = (2 * r * length + math.pi * r * r) * UM2_PER_PX
    assert region.area_um2 == pytest.approx(expected, rel=0.03)
    x0, y0, x1, y1 = region.geometry.bounds
    tol = 3 / view.zoom * MPP  # a few screen px of mouse-position rounding, in µm
    assert (x0, y0) == pytest.approx(((300 - r) * MPP, (500 - r) * MPP), abs=tol)
    assert (x1, y1) == pytest.approx(((700 + r) * MPP, (500 + r) * MPP), abs=tol)
    assert region.geometry.contains(Point(500 * MPP, 500 * MPP))

    stored = _stored(window)
    assert list(stored) == [region.id]
    assert stored[region.id].area == pytest.approx(region.area_um2, rel=1e-6)  # autosaved as shown
    window.regions.undo.undo()
    assert len(window.session.regions) == 0 and _stored(window) == {}
    assert view.tool.preview is None  # no leftover outline of the stroke in the scene


def test_rectangle_drag_is_width_times_height(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    window.tool_actions[ToolMode.RECTANGLE].trigger()
    _drag(qtbot, window, [(150.0, 200.0), (500.0, 400.0), (850.0, 600.0)])
    region = _only_region(window)
    assert region.area_um2 == pytest.approx(700 * 400 * UM2_PER_PX, rel=0.02)
    tol = 2 / window.view.zoom * MPP
    assert region.geometry.bounds == pytest.approx((150 * MPP, 200 * MPP, 850 * MPP, 600 * MPP), abs=tol)
    assert list(_stored(window)) == [region.id]


def test_rectangle_dragged_up_and_left_is_the_same_box(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    window.tool_actions[ToolMode.RECTANGLE].trigger()
    _drag(qtbot, window, [(850.0, 600.0), (500.0, 400.0), (150.0, 200.0)])
    assert _only_region(window).area_um2 == pytest.approx(700 * 400 * UM2_PER_PX, rel=0.02)


QUAD = [(200.0, 200.0), (800.0, 250.0), (750.0, 800.0), (250.0, 750.0)]


def _vertices_px(geometry: Polygon) -> list[tuple[float, float]]:
    return [(x / MPP, y / MPP) for x, y in list(geometry.exterior.coords)[:-1]]


def _nearest(vertices: Sequence[tuple[float, float]], x: float, y: float) -> float:
    return min(math.hypot(vx - x, vy - y) for vx, vy in vertices)


@pytest.mark.parametrize("corner", [0, 2], ids=["first-vertex", "middle-vertex"])
def test_drag_a_vertex_undo_redo(qtbot, window: MainWindow, corner: int) -> None:  # noqa: ANN001
    """Vertex 0 is also the ring's closing point: moving it must move the ring's last point too."""
    _draw_polygon(qtbot, window, QUAD)
    region = _only_region(window)
    original = region.geometry
    _select_at(qtbot, window, 500, 500)
    assert window.view.regions.selected_id == region.id

    # Grab the vertex where the region really has it (the clicks were rounded to screen px).
    vx, vy = min(_vertices_px(original), key=lambda v: math.hypot(v[0] - QUAD[corner][0], v[1] - QUAD[corner][1]))
    target = (vx + 120.0, vy + 90.0)
    steps = [(vx + 120.0 * t, vy + 90.0 * t) for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    depth = window.regions.undo.count()
    _drag(qtbot, window, steps)

    edited = _only_region(window)
    assert edited.id == region.id
    moved = _vertices_px(edited.geometry)
    tol = 2 / window.view.zoom  # level-0 px: one or two screen px of rounding
    assert len(moved) == 4
    assert _nearest(moved, *target) < tol
    assert _nearest(moved, vx, vy) > 100  # the old corner is gone, not duplicated
    others = [v for v in _vertices_px(original) if (v[0], v[1]) != (vx, vy)]
    assert all(_nearest(moved, *v) < 1e-6 for v in others)  # the other corners stay put
    expected = Polygon([target if (x, y) == (vx, vy) else (x, y) for x, y in _vertices_px(original)])
    assert edited.area_um2 == pytest.approx(expected.area * UM2_PER_PX, rel=0.01)
    assert abs(edited.area_um2 - original.area) > 1000  # the change is real, not rounding
    assert _stored(window)[region.id].equals(edited.geometry)  # autosaved
    assert window.regions.undo.count() == depth + 1

    window.regions.undo.undo()
    assert _only_region(window).geometry.equals(original)
    assert _stored(window)[region.id].equals(original)
    window.regions.undo.redo()
    assert _only_region(window).geometry.equals(edited.geometry)
    assert _stored(window)[region.id].equals(edited.geometry)


def test_press_away_from_vertices_does_not_edit(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    _draw_polygon(qtbot, window, QUAD)
    region = _only_region(window)
    _select_at(qtbot, window, 500, 500)
    assert window.view.regions.selected_id == region.id
    depth = window.regions.undo.count()
    _drag(qtbot, window, [(480.0, 520.0), (560.0, 600.0), (640.0, 680.0)])  # inside, far from every corner
    assert _only_region(window).geometry.equals(region.geometry)
    assert _stored(window)[region.id].equals(region.geometry)
    assert window.regions.undo.count() == depth
    assert window.view.regions.selected_id == region.id


def test_delete_selected_region_and_undo(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    window.tool_actions[ToolMode.RECTANGLE].trigger()
    _drag(qtbot, window, [(150.0, 200.0), (850.0, 600.0)])
    window.tool_actions[ToolMode.RECTANGLE].trigger()
    _drag(qtbot, window, [(300.0, 700.0), (600.0, 900.0)])
    first, second = list(window.session.regions)

    window.delete_action.trigger()  # nothing selected: nothing happens
    assert len(window.session.regions) == 2

    _select_at(qtbot, window, 700, 300)
    assert window.view.regions.selected_id == first.id
    window.delete_action.trigger()
    assert [r.id for r in window.session.regions] == [second.id]
    assert list(_stored(window)) == [second.id]
    assert first.id not in window.view.regions.items
    assert window.view.regions.selected_id is None

    window.regions.undo.undo()
    assert {r.id for r in window.session.regions} == {first.id, second.id}
    assert window.session.regions[first.id].geometry.equals(first.geometry)
    assert set(_stored(window)) == {first.id, second.id}
    assert window.layers_panel.region_list.count() == 2


def test_dragging_an_outer_vertex_keeps_the_holes(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    """A region with a hole (e.g. a tumour ring around necrosis, imported from QuPath) keeps it."""
    outer = [(200.0, 200.0), (800.0, 200.0), (800.0, 800.0), (200.0, 800.0)]
    hole = [(400.0, 400.0), (600.0, 400.0), (600.0, 600.0), (400.0, 600.0)]
    ring = Polygon([(x * MPP, y * MPP) for x, y in outer], [[(x * MPP, y * MPP) for x, y in hole]])
    window.regions.on_region_drawn(ring)  # the slot the view's region_drawn signal calls
    region = _only_region(window)
    assert len(region.geometry.interiors) == 1
    _select_at(qtbot, window, 300, 300)  # on the ring itself, not in the hole
    assert window.view.regions.selected_id == region.id
    _drag(qtbot, window, [(800.0, 800.0), (850.0, 850.0), (900.0, 900.0)])
    edited = _only_region(window)
    assert _nearest(_vertices_px(edited.geometry), 900, 900) < 2 / window.view.zoom
    assert len(edited.geometry.interiors) == 1
    assert edited.geometry.interiors[0].equals(region.geometry.interiors[0])
    expected = Polygon([(200, 200), (800, 200), (900, 900), (200, 800)]).area - 200 * 200
    assert edited.area_um2 == pytest.approx(expected * UM2_PER_PX, rel=0.01)


def test_escape_abandons_a_vertex_drag(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    window.tool_actions[ToolMode.RECTANGLE].trigger()
    _drag(qtbot, window, [(150.0, 200.0), (850.0, 600.0)])
    region = _only_region(window)
    _select_at(qtbot, window, 500, 400)
    x, y = min(_vertices_px(region.geometry), key=lambda v: math.hypot(v[0] - 850, v[1] - 600))
    _drag_with_escape(qtbot, window, (x, y), (x + 100, y + 150))
    assert _only_region(window).geometry.equals(region.geometry)  # what the user saw vanish is not applied
    assert _stored(window)[region.id].equals(region.geometry)


@pytest.mark.parametrize("mode", [ToolMode.RECTANGLE, ToolMode.BRUSH])
def test_escape_abandons_a_shape_being_dragged(qtbot, window: MainWindow, mode: ToolMode) -> None:  # noqa: ANN001
    window.tool_actions[mode].trigger()
    _drag_with_escape(qtbot, window, (200.0, 200.0), (700.0, 600.0))
    assert len(window.session.regions) == 0 and _stored(window) == {}
    _drag(qtbot, window, [(200.0, 200.0), (700.0, 600.0)])  # the tool still works afterwards
    assert len(window.session.regions) == 1


def _drag_with_escape(qtbot, window: MainWindow, start: tuple[float, float], end: tuple[float, float]) -> None:  # noqa: ANN001
    """Press, drag (the preview shows), press Escape (the preview goes), then release."""
    vp = window.view.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=_vp(window, *start))
    qtbot.mouseMove(vp, _vp(window, *end))
    assert window.view.tool.preview is not None
    qtbot.keyClick(window.view, Qt.Key.Key_Escape)
    assert window.view.tool.preview is None
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=_vp(window, *end))
