"""SettingsController: the Settings dialog and what a changed setting changes in the open case.

Declared state: none of its own. The settings object (:class:`app.settings.AppSettings`) is made
once by the window and shared by every controller; the dialog edits it in place, so all of them
see the new values without being told. What does need telling — the session's IM half-width and
cohort table, regions derived at the old width, another case store, the model and device labels —
is done here, in one place.

The functions :func:`model_dir`, :func:`model_label` and :func:`chosen_device` read the model and
device the settings choose; the analysis, saliency, feature visualisation and demo use them.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from app.case_session import CaseSession
from app.controllers.prompts import Prompts
from app.controllers.status import StatusLabels
from app.docks.analysis_dock import AnalysisPanel
from app.settings import AppSettings, SettingsStore
from app.viewer import SlideView
from core.errors import CoreError

if TYPE_CHECKING:
    from app.controllers.case import CaseController
    from app.controllers.regions import RegionsController

#: The device setting as users read it.
DEVICE_SETTING_WORDS = {"auto": "GPU if there is one, else CPU", "cpu": "CPU", "cuda": "GPU"}


def device_setting_words(setting: str) -> str:
    """The Settings' device choice in words ("cpu" -> "CPU")."""
    return DEVICE_SETTING_WORDS.get(setting, setting)


def model_dir(settings: AppSettings) -> Path:
    """The model folder the settings choose (the installed default when none is chosen)."""
    from core.models.runtime import default_model_dir

    return Path(settings.analysis.model_dir) if settings.analysis.model_dir else default_model_dir()


def model_label(settings: AppSettings) -> str:
    """The model card's name, or a note when the folder holds no model yet."""
    from core.models import load_card

    try:
        return load_card(model_dir(settings)).name
    except CoreError:
        return f"No model in {model_dir(settings)}"


def chosen_device(settings: AppSettings) -> str | None:
    """The device the settings name, None for "auto" (a GPU if there is one)."""
    d = settings.analysis.device
    return None if d == "auto" else d


class SettingsController(QObject):
    """Settings › dialog, and applying the settings to the session and labels (module docstring)."""

    def __init__(self, settings: AppSettings, settings_store: SettingsStore, session: CaseSession, view: SlideView,
                 regions: RegionsController, cases: CaseController, analysis_panel: AnalysisPanel,
                 labels: StatusLabels, prompts: Prompts, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings, self.settings_store, self.session, self.view = settings, settings_store, session, view
        self.regions, self.cases, self.analysis_panel = regions, cases, analysis_panel
        self.labels, self.prompts = labels, prompts

    def apply_to_session(self) -> None:
        """Give the session the settings it reads: the IM half-width and the cohort table (a new
        table drops the cohort read from the old one)."""
        self.session.im_half_width_um = self.settings.analysis.im_half_width_um
        if self.session.cohort_csv != self.settings.analysis.cohort_csv:
            self.session.cohort_csv, self.session.cohort = self.settings.analysis.cohort_csv, None

    def show_model(self) -> None:
        """The model and device of the settings in the Analysis dock and the status bar."""
        words = device_setting_words(self.settings.analysis.device)
        self.analysis_panel.set_model(model_label(self.settings), words)
        self.labels.device.setText(f"Device: {words}")

    def dialog(self) -> None:
        from app.dialogs.settings_dialog import SettingsDialog

        dlg = SettingsDialog(self.settings, self.prompts.widget)
        if not self.prompts.exec_dialog(dlg):
            return
        chosen = dlg.result_settings()
        if chosen is not self.settings:  # every controller holds this object: change it in place
            for f in fields(AppSettings):
                setattr(self.settings, f.name, getattr(chosen, f.name))
        self.settings_store.save(self.settings)
        width_changed = self.session.im_half_width_um != self.settings.analysis.im_half_width_um
        self.apply_to_session()
        if width_changed:
            self.regions.follow_im_width()
        if self.settings.store.database_url != self.session.database_url:
            self.view.close_slide()
            self.session.set_database_url(self.settings.store.database_url)
            self.cases.refresh_list()
        self.show_model()
