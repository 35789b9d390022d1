"""The cell overlay: cells coloured by class, drawn by level of detail.

Zoomed out, a density raster (one pixel per ``DENSITY_BIN`` level-0 pixels, coloured by the mix
of classes, opacity by count) stands for the cells; zoomed in, only the cells inside the visible
rectangle are drawn, found through a bucket grid, so 500k cells pan smoothly.

Cells are stamped from a small sprite atlas (one ring or dot per class, rendered once per style)
with a single ``QPainter.drawPixmapFragments`` call: per-cell ``drawEllipse`` calls or wide
antialiased ``drawPoints`` pens cost 30–40 ms a frame at high zoom with ~1000 cells in view, the
stamps a few ms (``benchmarks/app_responsiveness.py``).

Colours come from the class table of the model that made the cells (:class:`core.classes.ClassTable`,
kept with the analysis): a cell's class index means what that model's card says, so a card with
another class order is drawn in its own colours (:meth:`CellOverlay.set_class_table`).
"""

from __future__ import annotations

import math
import time

import numpy as np
from pyqtgraph.Qt.internals import PrimitiveArray
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from app.viewer.display import pack_argb
from app.viewer.tiles import array_to_qimage, draw_part
from core.classes import DEFAULT_CLASS_TABLE, ClassTable

BUCKET = 256        # level-0 px per bucket side of the spatial index
DENSITY_BIN = 32    # level-0 px per density raster pixel
MAX_POINTS = 80_000  # more visible cells than this → draw the density raster instead
MAX_RINGS = 3000     # more visible cells than this → dots instead of rings (rings would overlap)
CELL_DIAMETER_UM = 7.0


#: Segments of at most this many cells are merged when they reach a similar size; bigger ones are
#: left alone, so adding a block never re-sorts more than this (~10 ms) on the UI thread.
MAX_MERGE = 100_000
DENSITY_REFRESH_S = 1.0  # while cells stream in, the zoomed-out raster is remade at most this often


class _Segment:
    """Cells sorted by bucket, so that the cells of a rectangle are a few contiguous slices."""

    def __init__(self, x: np.ndarray, y: np.ndarray, cls: np.ndarray, bucket: np.ndarray, n_buckets: int) -> None:
        order = np.argsort(bucket, kind="stable")
        self.x = np.ascontiguousarray(x[order], dtype=np.float64)
        self.y = np.ascontiguousarray(y[order], dtype=np.float64)
        self.cls = np.ascontiguousarray(cls[order], dtype=np.int16)
        self.bucket = bucket[order]
        self.starts = np.searchsorted(self.bucket, np.arange(n_buckets + 1))

    def __len__(self) -> int:
        return len(self.x)


