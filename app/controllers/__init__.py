"""Controllers of the main window, one per part of its state, each the one place its fixes live.

Each controller gets its parts in its constructor — the session, the settings, the view, the
panels it writes, the :class:`~app.controllers.prompts.Prompts` that shows errors and asks
questions, and the other controllers it calls — and never reaches into the window.
:class:`app.main_window.MainWindow` only makes the parts, lays them out and wires menus, actions
and signals to them.

* :class:`~app.controllers.viewer.ViewerController`: what the slide view shows (slide, layers, cells, density);
* :class:`~app.controllers.case.CaseController`: opening slides and cases, the case list, recent cases;
* :class:`~app.controllers.analysis.AnalysisController`: the running analysis (the job, cells so far);
* :class:`~app.controllers.regions.RegionsController`: region edits and their undo stack;
* :class:`~app.controllers.results.ResultsController`: the scores shown, the cells exported;
* :class:`~app.controllers.signing.SigningController`: the Case menu (sign, versions, audit, hide);
* :class:`~app.controllers.report.ReportController`: the PDF report, made, previewed and saved;
* :class:`~app.controllers.settings.SettingsController`: the Settings dialog and what it changes;
* :class:`app.saliency_dock.SaliencyController`: the saliency dock's picking and context.
"""

from app.controllers.analysis import AnalysisController
from app.controllers.case import CaseController, ChannelChooser
from app.controllers.prompts import Prompts
from app.controllers.regions import RegionsController
from app.controllers.report import ReportController
from app.controllers.results import ResultsController
from app.controllers.settings import SettingsController
from app.controllers.signing import SigningController
from app.controllers.status import StatusLabels
from app.controllers.viewer import ViewerController

__all__ = ["AnalysisController", "CaseController", "ChannelChooser", "Prompts", "RegionsController",
           "ReportController", "ResultsController", "SettingsController", "SigningController", "StatusLabels",
           "ViewerController"]
