"""Regions on the slide view: one translucent path item per region, coloured by kind.

Regions live in slide µm (core.regions); the scene is in level-0 pixels, so every coordinate is
divided by the slide's mpp here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsScene
from shapely.geometry import MultiPolygon, Polygon

from core.regions.kinds import REGION_KINDS
from core.regions.region import Region, RegionKind

#: Outline colour per region kind (fill is the same colour, translucent): core's one table of kinds.
KIND_COLOURS: dict[RegionKind, str] = {kind: info.colour for kind, info in REGION_KINDS.items()}
FILL_ALPHA = 40


def polygon_path(geometry: Polygon | MultiPolygon, scale: tuple[float, float]) -> QPainterPath:
    """A QPainterPath (odd-even fill: holes stay open) of a geometry, coordinates × ``scale``."""
    path = QPainterPath()
    path.setFillRule(Qt.FillRule.OddEvenFill)
    parts = geometry.geoms if isinstance(geometry, MultiPolygon) else [geometry]
    sx, sy = scale
    for part in parts:
        if part.is_empty:
            continue
        for ring in (part.exterior, *part.interiors):
            poly = QPolygonF([QPointF(x * sx, y * sy) for x, y in ring.coords])
            path.addPolygon(poly)
            path.closeSubpath()
    return path


class RegionItem(QGraphicsPathItem):
    """The drawing of one region; ``region_id`` links it back to the RegionSet."""

    def __init__(self, region: Region, mpp: tuple[float, float]) -> None:
        super().__init__(polygon_path(region.geometry, (1 / mpp[0], 1 / mpp[1])))
        self.region_id = region.id
        self.kind = region.kind
        self.setZValue(20)
        self.set_style(selected=False)

    def set_style(self, selected: bool, fill: bool = True) -> None:
        colour = QColor(KIND_COLOURS.get(self.kind, "#ffffff"))
        pen = QPen(colour, 3.0 if selected else 2.0)
        pen.setCosmetic(True)
        if selected:
            pen.setStyle(Qt.PenStyle.DashLine)
        self.setPen(pen)
        fill_colour = QColor(colour)
        fill_colour.setAlpha(FILL_ALPHA * (2 if selected else 1) if fill else 0)
        brush = QBrush(fill_colour)
        if self.kind is RegionKind.EXCLUSION and fill:
            brush.setStyle(Qt.BrushStyle.BDiagPattern)
            brush.setColor(colour)
        self.setBrush(brush)


class RegionOverlay:
    """Keeps one RegionItem per region in a scene in step with a list of regions."""

    def __init__(self, scene: QGraphicsScene, mpp: tuple[float, float]) -> None:
        self.scene = scene
        self.mpp = mpp
        self.items: dict[str, RegionItem] = {}
        self.visible = True
        self.filled = True
        self.selected_id: str | None = None

    def sync(self, regions: Iterable[Region]) -> None:
        """Redraw all regions (cheap: a slide has a handful)."""
        for item in self.items.values():
            self.scene.removeItem(item)
        self.items = {}
        for region in regions:
            item = RegionItem(region, self.mpp)
            item.setVisible(self.visible)
            item.set_style(region.id == self.selected_id, self.filled)
            self.scene.addItem(item)
            self.items[region.id] = item

    def set_visible(self, visible: bool) -> None:
        self.visible = visible
        for item in self.items.values():
            item.setVisible(visible)

    def set_filled(self, filled: bool) -> None:
        self.filled = filled
        for rid, item in self.items.items():
            item.set_style(rid == self.selected_id, filled)

    def select(self, region_id: str | None) -> None:
        self.selected_id = region_id
        for rid, item in self.items.items():
            item.set_style(rid == region_id, self.filled)

    def region_at(self, x_px: float, y_px: float) -> str | None:
        """Id of the topmost (last drawn, smallest) region containing the point (level-0 px)."""
        hits = [
            (item.path().boundingRect().width() * item.path().boundingRect().height(), rid)
            for rid, item in self.items.items()
            if item.isVisible() and item.path().contains(QPointF(x_px, y_px))
        ]
        return min(hits)[1] if hits else None

    def set_item_flags(self, flag: QGraphicsItem.GraphicsItemFlag, on: bool) -> None:
        for item in self.items.values():
            item.setFlag(flag, on)
