"""StatusLabels: the status bar's permanent labels, made by the window and handed to the
controllers that write them (the viewer writes position, zoom and pixel size; the analysis and the
settings write the device)."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import QLabel


@dataclass(frozen=True)
class StatusLabels:
    """Cursor position, zoom, pixel size and device, left to right in the status bar."""

    position: QLabel
    zoom: QLabel
    pixel_size: QLabel
    device: QLabel

    @classmethod
    def make(cls) -> StatusLabels:
        return cls(QLabel(), QLabel(), QLabel(), QLabel())

    def all(self) -> tuple[QLabel, QLabel, QLabel, QLabel]:
        return self.position, self.zoom, self.pixel_size, self.device
