"""LayersPanel: channels, cell classes and regions on and off; the region list and its actions."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.viewer.display import DisplaySettings
from core.classes import CLASS_COLOURS, CLASS_NAMES, POSITIVE_CLASSES
from core.regions import Region, RegionKind


def swatch(colour: QColor | str) -> QIcon:
    pix = QPixmap(12, 12)
    pix.fill(QColor(colour))
    return QIcon(pix)


class LayersPanel(QWidget):
    """Emits what the user switched; the main window applies it to the view."""

    channel_toggled = Signal(int, bool)
    contrast_requested = Signal()
    class_toggled = Signal(int, bool)
    cells_toggled = Signal(bool)
    regions_toggled = Signal(bool)
    region_selected = Signal(str)
    delete_requested = Signal()
    derive_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        chan_box = QGroupBox("Channels")
        self.channel_layout = QVBoxLayout(chan_box)
        self.channel_boxes: list[QCheckBox] = []
        contrast = QPushButton("Brightness && contrast…")
        contrast.clicked.connect(self.contrast_requested)
        self.channel_layout.addWidget(contrast)
        layout.addWidget(chan_box)

        cell_box = QGroupBox("Cells")
        cl = QVBoxLayout(cell_box)
        self.cells_box = QCheckBox("Show cells (D)")
        self.cells_box.setChecked(True)
        self.cells_box.toggled.connect(self.cells_toggled)
        cl.addWidget(self.cells_box)
        self.class_boxes: dict[int, QCheckBox] = {}
        for c in POSITIVE_CLASSES:
            box = QCheckBox(CLASS_NAMES[c])
            box.setIcon(swatch(CLASS_COLOURS[c]))
            box.setChecked(True)
            box.toggled.connect(self._on_class_box)
            cl.addWidget(box)
            self.class_boxes[c] = box
        layout.addWidget(cell_box)

        reg_box = QGroupBox("Regions")
        rl = QVBoxLayout(reg_box)
        self.regions_box = QCheckBox("Show regions (A)")
        self.regions_box.setChecked(True)
        self.regions_box.toggled.connect(self.regions_toggled)
        rl.addWidget(self.regions_box)
        row = QHBoxLayout()
        row.addWidget(QLabel("Draw as"))
        self.kind_combo = QComboBox()
        for kind in (RegionKind.TUMOUR, RegionKind.EXCLUSION, RegionKind.TUMOUR_CENTRE,
                     RegionKind.INVASIVE_MARGIN, RegionKind.TISSUE, RegionKind.OTHER):
            self.kind_combo.addItem(kind.label, kind.value)
        row.addWidget(self.kind_combo, 1)
        rl.addLayout(row)
        self.region_list = QListWidget()
        self.region_list.itemSelectionChanged.connect(self._on_region_row)
        rl.addWidget(self.region_list, 1)
        buttons = QHBoxLayout()
        self.derive_button = QPushButton("Tumour → CT + IM")
        self.derive_button.clicked.connect(self.derive_requested)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.delete_requested)
        buttons.addWidget(self.derive_button)
        buttons.addWidget(self.delete_button)
        rl.addLayout(buttons)
        layout.addWidget(reg_box, 1)

    @property
    def draw_kind(self) -> RegionKind:
        return RegionKind(self.kind_combo.currentData())

    def set_channels(self, display: DisplaySettings) -> None:
        for box in self.channel_boxes:
            box.deleteLater()
        self.channel_boxes = []
        for i, ch in enumerate(display.channels):
            box = QCheckBox(ch.name)
            box.setIcon(swatch(QColor(*ch.colour)))
            box.setChecked(ch.visible)
            box.setProperty("channel", i)
            box.toggled.connect(self._on_channel_box)
            box.setEnabled(len(display.channels) > 1)
            self.channel_layout.insertWidget(i, box)
            self.channel_boxes.append(box)

    def set_counts(self, counts: dict[int, int]) -> None:
        for c, box in self.class_boxes.items():
            box.setText(f"{CLASS_NAMES[c]}  ({counts.get(c, 0):,})")

    def set_regions(self, regions: list[Region], selected: str | None) -> None:
        self.region_list.blockSignals(True)
        self.region_list.clear()
        for r in regions:
            item = QListWidgetItem(f"{r.display_name} — {r.area_mm2:.2f} mm²")
            item.setData(Qt.ItemDataRole.UserRole, r.id)
            from app.viewer.regions_layer import KIND_COLOURS

            item.setIcon(swatch(KIND_COLOURS.get(r.kind, "#ffffff")))
            self.region_list.addItem(item)
            if r.id == selected:
                item.setSelected(True)
        self.region_list.blockSignals(False)

    def _on_channel_box(self, on: bool) -> None:
        self.channel_toggled.emit(int(self.sender().property("channel")), on)

    def _on_class_box(self, on: bool) -> None:
        box = self.sender()
        for c, b in self.class_boxes.items():
            if b is box:
                self.class_toggled.emit(c, on)

    def _on_region_row(self) -> None:
        items = self.region_list.selectedItems()
        if items:
            self.region_selected.emit(items[0].data(Qt.ItemDataRole.UserRole))
