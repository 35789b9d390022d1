"""ContrastDialog: per-channel display window over a histogram of the overview (pyqtgraph)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.viewer.display import DisplaySettings, auto_window


class ContrastDialog(QDialog):
    """Drag the shaded band (or press Auto) to set a channel's low/high; applies live."""

    display_changed = Signal(object)  # DisplaySettings

    def __init__(self, display: DisplaySettings, overview: np.ndarray, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Brightness & contrast")
        self.display, self.overview = display, overview
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.channel = QComboBox()
        for ch in display.channels:
            self.channel.addItem(ch.name)
        self.channel.currentIndexChanged.connect(self._show_channel)
        auto = QPushButton("Auto")
        auto.clicked.connect(self._auto)
        row.addWidget(self.channel, 1)
        row.addWidget(auto)
        layout.addLayout(row)
        self.plot = pg.PlotWidget(background="#202327")
        self.plot.setLabel("bottom", "intensity")
        self.plot.setLogMode(False, True)
        self.plot.setMinimumSize(420, 220)
        layout.addWidget(self.plot)
        self.band = pg.LinearRegionItem(brush=(255, 212, 0, 40))
        self.band.sigRegionChanged.connect(self._on_band)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._show_channel(0)

    def _show_channel(self, index: int) -> None:
        if index < 0:
            return
        data = self.overview[index].ravel()
        hi = float(np.percentile(data, 99.99)) if data.size else 1.0
        counts, edges = np.histogram(data, bins=256, range=(0, max(hi, 1.0)))
        self.plot.clear()
        ch = self.display.channels[index]
        self.plot.plot(edges, counts + 1, stepMode="center", fillLevel=0, brush=(*ch.colour, 120),
                       pen=pg.mkPen(ch.colour))
        self.band.blockSignals(True)
        self.band.setRegion((ch.low, ch.high))
        self.band.blockSignals(False)
        self.plot.addItem(self.band)

    def _on_band(self) -> None:
        lo, hi = self.band.getRegion()
        i = self.channel.currentIndex()
        self.display = self.display.with_channel(i, low=float(lo), high=float(max(hi, lo + 1)))
        self.display_changed.emit(self.display)

    def _auto(self) -> None:
        i = self.channel.currentIndex()
        lo, hi = auto_window(self.overview[i])
        self.band.setRegion((lo, hi))
