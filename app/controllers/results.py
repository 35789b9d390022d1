"""ResultsController: the Results dock — the scores of the open case against the cohort in use,
and the cells exported as CSV.

Declared state: none of its own; the scores, their warnings and the cohort are the session's.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from app.case_session import CaseSession
from app.controllers.prompts import Prompts
from app.docks.results_dock import ScorePanel


class ResultsController(QObject):
    """Show the session's scores; export its cells (see the module docstring)."""

    def __init__(self, session: CaseSession, score_panel: ScorePanel, prompts: Prompts,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.score_panel, self.prompts = session, score_panel, prompts

    def on_scores_changed(self) -> None:
        s = self.session
        if s.cohort is None and s.case is not None:  # reopened case: not rescored yet
            s.cohort = self.prompts.attempt("Reading the reference cohort", s.reference_cohort)
        self.score_panel.set_cohort(s.cohort)  # the chart follows the cohort in use
        self.score_panel.show_scores(s.scores, s.score_warnings)

    def export_csv_dialog(self) -> None:
        path = self.prompts.ask_path("save", "Export cells", self.prompts.export_name("cells.csv"), "CSV (*.csv)")
        if path:
            self.prompts.attempt("Exporting cells", self.session.export_cells_csv, path)
