"""The cell overlay: cells coloured by class, drawn by level of detail.

Zoomed out, a density raster (one pixel per ``DENSITY_BIN`` level-0 pixels, coloured by the mix
of classes, opacity by count) stands for the cells; zoomed in, only the cells inside the visible
rectangle are drawn, found through a bucket grid, so 500k cells pan smoothly.

Cells are stamped from a small sprite atlas (one ring or dot per class, rendered once per style)
with a single ``QPainter.drawPixmapFragments`` call: per-cell ``drawEllipse`` calls or wide
antialiased ``drawPoints`` pens cost 30–40 ms a frame at high zoom with ~1000 cells in view, the
stamps a few ms (``benchmarks/app_responsiveness.py``).
"""

from __future__ import annotations

import math

import numpy as np
from pyqtgraph.Qt.internals import PrimitiveArray
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from app.viewer.tiles import array_to_qimage, draw_part
from core.classes import CLASS_COLOURS, CLASS_NAMES

BUCKET = 256        # level-0 px per bucket side of the spatial index
DENSITY_BIN = 32    # level-0 px per density raster pixel
MAX_POINTS = 80_000  # more visible cells than this → draw the density raster instead
MAX_RINGS = 3000     # more visible cells than this → dots instead of rings (rings would overlap)
CELL_DIAMETER_UM = 7.0


