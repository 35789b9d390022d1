"""CaseController: opening slides and cases, and the case list, recent cases and Case dock of the open one.

Declared state: none of its own beyond its parts. The case itself (record, slide, regions, cells,
scores) is the session's (:class:`app.case_session.CaseSession`); the Case dock, the recent-cases
menu and the window title follow its ``case_changed`` signal through
:meth:`CaseController.on_case_changed` (the window title through ``title_changed``, which the
window connects to ``setWindowTitle``). What the view shows for the case is
:class:`~app.controllers.viewer.ViewerController`'s; signing and versions are
:class:`~app.controllers.signing.SigningController`'s.

:class:`ChannelChooser` asks for a slide's nuclear channel when its names do not say it; both
opening a slide and running the analysis ask through it.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Literal

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QInputDialog, QMenu

from app.case_session import CaseSession
from app.controllers.prompts import Prompts
from app.docks.analysis_dock import AnalysisPanel
from app.docks.case_dock import CasePanel
from app.settings import AppSettings, SettingsStore


class ChannelChooser(QObject):
    """The nuclear channel of a slide: named by the slide, remembered, or asked."""

    def __init__(self, settings: AppSettings, settings_store: SettingsStore, prompts: Prompts,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings, self.settings_store, self.prompts = settings, settings_store, prompts

    def choose(self, slide_name: str, names: list[str]) -> str | Literal[False] | None:
        """The nuclear channel of a slide with these channel names: None when the name says it
        (Hoechst/DAPI, one match), the remembered or chosen name, False when the user cancels."""
        from app.dialogs.slide_questions import ChannelDialog, channel_set_key, needs_channel_choice

        if not needs_channel_choice(names):
            return None
        key = channel_set_key(names)
        remembered = self.settings.slides.nuclear_channel.get(key)
        if remembered in names:
            return remembered
        dlg = ChannelDialog(slide_name, names, parent=self.prompts.widget)
        if not self.prompts.exec_dialog(dlg):
            return False
        if dlg.remember.isChecked():
            self.settings.slides.nuclear_channel[key] = dlg.channel()
            self.settings_store.save(self.settings)
        return dlg.channel()


class CaseController(QObject):
    """Open slides and cases; show the open case in the Case dock and the recent-cases menu."""

    title_changed = Signal(str)  # the window title for the open case

    def __init__(self, session: CaseSession, settings: AppSettings, case_panel: CasePanel,
                 analysis_panel: AnalysisPanel, recent_menu: QMenu, channels: ChannelChooser, prompts: Prompts,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.settings, self.case_panel = session, settings, case_panel
        self.analysis_panel, self.recent_menu = analysis_panel, recent_menu
        self.channels, self.prompts = channels, prompts

    def refresh_list(self, text: str = "") -> None:
        hidden = self.case_panel.show_hidden.isChecked()
        store = self.session.store
        cases = self.prompts.attempt("Searching cases", lambda: store.find_cases(text or "", include_hidden=hidden))
        if cases is not None:
            self.case_panel.table.set_cases(cases)

    def refresh_hidden(self, _on: bool = False) -> None:
        """The case list again, with the search text typed (after "show hidden" or hiding a case)."""
        self.refresh_list(self.case_panel.search.text())

    def fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for accession in self.settings.recent.cases:
            act = self.recent_menu.addAction(accession)
            act.triggered.connect(partial(self.open_accession, accession))

    def open_accession(self, accession: str, _checked: bool = False) -> None:
        case = self.prompts.attempt("Opening the case", self.session.store.get_case_by_accession, accession)
        if case is not None:
            self.open_case(case.id)

    def open_slide_dialog(self) -> None:
        path = self.prompts.ask_path("open", "Open slide", "", "Slides (*.tif *.tiff *.svs *.czi);;All files (*)")
        if not path:
            return
        accession, ok = QInputDialog.getText(self.prompts.widget, "New case", "Accession number:",
                                             text=Path(path).name.split(".")[0])
        if ok and accession:
            self.open_slide_file(path, accession)

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
            self.prompts.report(exc, "Opening the slide")
            return False
        source = "file"
        if not calibrated:
            dlg = PixelSizeDialog(name, suggested_mpp(path), self.prompts.widget)
            if not self.prompts.exec_dialog(dlg):
                return False
            mpp, source = (dlg.value(), dlg.value()), dlg.source
        elif mpp is not None:
            source = "given by the user"
        channel = self.channels.choose(name, names)
        if channel is False:
            return False
        try:
            self.session.create_case(path, accession, mpp, mpp_source=source, channel=channel or None)
        except Exception as exc:
            self.prompts.report(exc, "Opening the slide")
            return False
        self.settings.remember("slides", str(path))
        return True

    def open_case(self, case_id: int) -> bool:
        s = self.session
        self.prompts.attempt("Opening the case", s.open_case, case_id)
        opened = s.case is not None and s.case.id == case_id  # open even when a later step failed
        if opened and s.channel is None and s.slide is not None and not s.read_only:
            chosen = self.channels.choose(Path(str(s.slide.path)).name, list(s.slide.channel_names))
            s.channel = chosen or None
        if opened and s.interrupted:
            self.analysis_panel.status.setText(
                "The last analysis of this case stopped unfinished when HoechstScore last closed (a crash or a "
                "power cut); it is marked failed. Run the analysis again: it resumes from the blocks it had "
                "finished.")
        return opened

    def on_case_changed(self) -> None:
        s = self.session
        self.case_panel.show_case(s.case, s.slide_record)
        if s.case is None:
            return
        self.settings.remember("cases", s.case.accession)
        self.fill_recent_menu()
        self.title_changed.emit(
            f"{s.case.accession} v{s.case.version} — HoechstScore" + (" (signed)" if s.read_only else ""))
        self.refresh_hidden()
