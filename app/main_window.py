"""MainWindow: the slide view in the middle, Case/Layers docks left, Results/Analysis right.

The window makes the parts (session, view, panels, status labels), the controllers that act on
them (:mod:`app.controllers`, each given its parts in its constructor), lays them out, and wires
menus, toolbar, shortcuts and signals to the controllers; what a command does is in its
controller. Shortcuts follow QuPath where it has one (D detections, A annotations, F fill, M move,
P polygon, R rectangle, B brush, S select); H shows the density map (heat map).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QMenu, QScrollArea, QWidget

from app.case_session import CaseSession
from app.controllers import (
    AnalysisController,
    CaseController,
    ChannelChooser,
    Prompts,
    RegionsController,
    ReportController,
    ResultsController,
    SettingsController,
    SigningController,
    StatusLabels,
    ViewerController,
)
from app.controllers.signing import EDITING_TOOLS
from app.docks.analysis_dock import AnalysisPanel
from app.docks.case_dock import CasePanel
from app.docks.layers_dock import LayersPanel
from app.docks.results_dock import ScorePanel
from app.errors import REPORTER, ErrorReporter
from app.feature_vis import FeatureVisLauncher
from app.saliency_dock import SaliencyController, SaliencyPanel
from app.settings import AppSettings, SettingsStore
from app.viewer import SlideView, ToolMode

TOOL_KEYS = {ToolMode.MOVE: "M", ToolMode.SELECT: "S", ToolMode.POLYGON: "P",
             ToolMode.RECTANGLE: "R", ToolMode.BRUSH: "B"}


class MainWindow(QMainWindow):
    """The HoechstScore window: its parts, their layout and the wiring of menus and signals."""

    def __init__(self, settings_store: SettingsStore | None = None, reporter: ErrorReporter = REPORTER,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("HoechstScore")
        self.settings_store = settings_store or SettingsStore()
        self.settings: AppSettings = self.settings_store.load()
        self.reporter = reporter
        self.session = CaseSession(self.settings.store.database_url, self)
        self.view = SlideView(self)
        self.setCentralWidget(self.view)
        self.case_panel, self.layers_panel = CasePanel(), LayersPanel()
        self.score_panel, self.analysis_panel = ScorePanel(), AnalysisPanel()
        self.saliency_panel = SaliencyPanel(reporter)
        self.labels = StatusLabels.make()
        self.recent_menu = QMenu("Recent cases", self)
        self._make_controllers()
        self.settings_controller.apply_to_session()
        self._make_docks()
        self._make_actions()
        self._make_menus_and_toolbar()
        self._make_status_bar()
        self._connect()
        self.saliency.refresh_context()
        self.settings_controller.show_model()
        self.show_read_only()
        self.resize(1500, 920)
        geometry, state = self.settings_store.window()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        self.cases.refresh_list()

    # --- construction ---------------------------------------------------------------------------
    def _make_controllers(self) -> None:
        """Each controller gets the parts it acts on; none holds the window."""
        s, st, v = self.session, self.settings, self.view
        self.prompts = Prompts(self, self.reporter, st, self.settings_store, s)
        self.viewer = ViewerController(v, s, self.layers_panel, self.labels, self.prompts, self)
        self.channels = ChannelChooser(st, self.settings_store, self.prompts, self)
        self.regions = RegionsController(s, v, self.layers_panel, self.prompts, self)
        self.cases = CaseController(s, st, self.case_panel, self.analysis_panel, self.recent_menu, self.channels,
                                    self.prompts, self)
        self.analysis = AnalysisController(s, st, self.viewer, self.analysis_panel, self.layers_panel, self.labels,
                                           self.channels, self.prompts, self)
        self.results = ResultsController(s, self.score_panel, self.prompts, self)
        self.signing = SigningController(s, self.cases, self.prompts, self)
        self.report = ReportController(s, st, self.score_panel, self.prompts, self)
        self.settings_controller = SettingsController(st, self.settings_store, s, v, self.regions, self.cases,
                                                      self.analysis_panel, self.labels, self.prompts, self)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{title}Dock")
        # Each panel scrolls inside its dock, so the docks' natural heights never push the window
        # past the screen (the Case and Layers panels together are taller than a 1080-px screen).
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(widget)
        dock.setWidget(scroll)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _make_docks(self) -> None:
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.case_dock = self._dock("Case", self.case_panel, left)
        self.layers_dock = self._dock("Layers", self.layers_panel, left)
        self.results_dock = self._dock("Results", self.score_panel, right)
        self.analysis_dock = self._dock("Analysis", self.analysis_panel, right)
        self.resizeDocks([self.case_dock, self.results_dock], [320, 520], Qt.Orientation.Horizontal)
        self.resizeDocks([self.case_dock, self.layers_dock], [430, 390], Qt.Orientation.Vertical)
        self.resizeDocks([self.results_dock, self.analysis_dock], [600, 220], Qt.Orientation.Vertical)
        # The saliency dock stays hidden until an Explain action asks for it; its panel scrolls too
        # (at its natural height it grew the window past a 1080-px screen).
        self.saliency_dock = QDockWidget("Saliency", self)
        self.saliency_dock.setObjectName("SaliencyDock")
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.saliency_panel)
        self.saliency_dock.setWidget(scroll)
        self.addDockWidget(right, self.saliency_dock)
        self.saliency_dock.hide()
        self.saliency = SaliencyController(self.session, self.view, self.settings, self.saliency_panel,
                                           self.saliency_dock, FeatureVisLauncher(self.settings, self.reporter, self),
                                           self)

    def _action(self, text: str, slot: Callable[..., object],
                shortcut: str | QKeySequence | QKeySequence.StandardKey | None = None,
                checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _make_actions(self) -> None:
        a = self._action
        undo = self.regions.undo
        self.open_slide_action = a("&Open slide…", self.cases.open_slide_dialog, QKeySequence.StandardKey.Open)
        self.import_action = a("&Import regions (GeoJSON)…", self.regions.import_dialog)
        self.export_geojson_action = a("Export regions (GeoJSON)…", self.regions.export_dialog)
        self.export_csv_action = a("Export cells (CSV)…", self.results.export_csv_dialog)
        self.report_action = a("&Report…", self.report.dialog, "Ctrl+P")
        self.settings_action = a("&Settings…", self.settings_controller.dialog, "Ctrl+,")
        self.quit_action = a("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.undo_action = undo.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = undo.createRedoAction(self, "&Redo")
        self.redo_action.setShortcut(QKeySequence.StandardKey.Redo)
        self.delete_action = a("&Delete region", self.regions.delete_selected, QKeySequence.StandardKey.Delete)
        self.derive_action = a("Tumour → CT + &IM", self.regions.replace_ct_im_by_derived)
        self.cells_action = a("Show &cells", self.viewer.toggle_cells, "D", checkable=True)
        self.regions_action = a("Show &regions", self.viewer.toggle_regions, "A", checkable=True)
        self.fill_action = a("&Fill regions", self.viewer.toggle_fill, "F", checkable=True)
        for act in (self.cells_action, self.regions_action, self.fill_action):
            act.setChecked(True)
        self.density_action = a("Density &map", self.viewer.toggle_density, "H", checkable=True)
        self.fit_action = a("Zoom to &fit", self.view.fit, "Ctrl+0")
        self.contrast_action = a("&Brightness && contrast…", self.viewer.contrast_dialog, "Shift+C")
        self.run_action = a("&Run analysis", self.analysis.run, "Ctrl+R")
        self.cancel_action = a("&Cancel analysis", self.analysis.cancel)
        self.explain_action = a("E&xplain the call at a point…", self.saliency.pick_action)
        self.explain_here_action = a("Explain the call under the cursor", self.saliency.explain_under_cursor,
                                     "Shift+X")
        self.features_action = a("&Feature visualisation…", self.saliency.launcher.open)
        self.sign_action = a("&Sign case…", self.signing.sign_case)
        self.version_action = a("&New version…", self.signing.new_version)
        self.versions_action = a("&Versions…", self.signing.versions_dialog)
        self.audit_action = a("&Audit log…", self.signing.audit_dialog)
        self.add_user_action = a("Add lab &user…", self.signing.add_user_dialog)
        self.hide_action = a("Hide case from the list", self.signing.toggle_hidden)
        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[ToolMode, QAction] = {}
        for mode, key in TOOL_KEYS.items():
            act = a(mode.value.capitalize(), partial(self.choose_tool, mode), key, checkable=True)
            act.setData(mode.value)
            self.tool_group.addAction(act)
            self.tool_actions[mode] = act
        self.tool_actions[ToolMode.MOVE].setChecked(True)

    def _make_menus_and_toolbar(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for act in (self.open_slide_action, None, self.import_action, self.export_geojson_action,
                    self.export_csv_action, self.report_action, None, self.settings_action, None, self.quit_action):
            file_menu.addSeparator() if act is None else file_menu.addAction(act)
        file_menu.addMenu(self.recent_menu)
        edit = bar.addMenu("&Edit")
        for act in (self.undo_action, self.redo_action, None, self.delete_action, self.derive_action):
            edit.addSeparator() if act is None else edit.addAction(act)
        view = bar.addMenu("&View")
        for act in (self.cells_action, self.regions_action, self.fill_action, self.density_action, None,
                    self.fit_action, self.contrast_action):
            view.addSeparator() if act is None else view.addAction(act)
        windows = view.addMenu("Panels")
        for dock in (self.case_dock, self.layers_dock, self.results_dock, self.analysis_dock):
            windows.addAction(dock.toggleViewAction())
        tools = bar.addMenu("&Tools")
        for act in self.tool_actions.values():
            tools.addAction(act)
        analysis = bar.addMenu("&Analysis")
        for act in (self.run_action, self.cancel_action, None, self.explain_action, self.explain_here_action,
                    self.features_action):
            analysis.addSeparator() if act is None else analysis.addAction(act)
        case = bar.addMenu("&Case")
        for act in (self.sign_action, self.version_action, self.versions_action, self.audit_action, None,
                    self.hide_action, self.add_user_action):
            case.addSeparator() if act is None else case.addAction(act)
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("MainToolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        toolbar.addAction(self.open_slide_action)
        toolbar.addSeparator()
        for act in self.tool_actions.values():
            toolbar.addAction(act)
        toolbar.addSeparator()
        for act in (self.cells_action, self.regions_action, self.fill_action, self.density_action,
                    self.contrast_action):
            toolbar.addAction(act)
        toolbar.addSeparator()
        toolbar.addAction(self.run_action)
        toolbar.addAction(self.report_action)
        self.cases.fill_recent_menu()

    def _make_status_bar(self) -> None:
        bar = self.statusBar()
        for label in self.labels.all():
            label.setMinimumWidth(120)
            bar.addPermanentWidget(label)

    def _connect(self) -> None:
        v, s, lp = self.view, self.session, self.layers_panel
        v.cursor_moved.connect(self.viewer.on_cursor_moved)
        v.view_changed.connect(self.viewer.on_view_changed)
        v.region_drawn.connect(self.regions.on_region_drawn)
        v.region_edited.connect(self.regions.on_region_edited)
        v.region_selected.connect(self.regions.on_region_selected)
        # The case changed: its dock, title and recent list; the slide shown (the old slide's
        # region edits forgotten); the Analysis dock; then what the actions may do on it.
        s.case_changed.connect(self.cases.on_case_changed)
        s.case_changed.connect(self.viewer.on_case_changed)
        s.case_changed.connect(self.analysis.on_case_changed)
        s.case_changed.connect(self.show_read_only)
        self.viewer.slide_opened.connect(self.regions.undo.clear)
        self.cases.title_changed.connect(self.setWindowTitle)
        self.signing.case_listed.connect(self.show_read_only)
        s.regions_changed.connect(self.regions.on_regions_changed)
        s.cells_changed.connect(self.viewer.on_cells_changed)
        s.cells_changed.connect(self.analysis.on_cells_changed)
        s.scores_changed.connect(self.results.on_scores_changed)
        lp.channel_toggled.connect(self.viewer.on_channel_toggled)
        lp.contrast_requested.connect(self.viewer.contrast_dialog)
        lp.class_toggled.connect(self.viewer.on_class_toggled)
        lp.cells_toggled.connect(self.cells_action.setChecked)
        lp.cells_toggled.connect(self.viewer.toggle_cells)
        lp.regions_toggled.connect(self.regions_action.setChecked)
        lp.regions_toggled.connect(self.viewer.toggle_regions)
        lp.density_toggled.connect(self.density_action.setChecked)
        lp.density_toggled.connect(self.viewer.toggle_density)
        lp.density_marker_changed.connect(self.viewer.on_density_marker_changed)
        lp.region_selected.connect(self.view.select_region)
        lp.delete_requested.connect(self.regions.delete_selected)
        lp.derive_requested.connect(self.regions.replace_ct_im_by_derived)
        ap = self.analysis_panel
        ap.run_requested.connect(self.analysis.run)
        ap.cancel_requested.connect(self.analysis.cancel)
        ap.headline.connect(self.statusBar().showMessage)  # what the analysis does, also when its dock is hidden
        sp = self.score_panel
        sp.export_csv.connect(self.results.export_csv_dialog)
        sp.export_geojson.connect(self.regions.export_dialog)
        sp.report_requested.connect(self.report.dialog)
        cp = self.case_panel
        cp.search_changed.connect(self.cases.refresh_list)
        cp.show_hidden.toggled.connect(self.cases.refresh_hidden)
        cp.table.case_activated.connect(self.cases.open_case)
        cp.sign_requested.connect(self.signing.sign_case)
        cp.new_version_requested.connect(self.signing.new_version)
        cp.reference_toggled.connect(self.signing.set_reference)
        cp.versions_requested.connect(self.signing.versions_dialog)
        cp.audit_requested.connect(self.signing.audit_dialog)
        cp.patient_edited.connect(self.signing.save_patient)

    # --- what the actions may do now -------------------------------------------------------------
    def choose_tool(self, wanted: ToolMode, _checked: bool = False) -> None:
        """A tool action was triggered: a signed case offers a new version before an editing tool acts."""
        mode = self.signing.guard_tool(wanted)
        if mode is not wanted:
            self.tool_actions[mode].setChecked(True)
        self.view.set_tool(mode)

    def show_read_only(self) -> None:
        """Grey out what cannot act on a signed case, and tell the viewer (no vertex dragging)."""
        s = self.session
        editable = s.case is not None and not s.read_only
        self.view.read_only = not editable
        for action in (self.delete_action, self.derive_action, self.import_action, self.run_action):
            action.setEnabled(editable)
        self.sign_action.setEnabled(editable)
        self.version_action.setEnabled(s.case is not None and s.read_only)
        for action in (self.versions_action, self.audit_action, self.hide_action):
            action.setEnabled(s.case is not None)
        hidden = s.case is not None and s.case.is_hidden
        self.hide_action.setText("Show case in the list" if hidden else "Hide case from the list")
        if not editable and self.view.tool_mode in EDITING_TOOLS:
            self.tool_actions[ToolMode.MOVE].setChecked(True)
            self.view.set_tool(ToolMode.MOVE)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt name)
        self.saliency.shutdown()
        self.analysis.shutdown()
        self.settings_store.save(self.settings)
        self.settings_store.save_window(self.saveGeometry(), self.saveState())
        self.view.close_slide()
        self.session.close()
        super().closeEvent(event)
