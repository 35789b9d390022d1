"""What the main window's commands do: open, draw, analyse, score, export, sign (slots of MainWindow).

Every command catches errors at one place (``self.reporter``); dialogs that ask for a file are
thin wrappers over methods that take the answer as an argument, so tests drive those directly.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtWidgets import QDialog, QFileDialog, QInputDialog, QMessageBox

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

    # --- cases and slides -------------------------------------------------------------------------
    def refresh_case_list(self, text: str = "") -> None:
        hidden = self.case_panel.show_hidden.isChecked()
        cases = self._try("Searching cases", lambda: self.session.store.find_cases(text or "", include_hidden=hidden))
        if cases is not None:
            self.case_panel.table.set_cases(cases)

    def refresh_hidden(self, _on: bool = False) -> None:
        self.refresh_case_list(self.case_panel.search.text())

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for accession in self.settings.recent.cases:
            act = self.recent_menu.addAction(accession)
            act.triggered.connect(partial(self.open_accession, accession))

    def open_accession(self, accession: str, _checked: bool = False) -> None:
        case = self._try("Opening the case", self.session.store.get_case_by_accession, accession)
        if case is not None:
            self.open_case(case.id)

    def open_slide_dialog(self) -> None:
        path = self.ask_path("open", "Open slide", "", "Slides (*.tif *.tiff *.svs *.czi);;All files (*)")
        if not path:
            return
        accession, ok = QInputDialog.getText(self, "New case", "Accession number:", text=Path(path).name.split(".")[0])
        if ok and accession:
            self.open_slide_file(path, accession)

    def exec_dialog(self, dialog: QDialog) -> bool:
        """Run a modal question; kept as ``self.question`` while open (tests answer it with real clicks)."""
        self.question = dialog
        try:
            return dialog.exec() == QDialog.DialogCode.Accepted
        finally:
            self.question = None

    def choose_channel(self, slide_name: str, names: list[str]) -> str | None | bool:
        """The nuclear channel of a slide with these channel names: None when the name says it
        (Hoechst/DAPI, one match), the remembered or chosen name, False when the user cancels."""
        from app.dialogs.slide_questions import ChannelDialog, channel_set_key, needs_channel_choice

        if not needs_channel_choice(names):
            return None
        key = channel_set_key(names)
        remembered = self.settings.slides.nuclear_channel.get(key)
        if remembered in names:
            return remembered
        dlg = ChannelDialog(slide_name, names, parent=self)
        if not self.exec_dialog(dlg):
            return False
        if dlg.remember.isChecked():
            self.settings.slides.nuclear_channel[key] = dlg.channel()
            self.settings_store.save(self.settings)
        return dlg.channel()

    def open_slide_file(self, path: str | Path, accession: str, mpp: tuple[float, float] | None = None) -> bool:
        """Open a slide as a new case. Asks for the pixel size of an uncalibrated slide (empty, a
        sidecar's value only suggested) and for the nuclear channel when the names do not say it."""
        from app.dialogs.slide_questions import PixelSizeDialog, suggested_mpp
        from core.slides import open_slide

        name = Path(path).name
        try:
            with open_slide(path, mpp=mpp) as probe:
                names, calibrated = list(probe.channel_names), probe.is_calibrated
        except Exception as exc:
            self.reporter.report(exc, self, "Opening the slide")
            return False
        source = "file"
        if not calibrated:
            dlg = PixelSizeDialog(name, suggested_mpp(path), self)
            if not self.exec_dialog(dlg):
                return False
            mpp, source = (dlg.value(), dlg.value()), dlg.source
        elif mpp is not None:
            source = "given by the user"
        channel = self.choose_channel(name, names)
        if channel is False:
            return False
        try:
            self.session.create_case(path, accession, mpp, mpp_source=source, channel=channel or None)
        except Exception as exc:
            self.reporter.report(exc, self, "Opening the slide")
            return False
        self.settings.remember("slides", str(path))
        return True

    def open_case(self, case_id: int) -> bool:
        ok = self._try("Opening the case", self.session.open_case, case_id)
        opened = ok is not None or self.session.case is not None and self.session.case.id == case_id
        s = self.session
        if opened and s.channel is None and s.slide is not None and not s.read_only:
            chosen = self.choose_channel(Path(str(s.slide.path)).name, list(s.slide.channel_names))
            s.channel = chosen or None
        if opened and self.session.interrupted:
            self.analysis_panel.status.setText(
                "The last analysis of this case stopped unfinished when HoechstScore last closed (a crash or a "
                "power cut); it is marked failed. Run the analysis again: it resumes from the blocks it had "
                "finished.")
        return opened

    def on_case_changed(self) -> None:
        s = self.session
        self.case_panel.show_case(s.case, s.slide_record)
        if s.case is None:
            self.show_read_only()
            return
        if getattr(self, "_shown_case_id", None) != s.case.id and not self.analysis.running:
            self.analysis_panel.reset()  # the previous case's "Finished: … cells" is not this one's
        self._shown_case_id = s.case.id
        if self.view.slide is not s.slide:
            self.regions.undo.clear()  # edits of the previous slide's regions
            self.view.open_slide(s.slide)
            self._apply_layer_choices()
            self.layers_panel.set_channels(self.view.display)
            mx, _ = s.slide.mpp
            self.mpp_label.setText(f"Pixel size {mx:.3f} µm")
        self.settings.remember("cases", s.case.accession)
        self._fill_recent_menu()
        self.setWindowTitle(f"{s.case.accession} v{s.case.version} — HoechstScore" + (" (signed)" if s.read_only else ""))
        self.show_read_only()
        self.refresh_case_list(self.case_panel.search.text())

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
        from core.density import DENSITY_SIGMA_UM, analysed_density

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
                self.refresh_case_list()
            self.analysis_panel.set_model(self.model_label(), device_setting_words(self.settings.analysis.device))
            self.device_label.setText(f"Device: {device_setting_words(self.settings.analysis.device)}")