class CellIndex:
    """The cells of a slide in a bucket grid, built in segments so that cells can arrive in blocks.

    An analysis delivers its cells block by block; re-sorting all cells so far for each block cost
    170 ms on the UI thread at 1M cells. New cells form a segment; like segments merge when they
    reach a similar size (a binary counter, so O(n log n) work in all) up to :data:`MAX_MERGE`, so
    a query visits a handful of segments.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, cls: np.ndarray, size: tuple[int, int],
                 colours: tuple[str, ...] = DEFAULT_CLASS_TABLE.colours) -> None:
        self.size = size
        self.colours = colours  # per class index: the analysis's class table
        self.nbx = max(1, int(np.ceil(size[0] / BUCKET)))
        self.nby = max(1, int(np.ceil(size[1] / BUCKET)))
        self.segments: list[_Segment] = []
        # Cells per class per DENSITY_BIN² pixel, kept up to date by add(): the zoomed-out raster
        # then never has to revisit all cells.
        self.counts = np.zeros((len(colours), int(np.ceil(size[1] / DENSITY_BIN)) or 1,
                                int(np.ceil(size[0] / DENSITY_BIN)) or 1), np.float32)
        self.add(x, y, cls)

    def __len__(self) -> int:
        return sum(len(seg) for seg in self.segments)

    def _bucket(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        bx = np.clip((x // BUCKET).astype(np.int64), 0, self.nbx - 1)
        by = np.clip((y // BUCKET).astype(np.int64), 0, self.nby - 1)
        return by * self.nbx + bx

    def add(self, x: np.ndarray, y: np.ndarray, cls: np.ndarray) -> None:
        """Add cells (level-0 px, class indices); cost grows with their number, not with the total."""
        x, y, cls = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(cls)
        if not len(x):
            return
        n_buckets = self.nbx * self.nby
        h, w = self.counts.shape[1:]
        known = (cls >= 0) & (cls < len(self.counts))
        iy = np.clip((y[known] // DENSITY_BIN).astype(np.int64), 0, h - 1)
        ix = np.clip((x[known] // DENSITY_BIN).astype(np.int64), 0, w - 1)
        np.add.at(self.counts, (cls[known].astype(np.int64), iy, ix), 1.0)
        self.segments.append(_Segment(x, y, cls, self._bucket(x, y), n_buckets))
        while len(self.segments) > 1:
            a, b = self.segments[-2], self.segments[-1]
            if len(a) > 2 * len(b) or len(a) + len(b) > MAX_MERGE:
                break
            self.segments[-2:] = [_Segment(np.concatenate([a.x, b.x]), np.concatenate([a.y, b.y]),
                                           np.concatenate([a.cls, b.cls]), np.concatenate([a.bucket, b.bucket]),
                                           n_buckets)]

    def _buckets(self, rect: QRectF) -> tuple[int, int, int, int]:
        """First and last bucket column and row touching ``rect`` (level-0 px); empty if last < first."""
        return (max(0, int(rect.left() // BUCKET)), min(self.nbx - 1, int(rect.right() // BUCKET)),
                max(0, int(rect.top() // BUCKET)), min(self.nby - 1, int(rect.bottom() // BUCKET)))

    def select(self, rect: QRectF) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, y, class of the cells in the buckets touching ``rect`` (level-0 px)."""
        bx0, bx1, by0, by1 = self._buckets(rect)
        parts: list[np.ndarray] = []
        segs: list[_Segment] = []
        if bx1 >= bx0 and by1 >= by0:
            for seg in self.segments:
                for by in range(by0, by1 + 1):
                    lo, hi = seg.starts[by * self.nbx + bx0], seg.starts[by * self.nbx + bx1 + 1]
                    if hi > lo:
                        parts.append(np.arange(lo, hi))
                        segs.append(seg)
        if not parts:
            empty = np.empty(0)
            return empty, empty, np.empty(0, np.int16)
        return (np.concatenate([seg.x[i] for seg, i in zip(segs, parts, strict=True)]),
                np.concatenate([seg.y[i] for seg, i in zip(segs, parts, strict=True)]),
                np.concatenate([seg.cls[i] for seg, i in zip(segs, parts, strict=True)]))

    def count_in(self, rect: QRectF) -> int:
        """How many cells :meth:`select` would return, without gathering them."""
        bx0, bx1, by0, by1 = self._buckets(rect)
        if bx1 < bx0 or by1 < by0:
            return 0
        rows = np.arange(by0, by1 + 1) * self.nbx
        return int(sum((seg.starts[rows + bx1 + 1] - seg.starts[rows + bx0]).sum() for seg in self.segments))

    def density_image(self, visible: set[int]) -> QImage:
        """RGBA raster of the visible classes: colour = count-weighted mix, alpha rises with count."""
        _, h, w = self.counts.shape
        shown = [c for c in sorted(visible) if 0 <= c < len(self.counts)]
        if not shown:
            return array_to_qimage(np.zeros((h, w), np.uint32), QImage.Format.Format_ARGB32)
        counts = self.counts[shown].reshape(len(shown), h * w)
        qcolours = [QColor(self.colours[c]) for c in shown]
        colours = np.array([(q.red(), q.green(), q.blue()) for q in qcolours], np.float32)
        total = counts.sum(axis=0)
        rgb = colours.T @ counts  # (3, h*w): one matrix product instead of per-class image passes
        np.divide(rgb, total, out=rgb, where=total > 0)
        alpha = np.minimum(total * (230 / 3.0), 230.0)
        argb = pack_argb(rgb[0], rgb[1], rgb[2], alpha)
        return array_to_qimage(argb.reshape(h, w), QImage.Format.Format_ARGB32)  # straight alpha


