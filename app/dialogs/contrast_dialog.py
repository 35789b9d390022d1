"""ContrastDialog: per-channel display window over a histogram of the overview (pyqtgraph), with the
numbers (min, max, gamma) and the channel's colour editable as in QuPath's Brightness & Contrast:
a lab looking at its mIF channels beside the calls sets them exactly, not only by dragging."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.viewer.display import ChannelDisplay, DisplaySettings, auto_window


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
        numbers = QHBoxLayout()
        self.low, self.high, self.gamma = QDoubleSpinBox(), QDoubleSpinBox(), QDoubleSpinBox()
        for label, box in (("Min", self.low), ("Max", self.high), ("Gamma", self.gamma)):
            box.setDecimals(0 if box is not self.gamma else 2)
            box.setRange(0.0, 1e9) if box is not self.gamma else box.setRange(0.1, 5.0)
            box.setSingleStep(1.0 if box is not self.gamma else 0.05)
            box.setKeyboardTracking(False)
            box.valueChanged.connect(self._on_numbers)
            numbers.addWidget(QLabel(label))
            numbers.addWidget(box, 1)
        self.colour_button = QPushButton("Colour…")
        self.colour_button.clicked.connect(self._pick_colour)
        numbers.addWidget(self.colour_button)
        layout.addLayout(numbers)
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
        self._show_numbers(ch)

    def _show_numbers(self, ch: ChannelDisplay) -> None:
        for box, value in ((self.low, ch.low), (self.high, ch.high), (self.gamma, ch.gamma)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self.colour_button.setStyleSheet(f"background-color: rgb{tuple(ch.colour)};")

    def _on_numbers(self, _v: float = 0.0) -> None:
        i = self.channel.currentIndex()
        lo, hi = self.low.value(), max(self.high.value(), self.low.value() + 1)
        self.display = self.display.with_channel(i, low=lo, high=hi, gamma=self.gamma.value())
        self.band.blockSignals(True)
        self.band.setRegion((lo, hi))
        self.band.blockSignals(False)
        self.display_changed.emit(self.display)

    def set_colour(self, colour: QColor) -> None:
        """Show the current channel in ``colour`` (what the colour picker sets)."""
        i = self.channel.currentIndex()
        self.display = self.display.with_channel(i, colour=(colour.red(), colour.green(), colour.blue()))
        self._show_numbers(self.display.channels[i])
        self.display_changed.emit(self.display)

    def _pick_colour(self) -> None:
        ch = self.display.channels[self.channel.currentIndex()]
        colour = QColorDialog.getColor(QColor(*ch.colour), self, f"Colour of {ch.name}")
        if colour.isValid():
            self.set_colour(colour)

    def _on_band(self) -> None:
        lo, hi = self.band.getRegion()
        i = self.channel.currentIndex()
        self.display = self.display.with_channel(i, low=float(lo), high=float(max(hi, lo + 1)))
        self._show_numbers(self.display.channels[i])
        self.display_changed.emit(self.display)

    def _auto(self) -> None:
        i = self.channel.currentIndex()
        lo, hi = auto_window(self.overview[i])
        self.band.setRegion((lo, hi))
