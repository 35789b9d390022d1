"""Controllers of the main window, one per part of its state, each the one place its fixes live.

:class:`~app.controllers.case.CaseController` opens slides and cases and shows the open one;
:class:`~app.controllers.analysis.AnalysisController` owns the running analysis (the job, the
cells so far); :class:`~app.controllers.regions.RegionsController` the region edits (their undo
stack); :class:`~app.controllers.report.ReportController` makes, previews and saves the report.
Each declares the state it owns in its docstring and ``__init__``; the window holds one of each
and wires its actions and panels to them. The viewer's layers, settings and signing are still
slots of the window (:mod:`app.main_actions`, :mod:`app.case_actions`).
"""

from app.controllers.analysis import AnalysisController
from app.controllers.case import CaseController
from app.controllers.regions import RegionsController
from app.controllers.report import ReportController

__all__ = ["AnalysisController", "CaseController", "RegionsController", "ReportController"]