class SpriteAtlas:
    """One pixmap holding a sprite per class for the current style: a ring, a disc or a square dot.

    Rebuilt only when the style changes (zoom crosses a size step, rings turn to dots), so a pan
    frame only stamps sprites. Sprite ``c`` occupies columns ``c * side … (c + 1) * side``.
    """

    def __init__(self, colours: tuple[str, ...] = DEFAULT_CLASS_TABLE.colours) -> None:
        self.key: tuple[int, str] | None = None
        self.pixmap = QPixmap()
        self.side = 0
        self.colours = colours  # per class index

    def get(self, diameter: int, style: str) -> QPixmap:
        """The atlas for sprites ``diameter`` screen px wide; ``style`` is "ring", "disc" or "dot"."""
        if self.key != (diameter, style):
            self.key = (diameter, style)
            self.side = diameter + 4  # room for the ring's pen and antialiasing
            atlas = QPixmap(self.side * len(self.colours), self.side)
            atlas.fill(Qt.GlobalColor.transparent)
            painter = QPainter(atlas)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, style != "dot")
            for c, name in enumerate(self.colours):
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

    def __init__(self, size: tuple[int, int], mpp: float | None, classes: ClassTable = DEFAULT_CLASS_TABLE) -> None:
        super().__init__()
        self._size = size
        self._mpp = mpp or 0.25
        self.classes = classes
        self.visible_classes: set[int] = set(classes.positive)
        self.index: CellIndex | None = None
        self._density: QPixmap | None = None
        self._density_stale = False  # cells were added since the raster was made
        self._density_made = 0.0     # time.monotonic() when it was made
        self._refresh_pending = False  # a timer will repaint when the next raster is due
        self.last_drawn = 0  # cells drawn in the last paint (tests, benchmarks)
        self.last_style = ""  # "ring", "disc", "dot" or "density" in the last paint (tests)
        self._atlas = SpriteAtlas(classes.colours)
        self._fragments = PrimitiveArray(QPainter.PixmapFragment, 10)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self.setZValue(10)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt name)
        return QRectF(0, 0, self._size[0], self._size[1])

    def set_class_table(self, classes: ClassTable) -> None:
        """Draw class indices in the colours of ``classes`` (the shown analysis's model's table);
        set before :meth:`set_cells`. Every class of the new table is shown (as the Layers dock's boxes)."""
        if classes == self.classes:
            return
        self.classes = classes
        self._atlas = SpriteAtlas(classes.colours)
        self.visible_classes = set(classes.positive)
        if self.index is not None:
            old = self.index
            self.index = CellIndex(np.empty(0), np.empty(0), np.empty(0, np.int16), self._size, classes.colours)
            for seg in old.segments:
                self.index.add(seg.x, seg.y, seg.cls)
        self._density = None
        self.update()

    def set_cells(self, x: np.ndarray, y: np.ndarray, cls: np.ndarray) -> None:
        """Replace all cells (level-0 px coordinates, class indices of :attr:`classes`)."""
        self.index = CellIndex(np.asarray(x, float), np.asarray(y, float), np.asarray(cls), self._size,
                               self.classes.colours)
        self._density = None
        self.update()

    def add_cells(self, x: np.ndarray, y: np.ndarray, cls: np.ndarray) -> None:
        """Add cells to those shown (an analysis's block): no re-sort of the cells already there.

        The zoomed-out raster is only marked stale: remaking it costs ~50 ms on a 40000² slide, so
        while blocks stream in it is remade at most every :data:`DENSITY_REFRESH_S`.
        """
        if self.index is None:
            self.set_cells(x, y, cls)
            return
        self.index.add(x, y, cls)
        self._density_stale = True
        self.update()

    def set_class_visible(self, cls: int, visible: bool) -> None:
        if visible:
            self.visible_classes.add(cls)
        else:
            self.visible_classes.discard(cls)
        self._density = None
        self.update()

    def _refresh_density(self, index: CellIndex) -> None:
        """Make the zoomed-out raster if missing, or if stale and the last one is old enough."""
        now = time.monotonic()
        if self._density is not None and self._density_stale:
            wait = self._density_made + DENSITY_REFRESH_S - now
            if wait > 0:  # keep the current picture; come back (once) when a new one is due
                if not self._refresh_pending:
                    self._refresh_pending = True
                    QTimer.singleShot(int(wait * 1000) + 1, self._due)
                return
            self._density = None
        if self._density is None:
            # As a pixmap: drawing the straight-alpha QImage converted all of it every frame.
            self._density = QPixmap.fromImage(index.density_image(self.visible_classes))
            self._density_made, self._density_stale = now, False

    def _due(self) -> None:
        self._refresh_pending = False
        try:
            self.update()
        except RuntimeError:  # the slide was closed and its layer deleted before the timer fired
            pass

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
        if lod <= 0.02 or index.count_in(rect) > MAX_POINTS:
            self._refresh_density(index)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, lod < 0.5)
            if self._density is not None:  # always, after _refresh_density
                draw_part(painter, rect.intersected(self.boundingRect()), self.boundingRect(), self._density)
            self.last_drawn = 0
            self.last_style = "density"
            return
        x, y, cls = index.select(rect)
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
        # PySide6's stub lists only the (fragments, count, pixmap) overload pyqtgraph's drawargs fills.
        painter.drawPixmapFragments(*frags.drawargs(), atlas)  # type: ignore[call-arg]
        painter.restore()

