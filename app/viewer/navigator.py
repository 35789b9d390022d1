"""OverviewNavigator: the small overview in the corner of the slide view; click or drag to go there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from app.viewer.slide_view import SlideView

SIDE = 200  # longest side in screen px


class OverviewNavigator(QWidget):
    """Shows the whole slide and a rectangle for the part in view."""

    def __init__(self, view: SlideView) -> None:
        super().__init__(view)
        self.view = view
        self._pixmap: QPixmap | None = None
        self._view_rect = QRectF()
        self._scene_rect = QRectF()
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.hide()

    def set_overview(self, pixmap: QPixmap | None) -> None:
        self._pixmap = pixmap
        if pixmap is None or pixmap.isNull():
            self.hide()
            return
        w, h = pixmap.width(), pixmap.height()
        s = SIDE / max(w, h)
        self.resize(max(20, int(w * s)) + 4, max(20, int(h * s)) + 4)
        self.place()
        self.show()
        self.update()

    def place(self) -> None:
        """Keep to the top-right corner of the view."""
        vp = self.view.viewport()
        self.move(vp.width() - self.width() - 12, 12)

    def set_view_rect(self, view_rect: QRectF, scene_rect: QRectF) -> None:
        self._view_rect, self._scene_rect = QRectF(view_rect), QRectF(scene_rect)
        self.update()

    def _inner(self) -> QRectF:
        return QRectF(2, 2, self.width() - 4, self.height() - 4)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(0, 0, 0, 180))
        inner = self._inner()
        if self._pixmap is not None:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            p.drawPixmap(inner, self._pixmap, QRectF(self._pixmap.rect()))
        if self._scene_rect.width() > 0:
            sx = inner.width() / self._scene_rect.width()
            sy = inner.height() / self._scene_rect.height()
            r = self._view_rect.intersected(self._scene_rect)
            box = QRectF(inner.left() + r.left() * sx, inner.top() + r.top() * sy, r.width() * sx, r.height() * sy)
            p.setPen(QPen(QColor("#ffd400"), 1.5))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(box)
        p.setPen(QPen(QColor(255, 255, 255, 90), 1))
        p.drawRect(self.rect().adjusted(0, 0, -1, -1))
        p.end()

    def _go(self, pos: QPointF) -> None:
        inner = self._inner()
        if self._scene_rect.width() <= 0:
            return
        x = (pos.x() - inner.left()) / inner.width() * self._scene_rect.width()
        y = (pos.y() - inner.top()) / inner.height() * self._scene_rect.height()
        self.view.center_on_px(x, y)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt name)
        self._go(event.position())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt name)
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._go(event.position())
