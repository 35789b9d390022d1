"""LayersPanel: channels, cell classes, the density map and regions on and off; the region list and its
actions."""

from __future__ import annotations

import numpy as np
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

from app.viewer.display import DisplaySettings, pack_argb
from app.viewer.slide_view import BACKGROUND
from app.viewer.tiles import array_to_qimage
from core.classes import (
    DEFAULT_CLASS_TABLE,
    DEFAULT_MARKER_GROUPS,
    ClassTable,
    class_label,
    marker_colour,
)
from core.density_map import density_rgba
from core.regions import Region, RegionKind


def swatch(colour: QColor | str) -> QIcon:
    pix = QPixmap(12, 12)
    pix.fill(QColor(colour))
    return QIcon(pix)


def colour_bar(vmax: float, marker: str, size: tuple[int, int] = (160, 12)) -> QPixmap:
    """The density map's colour bar, 0 (left) to ``vmax`` (right), drawn by core's
    :func:`~core.density_map.density_rgba` over the viewer's background, as the map looks on glass."""
    w, h = size
    rgba = density_rgba(np.linspace(0.0, vmax, w, dtype=np.float32)[None, :], vmax, marker_colour(marker), on_dark=True)
    a = rgba[..., 3:].astype(np.float32) / 255
    bg = np.array([BACKGROUND.red(), BACKGROUND.green(), BACKGROUND.blue()], np.float32)
    rgb = np.repeat((rgba[..., :3] * a + bg * (1 - a)).round(), h, axis=0)
    return QPixmap.fromImage(array_to_qimage(pack_argb(rgb[..., 0], rgb[..., 1], rgb[..., 2])))


def format_density(value: float) -> str:
    """A colour-bar maximum for the legend: "1,500", "2.5"."""
    return f"{value:,.0f}" if value >= 10 else f"{value:g}"


class LayersPanel(QWidget):
    """Emits what the user switched; the main window applies it to the view."""

    channel_toggled = Signal(int, bool)
    contrast_requested = Signal()
    class_toggled = Signal(int, bool)
    cells_toggled = Signal(bool)
    regions_toggled = Signal(bool)
    density_toggled = Signal(bool)
    density_marker_changed = Signal(str)
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
        self._cells_layout = cl = QVBoxLayout(cell_box)
        self.cells_box = QCheckBox("Show cells (D)")
        self.cells_box.setChecked(True)
        self.cells_box.toggled.connect(self.cells_toggled)
        cl.addWidget(self.cells_box)
        self.class_table = DEFAULT_CLASS_TABLE
        self.class_boxes: dict[int, QCheckBox] = {}
        self._add_class_boxes()
        layout.addWidget(cell_box)

        dens_box = QGroupBox("Density map")
        dl = QVBoxLayout(dens_box)
        self.density_box = QCheckBox("Show density map (H)")
        self.density_box.toggled.connect(self.density_toggled)
        dl.addWidget(self.density_box)
        row = QHBoxLayout()
        row.addWidget(QLabel("Marker"))
        self.marker_combo = QComboBox()
        self.marker_combo.addItems(list(DEFAULT_MARKER_GROUPS))  # CD3+ first
        self.marker_combo.currentTextChanged.connect(self.density_marker_changed)
        row.addWidget(self.marker_combo, 1)
        dl.addLayout(row)
        self.density_bar = QLabel()
        dl.addWidget(self.density_bar)
        self.density_legend = QLabel()
        self.density_legend.setWordWrap(True)
        dl.addWidget(self.density_legend)
        self.density_vmax: float | None = None  # the legend's top, None when there is no map
        self.set_density_legend(None, self.density_marker)
        layout.addWidget(dens_box)

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

    @property
    def density_marker(self) -> str:
        return self.marker_combo.currentText()

    def set_density_legend(self, vmax: float | None, marker: str, sigma_um: float | None = None) -> None:
        """Show the map's scale: 0 to ``vmax`` cells/mm² of ``marker``, smoothed over ``sigma_um``;
        vmax None: there is no map (no cells of this marker in the analysed tissue)."""
        self.density_vmax = vmax
        if vmax is None:
            self.density_bar.clear()
            self.density_bar.hide()
            self.density_legend.setText(f"No {marker} cells in the analysed tissue: no density map.")
            return
        self.density_bar.setPixmap(colour_bar(vmax, marker))
        self.density_bar.show()
        smoothing = f" ({sigma_um:g} µm smoothing)" if sigma_um else ""
        self.density_legend.setText(f"0 – {format_density(vmax)} {marker} cells/mm²{smoothing}")

    def set_channels(self, display: DisplaySettings) -> None:
        for box in self.channel_boxes:  # out of the layout now: deleteLater waits for the event loop
            self.channel_layout.removeWidget(box)
            box.hide()
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

    def _add_class_boxes(self) -> None:
        """One check box per positive class of :attr:`class_table` (index -> its name and colour)."""
        for c in self.class_table.positive:
            box = QCheckBox(class_label(self.class_table.names[c]))
            box.setIcon(swatch(self.class_table.colours[c]))
            box.setChecked(True)
            box.toggled.connect(self._on_class_box)
            self._cells_layout.addWidget(box)
            self.class_boxes[c] = box

    def set_class_table(self, classes: ClassTable) -> None:
        """Name and colour the class boxes as the shown analysis's model does (its card's table)."""
        if classes == self.class_table:
            return
        for box in self.class_boxes.values():
            self._cells_layout.removeWidget(box)
            box.deleteLater()
        self.class_boxes = {}
        self.class_table = classes
        self._add_class_boxes()

    def set_counts(self, counts: dict[int, int]) -> None:
        for c, box in self.class_boxes.items():
            box.setText(f"{class_label(self.class_table.names[c])}  ({counts.get(c, 0):,})")

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
