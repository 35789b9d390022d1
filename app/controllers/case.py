"""CaseController: opening slides and cases, and showing the case that is open.

Declared state, owned here and nowhere else:

* ``shown_case_id``: the case the window shows (its docks were reset for it): opening another
  case resets what belonged to the previous one (the Analysis dock's "Finished: … cells", the
  region undo stack), while re-showing the same case (after signing, a new version) keeps it.

The case itself (record, slide, regions, cells, scores) is the session's
(:class:`app.case_session.CaseSession`); the window's panels follow its ``case_changed`` signal
through :meth:`CaseController.on_case_changed`. Signing and versions are :mod:`app.case_actions`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QInputDialog


class CaseController(QObject):
    """Open slides and cases; show the open case (see the module docstring for its state)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.shown_case_id: int | None = None

    def refresh_list(self, text: str = "") -> None:
        w = self.window
        hidden = w.case_panel.show_hidden.isChecked()
        cases = w._try("Searching cases", lambda: w.session.store.find_cases(text or "", include_hidden=hidden))
        if cases is not None:
            w.case_panel.table.set_cases(cases)

    def refresh_hidden(self, _on: bool = False) -> None:
        w = self.window
        self.refresh_list(w.case_panel.search.text())

    def fill_recent_menu(self) -> None:
        w = self.window
        w.recent_menu.clear()
        for accession in w.settings.recent.cases:
            act = w.recent_menu.addAction(accession)
            act.triggered.connect(partial(self.open_accession, accession))

    def open_accession(self, accession: str, _checked: bool = False) -> None:
        w = self.window
        case = w._try("Opening the case", w.session.store.get_case_by_accession, accession)
        if case is not None:
            self.open_case(case.id)

    def open_slide_dialog(self) -> None:
        w = self.window
        path = w.ask_path("open", "Open slide", "", "Slides (*.tif *.tiff *.svs *.czi);;All files (*)")
        if not path:
            return
        accession, ok = QInputDialog.getText(w, "New case", "Accession number:", text=Path(path).name.split(".")[0])
        if ok and accession:
            self.open_slide_file(path, accession)

    def choose_channel(self, slide_name: str, names: list[str]) -> str | None | bool:
        """The nuclear channel of a slide with these channel names: None when the name says it
        (Hoechst/DAPI, one match), the remembered or chosen name, False when the user cancels."""
        w = self.window
        from app.dialogs.slide_questions import ChannelDialog, channel_set_key, needs_channel_choice

        if not needs_channel_choice(names):
            return None
        key = channel_set_key(names)
        remembered = w.settings.slides.nuclear_channel.get(key)
        if remembered in names:
            return remembered
        dlg = ChannelDialog(slide_name, names, parent=w)
        if not w.exec_dialog(dlg):
            return False
        if dlg.remember.isChecked():
            w.settings.slides.nuclear_channel[key] = dlg.channel()
            w.settings_store.save(w.settings)
        return dlg.channel()

    def open_slide_file(self, path: str | Path, accession: str, mpp: tuple[float, float] | None = None) -> bool:
        """Open a slide as a new case. Asks for the pixel size of an uncalibrated slide (empty, a
        sidecar's value only suggested) and for the nuclear channel when the names do not say it."""
        w = self.window
        from app.dialogs.slide_questions import PixelSizeDialog, suggested_mpp
        from core.slides import open_slide

        name = Path(path).name
        try:
            with open_slide(path, mpp=mpp) as probe:
                names, calibrated = list(probe.channel_names), probe.is_calibrated
        except Exception as exc:
            w.reporter.report(exc, w, "Opening the slide")
            return False
        source = "file"
        if not calibrated:
            dlg = PixelSizeDialog(name, suggested_mpp(path), w)
            if not w.exec_dialog(dlg):
                return False
            mpp, source = (dlg.value(), dlg.value()), dlg.source
        elif mpp is not None:
            source = "given by the user"
        channel = self.choose_channel(name, names)
        if channel is False:
            return False
        try:
            w.session.create_case(path, accession, mpp, mpp_source=source, channel=channel or None)
        except Exception as exc:
            w.reporter.report(exc, w, "Opening the slide")
            return False
        w.settings.remember("slides", str(path))
        return True

    def open_case(self, case_id: int) -> bool:
        w = self.window
        ok = w._try("Opening the case", w.session.open_case, case_id)
        opened = ok is not None or w.session.case is not None and w.session.case.id == case_id
        s = w.session
        if opened and s.channel is None and s.slide is not None and not s.read_only:
            chosen = self.choose_channel(Path(str(s.slide.path)).name, list(s.slide.channel_names))
            s.channel = chosen or None
        if opened and w.session.interrupted:
            w.analysis_panel.status.setText(
                "The last analysis of this case stopped unfinished when HoechstScore last closed (a crash or a "
                "power cut); it is marked failed. Run the analysis again: it resumes from the blocks it had "
                "finished.")
        return opened

    def on_case_changed(self) -> None:
        w = self.window
        s = w.session
        w.case_panel.show_case(s.case, s.slide_record)
        if s.case is None:
            w.show_read_only()
            return
        if self.shown_case_id != s.case.id and not w.analysis.running:
            w.analysis_panel.reset()  # the previous case's "Finished: … cells" is not this one's
        self.shown_case_id = s.case.id
        if w.view.slide is not s.slide:
            w.regions.undo.clear()  # edits of the previous slide's regions
            w.view.open_slide(s.slide)
            w._apply_layer_choices()
            w.layers_panel.set_channels(w.view.display)
            mx, _ = s.slide.mpp
            w.mpp_label.setText(f"Pixel size {mx:.3f} µm")
        w.settings.remember("cases", s.case.accession)
        self.fill_recent_menu()
        w.setWindowTitle(f"{s.case.accession} v{s.case.version} — HoechstScore" + (" (signed)" if s.read_only else ""))
        w.show_read_only()
        self.refresh_list(w.case_panel.search.text())
