"""Drawing and editing tools of the slide view (pan, select/move vertices, polygon, rectangle, brush).

Tools see scene coordinates (level-0 pixels) and report finished shapes in level-0 pixels as
shapely geometry; the view turns them into µm and the main window into undoable region edits.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsPathItem
from shapely.geometry import LineString, Point, Polygon, box

if TYPE_CHECKING:
    from app.viewer.slide_view import SlideView


class ToolMode(StrEnum):
    """The active tool; the value is the QuPath-like shortcut letter's tool name."""

    MOVE = "move"
    SELECT = "select"
    POLYGON = "polygon"
    RECTANGLE = "rectangle"
    BRUSH = "brush"


HANDLE_PX = 7.0  # screen px: how near a click must be to grab a vertex


class Tool:
    """Base tool: does nothing; subclasses override the mouse hooks (scene coordinates)."""

    def __init__(self, view: SlideView) -> None:
        self.view = view
        self.preview: QGraphicsPathItem | None = None

    def press(self, pos: QPointF) -> None: ...
    def move(self, pos: QPointF, buttons: Qt.MouseButton) -> None: ...
    def release(self, pos: QPointF) -> None: ...
    def double_click(self, pos: QPointF) -> None: ...

    def finish(self) -> None:
        """Complete the shape in progress (Enter)."""

    def cancel(self) -> None:
        """Abandon the shape in progress (Escape)."""
        self._clear_preview()

    def _show_preview(self, path: QPainterPath) -> None:
        if self.preview is None:
            self.preview = QGraphicsPathItem()
            pen = QPen(QColor("#00e5ff"), 2.0)
            pen.setCosmetic(True)
            self.preview.setPen(pen)
            colour = QColor("#00e5ff")
            colour.setAlpha(40)
            self.preview.setBrush(colour)
            self.preview.setZValue(50)
            self.view.scene().addItem(self.preview)
        self.preview.setPath(path)

    def _clear_preview(self) -> None:
        if self.preview is not None:
            self.view.scene().removeItem(self.preview)
            self.preview = None


class PolygonTool(Tool):
    """Click to add vertices; double-click or Enter closes; Escape cancels."""

    def __init__(self, view: SlideView) -> None:
        super().__init__(view)
        self.points: list[QPointF] = []
        self._hover: QPointF | None = None

    def press(self, pos: QPointF) -> None:
        self.points.append(pos)
        self._redraw()

    def move(self, pos: QPointF, buttons: Qt.MouseButton) -> None:
        self._hover = pos
        if self.points:
            self._redraw()

    def double_click(self, pos: QPointF) -> None:
        self.finish()

    def finish(self) -> None:
        pts = [(p.x(), p.y()) for p in self.points]
        # A double-click also delivered a press at the same place: drop repeated vertices.
        dedup = [pt for i, pt in enumerate(pts) if i == 0 or pt != pts[i - 1]]
        self.points, self._hover = [], None
        self._clear_preview()
        if len(dedup) >= 3:
            self.view.emit_drawn(Polygon(dedup))

    def cancel(self) -> None:
        self.points, self._hover = [], None
        super().cancel()

    def _redraw(self) -> None:
        pts = self.points + ([self._hover] if self._hover is not None else [])
        path = QPainterPath()
        path.addPolygon(QPolygonF(pts))
        self._show_preview(path)


class RectangleTool(Tool):
    """Press, drag, release."""

    def __init__(self, view: SlideView) -> None:
        super().__init__(view)
        self.start: QPointF | None = None

    def press(self, pos: QPointF) -> None:
        self.start = pos

    def cancel(self) -> None:
        self.start = None  # else the release after Escape would still add the rectangle
        super().cancel()

    def move(self, pos: QPointF, buttons: Qt.MouseButton) -> None:
        if self.start is not None:
            path = QPainterPath()
            path.addRect(QRectF(self.start, pos).normalized())
            self._show_preview(path)

    def release(self, pos: QPointF) -> None:
        if self.start is None:
            return
        r = QRectF(self.start, pos).normalized()
        self.start = None
        self._clear_preview()
        if r.width() > 2 and r.height() > 2:
            self.view.emit_drawn(box(r.left(), r.top(), r.right(), r.bottom()))


