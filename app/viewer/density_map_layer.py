"""The density map: one marker group's smoothed cell density (cells/mm²) over the slide.

The raster and its colours come from core (:func:`core.density_map.analysed_density`,
:func:`core.density_map.density_rgba`), so the map on screen and the overview in the PDF
report show the same raster on the same scale; on screen the colour lightens with density
(``on_dark``) where the paper's darkens, as it lies over a dark fluorescence image. The RGBA
raster (at most 512 px a side) becomes a QPixmap once per change of cells or marker: drawing a
straight-alpha QImage converts all of it on every frame.
Each frame draws only the exposed part of the pixmap, smooth-scaled to the slide.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from app.viewer.display import pack_argb
from app.viewer.tiles import array_to_qimage, draw_part
from core.classes import marker_colour
from core.density_map import DensityOverlay, density_ceiling, density_rgba

#: Above the tiles (drawn as the view's background), below the cells (10) and regions (20).
DENSITY_Z = 5


def rgba_to_pixmap(rgba: np.ndarray) -> QPixmap:
    """A QPixmap of a uint8 (h, w, 4) straight-alpha RGBA array (converted once, here)."""
    argb = pack_argb(rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3])
    return QPixmap.fromImage(array_to_qimage(argb, QImage.Format.Format_ARGB32))


class DensityMapLayer(QGraphicsItem):
    """A scene item over the whole slide (scene units = level-0 px) that paints a density raster.

    Hidden until the user asks for it. ``vmax`` is the density drawn at full opacity (the legend's
    top), None when nothing is drawn (no cells of the marker, or none in the analysed tissue).
    """

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self._size = size
        self.pixmap: QPixmap | None = None
        self._covers = QRectF()  # level-0 rect of the raster (its last pixels may pass the slide's edge)
        self.vmax: float | None = None
        self.label = ""
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.setZValue(DENSITY_Z)
        self.setVisible(False)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt name)
        return QRectF(0, 0, self._size[0], self._size[1])

    def set_overlay(self, overlay: DensityOverlay | None) -> None:
        """Show this raster (from core), or nothing for None or an all-zero raster."""
        self.label = overlay.label if overlay is not None else ""
        values = None if overlay is None else np.asarray(overlay.values, dtype=np.float32)
        if overlay is None or values is None or values.ndim != 2 or not float(np.nanmax(values, initial=0.0)) > 0:
            self.pixmap, self.vmax, self._covers = None, None, QRectF()
        else:
            self.vmax = density_ceiling(values)
            self.pixmap = rgba_to_pixmap(density_rgba(values, self.vmax, marker_colour(overlay.label), on_dark=True))
            h, w = values.shape
            self._covers = QRectF(0, 0, w * overlay.downsample, h * overlay.downsample)
        self.update()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self.pixmap is None:
            return
        part = option.exposedRect.intersected(self.boundingRect()).intersected(self._covers)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        draw_part(painter, part, self._covers, self.pixmap)
