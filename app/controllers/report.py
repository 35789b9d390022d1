"""ReportController: the PDF report of the open case, made, previewed and saved.

Declared state: none of its own. Every report is rendered afresh from the store by
:meth:`app.case_session.CaseSession.render_report`, printed now by the computer's account (signing
is what names a lab user), so a preview and the saved file never disagree with the case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDialog

from app.case_session import CaseSession
from app.controllers.prompts import Prompts
from app.dialogs.report_dialog import ReportDialog
from app.docks.results_dock import ScorePanel
from app.settings import AppSettings

if TYPE_CHECKING:
    from core.report import ReportSettings


class ReportController(QObject):
    """Report commands of the window (see the module docstring)."""

    def __init__(self, session: CaseSession, settings: AppSettings, score_panel: ScorePanel, prompts: Prompts,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.settings, self.score_panel, self.prompts = session, settings, score_panel, prompts

    def report_settings(self) -> ReportSettings:
        """The lab's report settings, printed now by the computer account."""
        from core.report import ReportSettings

        r = self.settings.report
        return ReportSettings(lab_name=r.lab_name, lab_address=r.lab_address,
                              logo_path=Path(r.logo_path) if r.logo_path else None,
                              operator=f"{self.session.store.user} (computer account)",
                              printed_at=datetime.now(UTC))

    def render(self) -> bytes | None:
        """The PDF of the open case, or None (the error already shown)."""
        return self.prompts.attempt("Making the report", self.session.render_report, self.report_settings())

    def make(self, path: str | Path) -> Path | None:
        """Render and save the report to ``path`` (recorded in the store); None on an error."""
        pdf = self.render()
        return None if pdf is None else self.prompts.attempt("Saving the report", self.session.save_report, pdf, path)

    def dialog(self) -> None:
        """Preview the report; on Save, ask where (named after the case and version) and save it."""
        pdf = self.render()
        if pdf is None:
            return
        dlg = self.prompts.attempt("Previewing the report", ReportDialog, pdf, self.score_panel.headline.text(),
                                   self.prompts.widget)
        if dlg is not None and dlg.exec() == QDialog.DialogCode.Accepted:
            path = self.prompts.ask_path("save", "Save report", self.prompts.export_name("report.pdf"), "PDF (*.pdf)")
            if path:
                self.prompts.attempt("Saving the report", self.session.save_report, pdf, path)
