"""ViewerController: what the slide view shows — the open slide, its layers, the cells and the density map.

Declared state, owned here and nowhere else:

* ``cells_visible``, ``regions_visible``, ``regions_filled``, ``density_visible``: the user's layer
  choices (View menu, Layers dock); the layers are made anew for each slide and get them again
  (:meth:`apply_layer_choices`);
* ``contrast``: the Brightness & contrast dialog last opened (None before).

It reads the session's slide, cells and analysis summary and writes the view, the Layers dock and
the position/zoom/pixel-size labels. ``slide_opened`` tells others (the region undo stack) that
the view now shows another slide.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QCheckBox

from app.case_session import CaseSession
from app.controllers.analysis import class_counts, class_ids
from app.controllers.prompts import Prompts
from app.controllers.status import StatusLabels
from app.dialogs.contrast_dialog import ContrastDialog
from app.docks.layers_dock import LayersPanel
from app.viewer import DisplaySettings, SlideView
from core.classes import ClassTable
from core.jsontypes import JSONDict, as_mapping


def _check_quietly(box: QCheckBox, on: bool) -> None:
    """Tick a Layers checkbox to match its menu action without it signalling back."""
    box.blockSignals(True)
    box.setChecked(on)
    box.blockSignals(False)


class ViewerController(QObject):
    """The slide view's layers and labels (see the module docstring for the state it owns)."""

    slide_opened = Signal()  # the view shows another slide (the previous one's edits no longer apply)

    def __init__(self, view: SlideView, session: CaseSession, layers_panel: LayersPanel, labels: StatusLabels,
                 prompts: Prompts, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view, self.session, self.layers_panel = view, session, layers_panel
        self.labels, self.prompts = labels, prompts
        self.cells_visible = self.regions_visible = self.regions_filled = True
        self.density_visible = False
        self.contrast: ContrastDialog | None = None

    # --- the open slide -------------------------------------------------------------------------
    def on_case_changed(self) -> None:
        """Show the session's slide when it is not the one shown, with the user's layer choices."""
        s, view = self.session, self.view
        if s.case is None or s.slide is None or view.slide is s.slide:
            return
        view.open_slide(s.slide)
        self.slide_opened.emit()
        self.apply_layer_choices()
        self.layers_panel.set_channels(view.display)
        if s.slide.mpp is not None:  # a case's slide always has one (asked for when the file has none)
            self.labels.pixel_size.setText(f"Pixel size {s.slide.mpp[0]:.3f} µm")

    def on_cursor_moved(self, x: float, y: float) -> None:
        if self.view.mpp:
            self.labels.position.setText(f"x {x * self.view.mpp[0]:,.1f} µm  y {y * self.view.mpp[1]:,.1f} µm")

    def on_view_changed(self) -> None:
        ds = 1.0 / max(self.view.zoom, 1e-9)
        self.labels.zoom.setText(f"Zoom {self.view.zoom * 100:.1f}% (downsample {ds:.2f})")

    # --- channels and contrast ------------------------------------------------------------------
    def on_channel_toggled(self, index: int, on: bool) -> None:
        self.view.set_display(self.view.display.with_channel(index, visible=on))

    def contrast_dialog(self) -> None:
        if self.view.overview_array is None:
            return
        dlg = ContrastDialog(self.view.display, self.view.overview_array, self.prompts.widget)
        dlg.display_changed.connect(self.on_display_changed)
        dlg.show()
        self.contrast = dlg

    def on_display_changed(self, display: DisplaySettings) -> None:
        self.view.set_display(display)

    # --- layers ---------------------------------------------------------------------------------
    def apply_layer_choices(self) -> None:
        """Give a newly opened slide's layers what the user chose (they are made anew per slide)."""
        self.toggle_cells(self.cells_visible)
        for cls, box in self.layers_panel.class_boxes.items():
            self.on_class_toggled(cls, box.isChecked())
        self.toggle_regions(self.regions_visible)
        self.toggle_fill(self.regions_filled)
        self.toggle_density(self.density_visible)

    def toggle_cells(self, on: bool) -> None:
        self.cells_visible = on
        if self.view.cells is not None:
            self.view.cells.setVisible(on)
        _check_quietly(self.layers_panel.cells_box, on)

    def toggle_regions(self, on: bool) -> None:
        self.regions_visible = on
        if self.view.regions is not None:
            self.view.regions.set_visible(on)
        _check_quietly(self.layers_panel.regions_box, on)

    def toggle_density(self, on: bool) -> None:
        self.density_visible = on
        if self.view.density is not None:
            self.view.density.setVisible(on)
        _check_quietly(self.layers_panel.density_box, on)

    def toggle_fill(self, on: bool) -> None:
        self.regions_filled = on
        if self.view.regions is not None:
            self.view.regions.set_filled(on)

    def on_class_toggled(self, cls: int, on: bool) -> None:
        if self.view.cells is not None:
            self.view.cells.set_class_visible(cls, on)

    def on_density_marker_changed(self, _marker: str) -> None:
        self.show_density(self.session.cells)

    # --- cells and their density ----------------------------------------------------------------
    def on_cells_changed(self) -> None:
        """The session's cell table was replaced: show it and its density map."""
        self.show_cells(self.session.cells)
        self.show_density(self.session.cells)

    def show_cells(self, cells: pd.DataFrame | None) -> None:
        """Put ``cells`` in the cell layer and their counts per class in the Layers dock; None clears."""
        if self.view.cells is None:
            return
        self.set_class_table(self.session.summary.class_table)  # the shown analysis's model's classes
        if cells is None or not len(cells):
            self.view.cells.set_cells(np.empty(0), np.empty(0), np.empty(0, int))
            self.layers_panel.set_counts({})
            return
        cls = class_ids(cells)
        self.view.cells.set_cells(cells["x_px"].to_numpy(), cells["y_px"].to_numpy(), cls)
        self.layers_panel.set_counts(class_counts(cls))

    def set_class_table(self, classes: ClassTable) -> None:
        """Colour and name the cell classes as ``classes`` says (the model card of the cells shown
        or coming in): a class index means what that model's card says."""
        if self.view.cells is not None:
            self.view.cells.set_class_table(classes)
        self.layers_panel.set_class_table(classes)

    def add_cells(self, cells: pd.DataFrame) -> np.ndarray:
        """Add one block of a running analysis to the cell layer; returns the block's class ids."""
        cls = class_ids(cells)
        if self.view.cells is not None:
            self.view.cells.add_cells(cells["x_px"].to_numpy(), cells["y_px"].to_numpy(), cls)
        return cls

    def show_density(self, cells: pd.DataFrame | None) -> None:
        """Recompute the density map of the marker chosen in the Layers dock (core's raster, limited
        to the analysed tissue when the shown analysis stored its mask) and its legend; no cells, no map.

        Called when the cells or the marker change, not per frame: ~60 ms for 1M cells.
        """
        from core.density_map import DENSITY_SIGMA_UM, analysed_density

        layer, marker = self.view.density, self.layers_panel.density_marker
        if layer is None:
            return
        overlay = None
        if cells is not None and len(cells) and self.view.slide is not None and self.view.mpp:
            w, h = self.view.slide.dimensions
            mpp = self.view.mpp
            mask = self.session.summary.tissue_mask  # all analysed_density reads of the summary
            summary: JSONDict = {} if mask is None else {"tissue_mask": dict(as_mapping(mask))}
            overlay = self.prompts.attempt("Drawing the density map", analysed_density, cells,
                                           (w * mpp[0], h * mpp[1]), mpp, marker, summary)
        layer.set_overlay(overlay)
        self.layers_panel.set_density_legend(layer.vmax, marker, DENSITY_SIGMA_UM)