class BrushTool(Tool):
    """Paint with a round brush (radius in screen pixels, so it feels the same at every zoom)."""

    radius_screen_px = 18.0

    def __init__(self, view: SlideView) -> None:
        super().__init__(view)
        self.trail: list[tuple[float, float]] = []

    def _radius(self) -> float:
        return self.radius_screen_px / max(self.view.zoom, 1e-6)

    def press(self, pos: QPointF) -> None:
        self.trail = [(pos.x(), pos.y())]
        self._redraw()

    def cancel(self) -> None:
        self.trail = []  # else the release after Escape would still add the stroke
        super().cancel()

    def move(self, pos: QPointF, buttons: Qt.MouseButton) -> None:
        if self.trail and buttons & Qt.MouseButton.LeftButton:
            self.trail.append((pos.x(), pos.y()))
            self._redraw()

    def release(self, pos: QPointF) -> None:
        if not self.trail:
            return
        shape = self._shape()
        self.trail = []
        self._clear_preview()
        self.view.emit_drawn(shape)

    def _shape(self) -> Polygon:
        r = self._radius()
        if len(self.trail) == 1:
            return Point(self.trail[0]).buffer(r)
        return LineString(self.trail).buffer(r)

    def _redraw(self) -> None:
        shape = self._shape()
        path = QPainterPath()
        polys = getattr(shape, "geoms", [shape])
        for p in polys:
            path.addPolygon(QPolygonF([QPointF(x, y) for x, y in p.exterior.coords]))
        self._show_preview(path)


Coords = list[tuple[float, float]]


class SelectTool(Tool):
    """Click a region to select it; drag one of its outline's vertices to move it.

    The region's holes are carried through the drag unchanged: rebuilding the polygon from the
    dragged outline alone silently filled them (a tumour ring around necrosis became solid).
    """

    def __init__(self, view: SlideView) -> None:
        super().__init__(view)
        self._drag: tuple[str, int, Coords, list[Coords]] | None = None  # id, vertex, outline, holes

    def press(self, pos: QPointF) -> None:
        hit = None if self.view.read_only else self._vertex_at(pos)
        if hit is not None:
            self._drag = hit
            return
        self.view.select_region(self.view.regions.region_at(pos.x(), pos.y()) if self.view.regions else None)

    def cancel(self) -> None:
        self._drag = None  # else the release after Escape would still move the vertex
        super().cancel()

    def move(self, pos: QPointF, buttons: Qt.MouseButton) -> None:
        if self._drag is None:
            return
        _, i, coords, _holes = self._drag
        coords[i] = (pos.x(), pos.y())
        if i == 0:
            coords[-1] = coords[0]
        path = QPainterPath()
        path.addPolygon(QPolygonF([QPointF(x, y) for x, y in coords]))
        self._show_preview(path)

    def release(self, pos: QPointF) -> None:
        if self._drag is None:
            return
        rid, _, coords, holes = self._drag
        self._drag = None
        self._clear_preview()
        self.view.emit_edited(rid, Polygon(coords, holes))

    def _vertex_at(self, pos: QPointF) -> tuple[str, int, Coords, list[Coords]] | None:
        rid = self.view.regions.selected_id if self.view.regions else None
        geom = self.view.selected_geometry_px()
        if rid is None or not isinstance(geom, Polygon):
            return None
        coords = list(geom.exterior.coords)
        holes = [list(ring.coords) for ring in geom.interiors]
        tol = HANDLE_PX / max(self.view.zoom, 1e-6)
        for i, (x, y) in enumerate(coords[:-1]):
            if abs(x - pos.x()) <= tol and abs(y - pos.y()) <= tol:
                return rid, i, coords, holes
        return None


TOOLS: dict[ToolMode, type[Tool]] = {
    ToolMode.MOVE: Tool,
    ToolMode.SELECT: SelectTool,
    ToolMode.POLYGON: PolygonTool,
    ToolMode.RECTANGLE: RectangleTool,
    ToolMode.BRUSH: BrushTool,
}
