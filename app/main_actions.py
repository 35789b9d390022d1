"""What the main window's commands do: open, draw, analyse, score, export, sign (slots of MainWindow).

Every command catches errors at one place (``self.reporter``); dialogs that ask for a file are
thin wrappers over methods that take the answer as an argument, so tests drive those directly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox

from app.controllers.analysis import class_counts, class_ids, run_words
from app.dialogs.contrast_dialog import ContrastDialog
from app.dialogs.settings_dialog import SettingsDialog
from app.viewer import DisplaySettings, ToolMode
from core.errors import CoreError

log = logging.getLogger(__name__)


#: The device setting as users read it.
DEVICE_SETTING_WORDS = {"auto": "GPU if there is one, else CPU", "cpu": "CPU", "cuda": "GPU"}


def device_setting_words(setting: str) -> str:
    """The Settings' device choice in words ("cpu" -> "CPU")."""
    return DEVICE_SETTING_WORDS.get(setting, setting)


def _check_quietly(box: Any, on: bool) -> None:
    """Tick a Layers checkbox to match its menu action without it signalling back."""
    box.blockSignals(True)
    box.setChecked(on)
    box.blockSignals(False)


class ActionsMixin:
    """Slots of :class:`app.main_window.MainWindow` (kept apart to keep each module short)."""

    # --- helpers --------------------------------------------------------------------------------
    def _try(self, action: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # one place for every error: CoreError shown, others logged too
            self.reporter.report(exc, self, action)
            return None

    def notice(self, title: str, text: str) -> QMessageBox:
        """Tell the user something without blocking (window-modal, ``open()`` not ``exec()``): an
        analysis or a queued rescore keeps running; kept as ``last_notice``."""
        box = QMessageBox(QMessageBox.Icon.Information, title, text, QMessageBox.StandardButton.Ok, self)
        box.open()
        self.last_notice = box
        return box

    def export_name(self, what: str) -> str:
        """A default file name that says which case and version it came from: S24-1-v2-cells.csv."""
        case = self.session.case
        return f"{case.accession}-v{case.version}-{what}" if case is not None else what

    def ask_path(self, mode: str, title: str, name: str, filters: str) -> str:
        """A file dialog that starts in the folder last used (not the program's working folder) and
        remembers the folder of the answer; "" when cancelled."""
        folder = self.settings.slides.last_folder
        start = str(Path(folder) / name) if folder and Path(folder).is_dir() else name
        ask = QFileDialog.getOpenFileName if mode == "open" else QFileDialog.getSaveFileName
        path, _ = ask(self, title, start, filters)
        if path:
            self.settings.slides.last_folder = str(Path(path).parent)
            self.settings_store.save(self.settings)
        return path

    def exec_dialog(self, dialog: QDialog) -> bool:
        """Run a modal question; kept as ``self.question`` while open (tests answer it with real clicks)."""
        self.question = dialog
        try:
            return dialog.exec() == QDialog.DialogCode.Accepted
        finally:
            self.question = None

    def model_dir(self) -> Path:
        from core.models.runtime import default_model_dir

        return Path(self.settings.analysis.model_dir) if self.settings.analysis.model_dir else default_model_dir()

    def model_label(self) -> str:
        """The model card's name, or a note when the folder holds no model yet."""
        from core.models import load_card

        try:
            return load_card(self.model_dir()).name
        except CoreError:
            return f"No model in {self.model_dir()}"

    def _apply_settings_to_session(self) -> None:
        self.session.im_half_width_um = self.settings.analysis.im_half_width_um
        if self.session.cohort_csv != self.settings.analysis.cohort_csv:
            self.session.cohort_csv, self.session.cohort = self.settings.analysis.cohort_csv, None

    def _device(self) -> str | None:
        d = self.settings.analysis.device
        return None if d == "auto" else d

    # --- viewer -------------------------------------------------------------------------------------
    def on_cursor_moved(self, x: float, y: float) -> None:
        if self.view.mpp:
            self.pos_label.setText(f"x {x * self.view.mpp[0]:,.1f} µm  y {y * self.view.mpp[1]:,.1f} µm")

    def on_view_changed(self) -> None:
        ds = 1.0 / max(self.view.zoom, 1e-9)
        self.zoom_label.setText(f"Zoom {self.view.zoom * 100:.1f}% (downsample {ds:.2f})")

    def on_channel_toggled(self, index: int, on: bool) -> None:
        self.view.set_display(self.view.display.with_channel(index, visible=on))

    def contrast_dialog(self) -> None:
        if self.view.overview_array is None:
            return
        dlg = ContrastDialog(self.view.display, self.view.overview_array, self)
        dlg.display_changed.connect(self.on_display_changed)
        dlg.show()
        self._contrast = dlg

    def on_display_changed(self, display: DisplaySettings) -> None:
        self.view.set_display(display)

    def _apply_layer_choices(self) -> None:
        """Give a newly opened slide's layers what the user chose (they are made anew per slide)."""
        self.view_toggle_cells(self.cells_action.isChecked())
        for cls, box in self.layers_panel.class_boxes.items():
            self.on_class_toggled(cls, box.isChecked())
        self.view_toggle_regions(self.regions_action.isChecked())
        self.view_toggle_fill(self.fill_action.isChecked())
        self.view_toggle_density(self.density_action.isChecked())

    def view_toggle_cells(self, on: bool) -> None:
        if self.view.cells is not None:
            self.view.cells.setVisible(on)
        _check_quietly(self.layers_panel.cells_box, on)

    def view_toggle_regions(self, on: bool) -> None:
        if self.view.regions is not None:
            self.view.regions.set_visible(on)
        _check_quietly(self.layers_panel.regions_box, on)

    def view_toggle_density(self, on: bool) -> None:
        if self.view.density is not None:
            self.view.density.setVisible(on)
        _check_quietly(self.layers_panel.density_box, on)

    def on_density_marker_changed(self, _marker: str) -> None:
        self._show_density(self.session.cells)

    def _show_density(self, cells: pd.DataFrame | None) -> None:
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
            w, h = self.view.slide.dimensions  # type: ignore[attr-defined]
            mpp = self.view.mpp
            summary = (self.session.analysis or {}).get("summary") or {}
            overlay = self._try("Drawing the density map", analysed_density, cells, (w * mpp[0], h * mpp[1]), mpp,
                                marker, summary)
        layer.set_overlay(overlay)
        self.layers_panel.set_density_legend(layer.vmax, marker, DENSITY_SIGMA_UM)

    def view_toggle_fill(self, on: bool) -> None:
        if self.view.regions is not None:
            self.view.regions.set_filled(on)

    def on_class_toggled(self, cls: int, on: bool) -> None:
        if self.view.cells is not None:
            self.view.cells.set_class_visible(cls, on)

    def tool_from_action(self) -> None:
        wanted = ToolMode(self.sender().data())
        mode = self.guard_tool(wanted)  # a signed case offers a new version before any tool acts
        if mode is not wanted:
            self.tool_actions[mode].setChecked(True)
        self.view.set_tool(mode)

    def export_csv_dialog(self) -> None:
        path = self.ask_path("save", "Export cells", self.export_name("cells.csv"), "CSV (*.csv)")
        if path:
            self._try("Exporting cells", self.session.export_cells_csv, path)

    # --- cells and scores ---------------------------------------------------------------------------
    def _show_cells(self, cells: pd.DataFrame | None) -> None:
        if self.view.cells is None:
            return
        if cells is None or not len(cells):
            self.view.cells.set_cells(np.empty(0), np.empty(0), np.empty(0, int))
            self.layers_panel.set_counts({})
            return
        cls = class_ids(cells)
        self.view.cells.set_cells(cells["x_px"].to_numpy(), cells["y_px"].to_numpy(), cls)
        self.layers_panel.set_counts(class_counts(cls))

    def on_cells_changed(self) -> None:
        self._show_cells(self.session.cells)
        self._show_density(self.session.cells)
        summary = (self.session.analysis or {}).get("summary") or {}
        if summary.get("device"):  # the shown cells' own run: what made them, not only the setting
            run = run_words(summary["device"], summary.get("precision"))
            self.analysis_panel.set_model(self.session.analysis.get("model_name") or self.model_label(), run)
            self.device_label.setText(f"Device: {device_setting_words(self.settings.analysis.device)} · shown cells: {run}")

    def on_scores_changed(self) -> None:
        if self.session.cohort is None and self.session.case is not None:  # reopened case: not rescored yet
            self.session.cohort = self._try("Reading the reference cohort", self.session.reference_cohort)
        self.score_panel.set_cohort(self.session.cohort)  # the chart follows the cohort in use
        self.score_panel.show_scores(self.session.scores, self.session.score_warnings)

    # --- report, signing, settings ------------------------------------------------------------------
    def set_reference(self, flag: bool) -> None:
        self._try("Marking the reference case", self.session.set_reference, flag)

    def settings_dialog(self) -> None:
        dlg = SettingsDialog(self.settings, self)
        if self.exec_dialog(dlg):
            self.settings = dlg.result_settings()
            self.settings_store.save(self.settings)
            width_changed = self.session.im_half_width_um != self.settings.analysis.im_half_width_um
            self._apply_settings_to_session()
            if width_changed:
                self.regions.follow_im_width()
            if self.settings.store.database_url != self.session.database_url:
                self.view.close_slide()
                self.session.set_database_url(self.settings.store.database_url)
                self.cases.refresh_list()
            self.analysis_panel.set_model(self.model_label(), device_setting_words(self.settings.analysis.device))
            self.device_label.setText(f"Device: {device_setting_words(self.settings.analysis.device)}")
