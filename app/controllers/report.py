"""ReportController: the PDF report of the open case, made, previewed and saved.

Declared state: none of its own. Every report is rendered afresh from the store by
:meth:`app.case_session.CaseSession.render_report`, printed now by the computer's account (signing
is what names a lab user), so a preview and the saved file never disagree with the case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDialog

from app.dialogs.report_dialog import ReportDialog


class ReportController(QObject):
    """Report commands of the window (see the module docstring)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window

    def settings(self) -> Any:
        """The lab's report settings, printed now by the computer account."""
        from core.report import ReportSettings

        w = self.window
        r = w.settings.report
        return ReportSettings(lab_name=r.lab_name, lab_address=r.lab_address,
                              logo_path=Path(r.logo_path) if r.logo_path else None,
                              operator=f"{w.session.store.user} (computer account)",
                              printed_at=datetime.now(UTC))

    def render(self) -> bytes | None:
        """The PDF of the open case, or None (the error already shown)."""
        return self.window._try("Making the report", self.window.session.render_report, self.settings())

    def make(self, path: str | Path) -> Path | None:
        """Render and save the report to ``path`` (recorded in the store); None on an error."""
        pdf = self.render()
        return None if pdf is None else self.window._try("Saving the report", self.window.session.save_report, pdf, path)

    def dialog(self) -> None:
        """Preview the report; on Save, ask where (named after the case and version) and save it."""
        w = self.window
        pdf = self.render()
        if pdf is None:
            return
        dlg = w._try("Previewing the report", ReportDialog, pdf, w.score_panel.headline.text(), w)
        if dlg is not None and dlg.exec() == QDialog.DialogCode.Accepted:
            path = w.ask_path("save", "Save report", w.export_name("report.pdf"), "PDF (*.pdf)")
            if path:
                w._try("Saving the report", w.session.save_report, pdf, path)
