"""MainWindow: the slide view in the middle, Case/Layers docks left, Results/Analysis right.

Layout, menus, toolbar, status bar and shortcuts live here; what the commands do is in
:class:`app.main_actions.ActionsMixin`. Shortcuts follow QuPath where it has one
(D detections, A annotations, F fill, M move, P polygon, R rectangle, B brush, S select); H shows
the density map (heat map).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence, QUndoStack
from PySide6.QtWidgets import QDialog, QDockWidget, QFrame, QLabel, QMainWindow, QScrollArea, QWidget

from app.case_actions import CaseActions
from app.case_session import CaseSession
from app.controllers import AnalysisController, CaseController, RegionsController, ReportController
from app.docks.analysis_dock import AnalysisPanel
from app.docks.case_dock import CasePanel
from app.docks.layers_dock import LayersPanel
from app.docks.results_dock import ScorePanel
from app.errors import REPORTER, ErrorReporter
from app.main_actions import ActionsMixin, device_setting_words
from app.saliency_dock import install_saliency_tools
from app.settings import AppSettings, SettingsStore
from app.viewer import SlideView, ToolMode
from app.workers import JobRunner

TOOL_KEYS = {ToolMode.MOVE: "M", ToolMode.SELECT: "S", ToolMode.POLYGON: "P",
             ToolMode.RECTANGLE: "R", ToolMode.BRUSH: "B"}


class MainWindow(ActionsMixin, CaseActions, QMainWindow):
    """The HoechstScore window."""

    def __init__(self, settings_store: SettingsStore | None = None, reporter: ErrorReporter = REPORTER,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("HoechstScore")
        self.settings_store = settings_store or SettingsStore()
        self.settings: AppSettings = self.settings_store.load()
        self.reporter = reporter
        self.session = CaseSession(self.settings.store.database_url, self)
        self._apply_settings_to_session()
        self.regions = RegionsController(self)  # region edits and their undo stack
        self.cases = CaseController(self)  # opening slides and cases; the case shown
        self.analysis = AnalysisController(self)  # the running analysis: job, cells so far
        self.report = ReportController(self)  # the PDF report: made, previewed, saved
        self.question: QDialog | None = None  # the modal question being asked (see exec_dialog)
        self.view = SlideView(self)
        self.setCentralWidget(self.view)
        self._make_docks()
        self._make_actions()
        self._make_menus_and_toolbar()
        self._make_status_bar()
        self._connect()
        install_saliency_tools(self)
        self.show_read_only()
        self.resize(1500, 920)
        geometry, state = self.settings_store.window()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        self.cases.refresh_list()

    @property
    def undo(self) -> QUndoStack:
        """The undo stack of region edits (owned by :attr:`regions`)."""
        return self.regions.undo

    @property
    def runner(self) -> JobRunner | None:
        """The analysis job running or run last (owned by :attr:`analysis`)."""
        return self.analysis.runner

    # --- construction ---------------------------------------------------------------------------
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
        self.case_panel = CasePanel()
        self.layers_panel = LayersPanel()
        self.score_panel = ScorePanel()
        self.analysis_panel = AnalysisPanel()
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.case_dock = self._dock("Case", self.case_panel, left)
        self.layers_dock = self._dock("Layers", self.layers_panel, left)
        self.results_dock = self._dock("Results", self.score_panel, right)
        self.analysis_dock = self._dock("Analysis", self.analysis_panel, right)
        self.resizeDocks([self.case_dock, self.results_dock], [320, 520], Qt.Orientation.Horizontal)
        self.resizeDocks([self.case_dock, self.layers_dock], [430, 390], Qt.Orientation.Vertical)
        self.resizeDocks([self.results_dock, self.analysis_dock], [600, 220], Qt.Orientation.Vertical)
        self.analysis_panel.set_model(self.model_label(), device_setting_words(self.settings.analysis.device))

    def _action(self, text: str, slot: object, shortcut: str | QKeySequence | None = None,
                checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setCheckable(checkable)
        action.triggered.connect(slot)  # type: ignore[arg-type]
        self.addAction(action)
        return action

    def _make_actions(self) -> None:
        a = self._action
        self.open_slide_action = a("&Open slide…", self.cases.open_slide_dialog, QKeySequence.StandardKey.Open)
        self.import_action = a("&Import regions (GeoJSON)…", self.regions.import_dialog)
        self.export_geojson_action = a("Export regions (GeoJSON)…", self.regions.export_dialog)
        self.export_csv_action = a("Export cells (CSV)…", self.export_csv_dialog)
        self.report_action = a("&Report…", self.report.dialog, "Ctrl+P")
        self.settings_action = a("&Settings…", self.settings_dialog, "Ctrl+,")
        self.quit_action = a("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.undo_action = self.undo.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = self.undo.createRedoAction(self, "&Redo")
        self.redo_action.setShortcut(QKeySequence.StandardKey.Redo)
        self.delete_action = a("&Delete region", self.regions.delete_selected, QKeySequence.StandardKey.Delete)
        self.derive_action = a("Tumour → CT + &IM", self.regions.replace_ct_im_by_derived)
        self.cells_action = a("Show &cells", self.view_toggle_cells, "D", checkable=True)
        self.regions_action = a("Show &regions", self.view_toggle_regions, "A", checkable=True)
        self.fill_action = a("&Fill regions", self.view_toggle_fill, "F", checkable=True)
        for act in (self.cells_action, self.regions_action, self.fill_action):
            act.setChecked(True)
        self.density_action = a("Density &map", self.view_toggle_density, "H", checkable=True)
        self.fit_action = a("Zoom to &fit", self.view.fit, "Ctrl+0")
        self.contrast_action = a("&Brightness && contrast…", self.contrast_dialog, "Shift+C")
        self.run_action = a("&Run analysis", self.analysis.run, "Ctrl+R")
        self.cancel_action = a("&Cancel analysis", self.analysis.cancel)
        self.sign_action = a("&Sign case…", self.sign_case)
        self.version_action = a("&New version…", self.new_version)
        self.versions_action = a("&Versions…", self.versions_dialog)
        self.audit_action = a("&Audit log…", self.audit_dialog)
        self.add_user_action = a("Add lab &user…", self.add_user_dialog)
        self.hide_action = a("Hide case from the list", self.toggle_hidden)
        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[ToolMode, QAction] = {}
        for mode, key in TOOL_KEYS.items():
            act = a(mode.value.capitalize(), self.tool_from_action, key, checkable=True)
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
        self.recent_menu = file_menu.addMenu("Recent cases")
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
        analysis.addAction(self.run_action)
        analysis.addAction(self.cancel_action)
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
        self.pos_label, self.zoom_label, self.mpp_label, self.device_label = (QLabel() for _ in range(4))
        for label in (self.pos_label, self.zoom_label, self.mpp_label, self.device_label):
            label.setMinimumWidth(120)
            bar.addPermanentWidget(label)
        self.device_label.setText(f"Device: {device_setting_words(self.settings.analysis.device)}")

    def _connect(self) -> None:
        v, s, lp = self.view, self.session, self.layers_panel
        v.cursor_moved.connect(self.on_cursor_moved)
        v.view_changed.connect(self.on_view_changed)
        v.region_drawn.connect(self.regions.on_region_drawn)
        v.region_edited.connect(self.regions.on_region_edited)
        v.region_selected.connect(self.regions.on_region_selected)
        s.case_changed.connect(self.cases.on_case_changed)
        s.regions_changed.connect(self.regions.on_regions_changed)
        s.cells_changed.connect(self.on_cells_changed)
        s.scores_changed.connect(self.on_scores_changed)
        lp.channel_toggled.connect(self.on_channel_toggled)
        lp.contrast_requested.connect(self.contrast_dialog)
        lp.class_toggled.connect(self.on_class_toggled)
        lp.cells_toggled.connect(self.cells_action.setChecked)
        lp.cells_toggled.connect(self.view_toggle_cells)
        lp.regions_toggled.connect(self.regions_action.setChecked)
        lp.regions_toggled.connect(self.view_toggle_regions)
        lp.density_toggled.connect(self.density_action.setChecked)
        lp.density_toggled.connect(self.view_toggle_density)
        lp.density_marker_changed.connect(self.on_density_marker_changed)
        lp.region_selected.connect(self.view.select_region)
        lp.delete_requested.connect(self.regions.delete_selected)
        lp.derive_requested.connect(self.regions.replace_ct_im_by_derived)
        ap = self.analysis_panel
        ap.run_requested.connect(self.analysis.run)
        ap.cancel_requested.connect(self.analysis.cancel)
        ap.headline.connect(self.statusBar().showMessage)  # what the analysis does, also when its dock is hidden
        sp = self.score_panel
        sp.export_csv.connect(self.export_csv_dialog)
        sp.export_geojson.connect(self.regions.export_dialog)
        sp.report_requested.connect(self.report.dialog)
        cp = self.case_panel
        cp.search_changed.connect(self.cases.refresh_list)
        cp.show_hidden.toggled.connect(self.cases.refresh_hidden)
        cp.table.case_activated.connect(self.cases.open_case)
        cp.sign_requested.connect(self.sign_case)
        cp.new_version_requested.connect(self.new_version)
        cp.reference_toggled.connect(self.set_reference)
        cp.versions_requested.connect(self.versions_dialog)
        cp.audit_requested.connect(self.audit_dialog)
        cp.patient_edited.connect(self.save_patient)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt name)
        self.analysis.shutdown()
        self.settings_store.save(self.settings)
        self.settings_store.save_window(self.saveGeometry(), self.saveState())
        self.view.close_slide()
        self.session.close()
        super().closeEvent(event)