class CellIndex:
    """Cells sorted by bucket so that the cells of a rectangle are a few contiguous slices."""

    def __init__(self, x: np.ndarray, y: np.ndarray, cls: np.ndarray, size: tuple[int, int]) -> None:
        self.size = size
        self.nbx = max(1, int(np.ceil(size[0] / BUCKET)))
        self.nby = max(1, int(np.ceil(size[1] / BUCKET)))
        bx = np.clip((x // BUCKET).astype(np.int64), 0, self.nbx - 1)
        by = np.clip((y // BUCKET).astype(np.int64), 0, self.nby - 1)
        bucket = by * self.nbx + bx
        order = np.argsort(bucket, kind="stable")
        self.x = np.ascontiguousarray(x[order], dtype=np.float64)
        self.y = np.ascontiguousarray(y[order], dtype=np.float64)
        self.cls = np.ascontiguousarray(cls[order], dtype=np.int16)
        self.starts = np.searchsorted(bucket[order], np.arange(self.nbx * self.nby + 1))

    def __len__(self) -> int:
        return len(self.x)

    def query(self, rect: QRectF) -> np.ndarray:
        """Indices (into the sorted arrays) of cells in the buckets touching ``rect`` (level-0 px)."""
        bx0 = max(0, int(rect.left() // BUCKET))
        bx1 = min(self.nbx - 1, int(rect.right() // BUCKET))
        by0 = max(0, int(rect.top() // BUCKET))
        by1 = min(self.nby - 1, int(rect.bottom() // BUCKET))
        if bx1 < bx0 or by1 < by0:
            return np.empty(0, dtype=np.int64)
        parts = [
            np.arange(self.starts[by * self.nbx + bx0], self.starts[by * self.nbx + bx1 + 1])
            for by in range(by0, by1 + 1)
        ]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def density_image(self, visible: set[int]) -> QImage:
        """RGBA raster of the visible classes: colour = count-weighted mix, alpha rises with count."""
        w = max(1, int(np.ceil(self.size[0] / DENSITY_BIN)))
        h = max(1, int(np.ceil(self.size[1] / DENSITY_BIN)))
        rgb = np.zeros((h, w, 3), np.float32)
        total = np.zeros((h, w), np.float32)
        for c in visible:
            m = self.cls == c
            if not m.any():
                continue
            counts = np.zeros(h * w, np.float32)
            idx = (np.minimum(self.y[m] // DENSITY_BIN, h - 1) * w + np.minimum(self.x[m] // DENSITY_BIN, w - 1))
            np.add.at(counts, idx.astype(np.int64), 1.0)
            counts = counts.reshape(h, w)
            col = QColor(CLASS_COLOURS[c])
            rgb += counts[..., None] * np.array([col.red(), col.green(), col.blue()], np.float32)
            total += counts
        nz = total > 0
        rgb[nz] /= total[nz][:, None]
        alpha = np.clip(total / 3.0, 0, 1) * 230
        argb = (alpha.astype(np.uint32) << 24) | (rgb[..., 0].astype(np.uint32) << 16) \
            | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2].astype(np.uint32)
        return array_to_qimage(argb, QImage.Format.Format_ARGB32)  # straight (not premultiplied) alpha


class SpriteAtlas:
    """One pixmap holding a sprite per class for the current style: a ring, a disc or a square dot.

    Rebuilt only when the style changes (zoom crosses a size step, rings turn to dots), so a pan
    frame only stamps sprites. Sprite ``c`` occupies columns ``c * side … (c + 1) * side``.
    """

    def __init__(self) -> None:
        self.key: tuple[int, str] | None = None
        self.pixmap = QPixmap()
        self.side = 0

    def get(self, diameter: int, style: str) -> QPixmap:
        """The atlas for sprites ``diameter`` screen px wide; ``style`` is "ring", "disc" or "dot"."""
        if self.key != (diameter, style):
            self.key = (diameter, style)
            self.side = diameter + 4  # room for the ring's pen and antialiasing
            atlas = QPixmap(self.side * len(CLASS_COLOURS), self.side)
            atlas.fill(Qt.GlobalColor.transparent)
            painter = QPainter(atlas)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, style != "dot")
            for c, name in enumerate(CLASS_COLOURS):
                colour = QColor(name)
                box = QRectF(c * self.side + 2, 2, diameter, diameter)
                if style == "ring":
                    painter.setPen(QPen(colour, 2.0))
                    painter.setBrush(Qt.BrushStyle.NoBrush)
                    painter.drawEllipse(box.adjusted(1, 1, -1, -1))
                elif style == "disc":
                    if diameter > 10:
                        colour.setAlpha(150)  # big dots: see the nucleus through them
                    painter.setPen(Qt.PenStyle.NoPen)
                    painter.setBrush(colour)
                    painter.drawEllipse(box)
                else:
                    painter.fillRect(box, colour)
            painter.end()
            self.pixmap = atlas
        return self.pixmap


class CellOverlay(QGraphicsItem):
    """A scene item over the whole slide that paints the cells (scene units = level-0 px)."""

    def __init__(self, size: tuple[int, int], mpp: float | None) -> None:
        super().__init__()
        self._size = size
        self._mpp = mpp or 0.25
        self.visible_classes: set[int] = set(range(1, len(CLASS_NAMES)))
        self.index: CellIndex | None = None
        self._density: QPixmap | None = None
        self.last_drawn = 0  # cells drawn in the last paint (tests, benchmarks)
        self.last_style = ""  # "ring", "disc", "dot" or "density" in the last paint (tests)
        self._atlas = SpriteAtlas()
        self._fragments = PrimitiveArray(QPainter.PixmapFragment, 10)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.setZValue(10)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt name)
        return QRectF(0, 0, self._size[0], self._size[1])

    def set_cells(self, x: np.ndarray, y: np.ndarray, cls: np.ndarray) -> None:
        """Replace all cells (level-0 px coordinates, class indices)."""
        self.index = CellIndex(np.asarray(x, float), np.asarray(y, float), np.asarray(cls), self._size)
        self._density = None
        self.update()

    def set_class_visible(self, cls: int, visible: bool) -> None:
        if visible:
            self.visible_classes.add(cls)
        else:
            self.visible_classes.discard(cls)
        self._density = None
        self.update()

    @property
    def count(self) -> int:
        return 0 if self.index is None else len(self.index)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        index = self.index
        if index is None or not len(index) or not self.visible_classes:
            self.last_drawn = 0
            return
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        rect = option.exposedRect
        sel = index.query(rect) if lod > 0.02 else None
        if sel is None or len(sel) > MAX_POINTS:
            if self._density is None:
                # As a pixmap: drawing the straight-alpha QImage converted all of it every frame.
                self._density = QPixmap.fromImage(index.density_image(self.visible_classes))
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, lod < 0.5)
            draw_part(painter, rect.intersected(self.boundingRect()), self.boundingRect(), self._density)
            self.last_drawn = 0
            self.last_style = "density"
            return
        x, y, cls = index.x[sel], index.y[sel], index.cls[sel]
        inside = (x >= rect.left()) & (x <= rect.right()) & (y >= rect.top()) & (y <= rect.bottom())
        inside &= np.isin(cls, list(self.visible_classes))
        x, y, cls = x[inside], y[inside], cls[inside]
        diameter = CELL_DIAMETER_UM / self._mpp * lod  # the nucleus, in screen px
        if diameter > 14 and len(x) <= MAX_RINGS:
            style, size = "ring", diameter  # the nucleus stays visible inside its ring
        elif len(x) > 5000:
            style, size = "dot", min(max(diameter, 3.0), 5.0)  # crowded: small square dots
        else:
            style, size = "disc", min(max(diameter, 3.0), 24.0)
        self._stamp(painter, x, y, cls, min(int(math.ceil(size)), 512), style)
        self.last_style = style
        self.last_drawn = len(x)

    def _stamp(self, painter: QPainter, x: np.ndarray, y: np.ndarray, cls: np.ndarray, diameter: int,
               style: str) -> None:
        """Draw one sprite per cell, centred on it, in one drawPixmapFragments call (device px)."""
        if not len(x):
            return
        atlas = self._atlas.get(diameter, style)
        t = painter.worldTransform()  # the view only scales and translates level-0 px
        frags = self._fragments
        frags.resize(len(x))
        arr = frags.ndarray()
        arr[:, 0] = t.m11() * x + t.m21() * y + t.dx()
        arr[:, 1] = t.m12() * x + t.m22() * y + t.dy()
        arr[:, 2] = cls.astype(np.float64) * self._atlas.side  # source rect: the class's sprite
        arr[:, 3] = 0.0
        arr[:, 4:6] = self._atlas.side
        arr[:, 6:10] = (1.0, 1.0, 0.0, 1.0)  # scale x, scale y, rotation, opacity
        painter.save()
        painter.resetTransform()
        painter.drawPixmapFragments(*frags.drawargs(), atlas)
        painter.restore()

