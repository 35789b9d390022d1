"""SlideView: a QGraphicsView over a slide's level-0 pixel coordinates.

The background is painted from tiles of the pyramid level that suits the zoom (loaded in a thread
pool, see :mod:`app.viewer.tiles`); where a tile is still missing, coarser tiles and finally the
overview are drawn underneath, so the view is never blank. The density map, cells and regions are
scene items on top, in that order. Scene units are level-0 pixels; the view's scale is screen
pixels per level-0 pixel (zoom).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRect, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QKeyEvent, QMouseEvent, QPainter, QPen, QPixmap, QWheelEvent
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QWidget
from shapely import affinity
from shapely.geometry.base import BaseGeometry

from app.viewer.cells_layer import CellOverlay
from app.viewer.density_map_layer import DensityMapLayer
from app.viewer.display import ROLE_COLOURS, DisplaySettings, compose_rgb32, default_display
from app.viewer.navigator import OverviewNavigator
from app.viewer.regions_layer import RegionOverlay
from app.viewer.tiles import TILE, TileCache, TileKey, TileLoader, array_to_qimage, draw_part
from app.viewer.tools import TOOLS, Tool, ToolMode

if TYPE_CHECKING:
    import numpy as np
    from PySide6.QtGui import QResizeEvent

    from core.slides import Slide

BACKGROUND = QColor("#15171a")
MAX_ZOOM = 16.0  # screen px per level-0 px


def nice_length(target: float) -> float:
    """The 1-2-5 number nearest below ``target`` (for scale bars)."""
    if target <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * exp <= target:
            return m * exp
    return exp


class SlideView(QGraphicsView):
    """Shows one slide with tiles, cells and regions; emits what the user points at and draws."""

    cursor_moved = Signal(float, float)      # level-0 px
    view_changed = Signal()
    region_drawn = Signal(object)            # shapely geometry in slide µm
    region_edited = Signal(str, object)      # region id, new geometry in slide µm
    region_selected = Signal(object)         # region id or None
    tile_failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setBackgroundBrush(BACKGROUND)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMouseTracking(True)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.slide: Slide | None = None
        self.display = DisplaySettings()
        self.cache = TileCache()
        self.loader: TileLoader | None = None
        self.overview: QPixmap | None = None
        self.overview_array: np.ndarray | None = None
        self.cells: CellOverlay | None = None
        self.density: DensityMapLayer | None = None
        self.regions: RegionOverlay | None = None
        self.mpp: tuple[float, float] | None = None
        self._geoms_px: dict[str, BaseGeometry] = {}
        self.navigator = OverviewNavigator(self)
        self._refresh = QTimer(self)
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(0)
        self._refresh.timeout.connect(self._on_view_moved)
        self.tool: Tool = Tool(self)
        self.tool_mode = ToolMode.MOVE
        self.read_only = False  # a signed case: the select tool selects but never drags a vertex
        self.set_tool(ToolMode.MOVE)

    # --- slide ------------------------------------------------------------------------------------
    def open_slide(self, slide: Slide) -> None:
        """Show ``slide`` (a core.slides.Slide), fitted to the window, with automatic contrast."""
        self.close_slide()
        self.slide = slide
        self.mpp = slide.mpp
        w, h = slide.dimensions
        self.scene().setSceneRect(QRectF(0, 0, w, h))
        overview = slide.thumbnail(max_size=1024)
        self.overview_array = overview
        names = list(slide.channel_names)
        roles = [""] * len(names)
        for role in ROLE_COLOURS:
            try:
                roles[slide.channel_index(role)] = role
            except Exception:  # no channel has this role
                continue
        self.display = default_display(names, roles, overview)
        self.loader = TileLoader(slide, self.display)
        self.loader.signals.loaded.connect(self._on_tile_loaded)
        self.loader.signals.failed.connect(self._on_tile_failed)
        self._render_overview()
        self.cells = CellOverlay((w, h), self.mpp[0] if self.mpp else None)
        self.scene().addItem(self.cells)
        self.density = DensityMapLayer((w, h))
        self.scene().addItem(self.density)
        self.regions = RegionOverlay(self.scene(), self.mpp or (1.0, 1.0))
        self.fit()

    def close_slide(self) -> None:
        if self.loader is not None:
            self.loader.shutdown()
        self.loader = None
        self.cache.clear()
        self.scene().clear()
        self.cells = None
        self.density = None
        self.regions = None
        self.slide = None
        self.overview = None
        self._geoms_px = {}

    def set_display(self, display: DisplaySettings) -> None:
        """Apply new channel colours/contrast/visibility; tiles refresh in the background."""
        self.display = display
        if self.loader is not None:
            self.loader.set_display(display)
        self._render_overview()
        self._refresh.start()
        self.viewport().update()

    def _render_overview(self) -> None:
        if self.overview_array is None:
            return
        self.overview = QPixmap.fromImage(array_to_qimage(compose_rgb32(self.overview_array, self.display)))
        self.navigator.set_overview(self.overview)

    # --- geometry ----------------------------------------------------------------------------------
    @property
    def zoom(self) -> float:
        """Screen pixels per level-0 pixel."""
        return self.transform().m11()

    def visible_rect(self) -> QRectF:
        """The part of the slide in view, level-0 px."""
        return self.mapToScene(self.viewport().rect()).boundingRect()

    def fit(self) -> None:
        """Show the whole slide."""
        if self.slide is not None:
            self.fitInView(self.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
            self._refresh.start()

    def fit_zoom(self) -> float:
        r = self.sceneRect()
        vp = self.viewport().rect()
        return min(vp.width() / max(r.width(), 1), vp.height() / max(r.height(), 1))

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``zoom`` screen px per level-0 px, keeping ``anchor`` (scene point) fixed on screen."""
        zoom = min(MAX_ZOOM, max(self.fit_zoom() * 0.5, zoom))
        factor = zoom / self.zoom
        if anchor is None:
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
            self.scale(factor, factor)
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        else:
            before = self.mapFromScene(anchor)
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
            self.scale(factor, factor)
            after = self.mapFromScene(anchor)
            d = after - before
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + d.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() + d.y())
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self._refresh.start()

    def center_on_px(self, x: float, y: float) -> None:
        self.centerOn(QPointF(x, y))
        self._refresh.start()

    def level_for_zoom(self) -> int:
        if self.slide is None:
            return 0
        return self.slide.best_level_for_downsample(1.0 / max(self.zoom, 1e-9))

    # --- tiles -------------------------------------------------------------------------------------
    def _tile_range(self, level: int, rect: QRectF) -> tuple[int, int, int, int] | None:
        """First and last tile column and row of ``level`` meeting ``rect`` (scene px); None if none."""
        slide = self.slide
        if slide is None:
            return None
        ds = slide.level_downsamples[level]
        lw, lh = slide.level_dimensions[level]
        r = rect.intersected(self.sceneRect())
        if r.isEmpty():
            return None
        return (max(0, int(r.left() / ds // TILE)), min(int(r.right() / ds // TILE), (lw - 1) // TILE),
                max(0, int(r.top() / ds // TILE)), min(int(r.bottom() / ds // TILE), (lh - 1) // TILE))

    def _visible_keys(self, level: int) -> list[TileKey]:
        span = self._tile_range(level, self.visible_rect())
        if span is None:
            return []
        c0, c1, r0, r1 = span
        cx, cy = (c0 + c1) / 2, (r0 + r1) / 2
        keys = [(level, c, r_) for r_ in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
        keys.sort(key=lambda k: (k[1] - cx) ** 2 + (k[2] - cy) ** 2)  # centre first
        return keys

    def _on_view_moved(self) -> None:
        if self.slide is None or self.loader is None:
            return
        level = self.level_for_zoom()
        want = []
        for key in self._visible_keys(level):
            item = self.cache.get(key)
            if item is None or item[0] != self.display.version:
                want.append(key)
        self.loader.request(want)
        self.navigator.set_view_rect(self.visible_rect(), self.sceneRect())
        self.view_changed.emit()

    def _on_tile_loaded(self, level: int, col: int, row: int, version: int, image: QImage) -> None:
        if version != self.display.version:
            return
        self.cache.put((level, col, row), version, QPixmap.fromImage(image))
        self.viewport().update()

    def _on_tile_failed(self, message: str) -> None:
        self.tile_failed.emit(message)

    def drawBackground(self, painter: QPainter, rect: QRectF | QRect) -> None:  # noqa: N802 (Qt name)
        rect = QRectF(rect)
        painter.fillRect(rect, BACKGROUND)
        if self.slide is None:
            return
        scene = self.sceneRect()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 1.0)
        level = self.level_for_zoom()
        tiles, holes = self._tiles_in(level, rect)
        if holes:  # tiles still loading: the overview, then coarser cached tiles, under the holes only
            for hole in holes:
                if self.overview is not None:  # only the exposed part: scaling it all costs 100s of ms
                    draw_part(painter, hole.intersected(scene), scene, self.overview)
            top = min(level + 2, self.slide.level_count - 1)
            for lv in range(top, level, -1):  # coarse first, so finer tiles cover them
                for hole in holes:
                    for target, pix in self._tiles_in(lv, hole)[0]:
                        draw_part(painter, hole.intersected(target), target, pix)
        # With every tile of this level at hand (the usual case when panning) nothing lies under
        # them: drawing the overview and two coarser levels beneath cost 3-4x the frame.
        for target, pix in tiles:
            draw_part(painter, rect.intersected(target), target, pix)

    def _tiles_in(self, level: int, rect: QRectF) -> tuple[list[tuple[QRectF, QPixmap]], list[QRectF]]:
        """Cached tiles of ``level`` meeting ``rect`` (scene rect, pixmap) and the parts of ``rect`` lacking one."""
        span = self._tile_range(level, rect)
        if span is None or self.slide is None:
            return [], []
        c0, c1, r0, r1 = span
        ds = self.slide.level_downsamples[level]
        r = rect.intersected(self.sceneRect())
        tiles, holes = [], []
        for row in range(r0, r1 + 1):
            for col in range(c0, c1 + 1):
                item = self.cache.get((level, col, row))
                if item is None:
                    side = TILE * ds
                    holes.append(r.intersected(QRectF(col * side, row * side, side, side)))
                    continue
                pix = item[1]
                tiles.append((QRectF(col * TILE * ds, row * TILE * ds, pix.width() * ds, pix.height() * ds), pix))
        return tiles, holes

    def drawForeground(self, painter: QPainter, rect: QRectF | QRect) -> None:  # noqa: N802 (Qt name)
        if self.slide is None:
            return
        painter.save()
        painter.resetTransform()
        self._draw_handles(painter)
        if self.mpp:
            self._draw_scale_bar(painter)
        painter.restore()

    def _draw_scale_bar(self, painter: QPainter) -> None:
        if self.mpp is None:
            return
        um_per_screen_px = self.mpp[0] / max(self.zoom, 1e-9)
        length_um = nice_length(140 * um_per_screen_px)
        length_px = length_um / um_per_screen_px
        x0, y0 = 18, self.viewport().height() - 22
        label = f"{length_um / 1000:g} mm" if length_um >= 1000 else f"{length_um:g} µm"
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.fillRect(QRectF(x0 - 8, y0 - 26, length_px + 16, 38), QColor(0, 0, 0, 150))
        painter.setPen(QPen(QColor("white"), 3))
        painter.drawLine(QPointF(x0, y0), QPointF(x0 + length_px, y0))
        font = QFont(painter.font())
        font.setPointSizeF(9)
        painter.setFont(font)
        painter.drawText(QRectF(x0, y0 - 24, length_px, 18), Qt.AlignmentFlag.AlignCenter, label)

    def _draw_handles(self, painter: QPainter) -> None:
        geom = self.selected_geometry_px()
        if geom is None or self.tool_mode is not ToolMode.SELECT or not hasattr(geom, "exterior"):
            return
        coords = list(geom.exterior.coords)[:-1]
        if len(coords) > 400:
            return
        painter.setPen(QPen(QColor("#00e5ff"), 1))
        painter.setBrush(QColor("white"))
        for x, y in coords:
            p = self.mapFromScene(QPointF(x, y))
            painter.drawRect(QRectF(p.x() - 3, p.y() - 3, 6, 6))

    # --- cells and regions --------------------------------------------------------------------------
    def set_regions(self, regions: list) -> None:
        """Draw these core.regions.Region objects (slide µm)."""
        if self.regions is None or not self.mpp:
            return
        sx, sy = 1 / self.mpp[0], 1 / self.mpp[1]
        self._geoms_px = {r.id: affinity.scale(r.geometry, sx, sy, origin=(0, 0)) for r in regions}
        if self.regions.selected_id not in self._geoms_px:
            self.regions.selected_id = None
        self.regions.sync(regions)
        self.viewport().update()

    def select_region(self, region_id: str | None) -> None:
        if self.regions is not None:
            self.regions.select(region_id)
        self.region_selected.emit(region_id)
        self.viewport().update()

    def selected_geometry_px(self) -> BaseGeometry | None:
        rid = self.regions.selected_id if self.regions else None
        return self._geoms_px.get(rid) if rid else None

    def _to_um(self, geometry_px: BaseGeometry) -> BaseGeometry:
        mx, my = self.mpp or (1.0, 1.0)
        return affinity.scale(geometry_px, mx, my, origin=(0, 0))

    def emit_drawn(self, geometry_px: BaseGeometry) -> None:
        """Called by tools with a finished shape (level-0 px)."""
        self.region_drawn.emit(self._to_um(geometry_px))

    def emit_edited(self, region_id: str, geometry_px: BaseGeometry) -> None:
        self.region_edited.emit(region_id, self._to_um(geometry_px))

    # --- tools and input ----------------------------------------------------------------------------
    def set_tool(self, mode: ToolMode) -> None:
        self.tool.cancel()
        self.tool_mode = ToolMode(mode)
        self.tool = TOOLS[self.tool_mode](self)
        drag = QGraphicsView.DragMode.ScrollHandDrag if self.tool_mode is ToolMode.MOVE else QGraphicsView.DragMode.NoDrag
        self.setDragMode(drag)
        cursor = Qt.CursorShape.OpenHandCursor if self.tool_mode is ToolMode.MOVE else Qt.CursorShape.CrossCursor
        if self.tool_mode is ToolMode.SELECT:
            cursor = Qt.CursorShape.ArrowCursor
        self.viewport().setCursor(cursor)
        self.viewport().update()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt name)
        delta = event.angleDelta().y() or event.pixelDelta().y()
        if not delta or self.slide is None:
            return
        anchor = self.mapToScene(event.position().toPoint())
        self.set_zoom(self.zoom * 2 ** (delta / 360.0), anchor)
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt name)
        if self.tool_mode is ToolMode.MOVE or event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        self.tool.press(self.mapToScene(event.position().toPoint()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt name)
        pos = self.mapToScene(event.position().toPoint())
        self.cursor_moved.emit(pos.x(), pos.y())
        if self.tool_mode is ToolMode.MOVE:
            super().mouseMoveEvent(event)
            return
        self.tool.move(pos, event.buttons())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt name)
        if self.tool_mode is ToolMode.MOVE or event.button() != Qt.MouseButton.LeftButton:
            super().mouseReleaseEvent(event)
            return
        self.tool.release(self.mapToScene(event.position().toPoint()))

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt name)
        if self.tool_mode is ToolMode.MOVE:
            super().mouseDoubleClickEvent(event)
            return
        self.tool.double_click(self.mapToScene(event.position().toPoint()))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt name)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.tool.finish()
        elif event.key() == Qt.Key.Key_Escape:
            self.tool.cancel()
        else:
            super().keyPressEvent(event)

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802 (Qt name)
        super().scrollContentsBy(dx, dy)
        self._refresh.start()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self.navigator.place()
        self._refresh.start()
