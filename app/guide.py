"""GuideRecorder: ``--guide-screenshots DIR`` saves one picture per step of docs/user-guide.md.

It opens the demo case the way ``--demo`` does, then sets the window up as each step of the guide
describes and grabs it, so the guide's pictures always show the current app.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication, QTabWidget, QWidget

from app.demo_runner import DemoRunner
from app.viewer import ToolMode

if TYPE_CHECKING:
    from app.main_window import MainWindow


class GuideRecorder(QObject):
    def __init__(self, window: MainWindow, out_dir: Path, size: int) -> None:
        super().__init__(window)
        self.window, self.out_dir = window, out_dir
        self.demo = DemoRunner(window, size, None)
        self.steps: list[tuple[str, Callable[[], QWidget | None]]] = [
            ("screenshot-guide-01-open-slide.png", self._open_slide),
            ("screenshot-guide-02-run-analysis.png", self._analysis),
            ("screenshot-guide-03-draw-tumour.png", self._draw_tumour),
            ("screenshot-guide-04-read-scores.png", self._scores),
            ("screenshot-guide-05-sign-and-report.png", self._report),
        ]

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.demo.start()
        runner = self.window.analysis.runner
        if runner is not None:
            runner.done.connect(self._begin)

    def _begin(self) -> None:
        QTimer.singleShot(1500, self._next)

    def _next(self) -> None:
        if not self.steps:
            self.window.close()
            QApplication.exit(0)
            return
        name, prepare = self.steps.pop(0)
        target = prepare() or self.window
        QTimer.singleShot(1500, lambda: self._grab(name, target))

    def _grab(self, name: str, target: QWidget) -> None:
        target.grab().save(str(self.out_dir / name))
        print(f"Saved {self.out_dir / name}")
        if target is not self.window:
            target.close()
        self._next()

    # --- the steps --------------------------------------------------------------------------------
    def _open_slide(self) -> None:
        w = self.window
        w.cells_action.setChecked(False)
        w.viewer.toggle_cells(False)
        w.regions_action.setChecked(False)
        w.viewer.toggle_regions(False)
        w.view.fit()

    def _analysis(self) -> None:
        w = self.window
        w.cells_action.setChecked(True)
        w.viewer.toggle_cells(True)
        w.analysis_dock.raise_()

    def _draw_tumour(self) -> None:
        w = self.window
        w.regions_action.setChecked(True)
        w.viewer.toggle_regions(True)
        w.tool_actions[ToolMode.POLYGON].trigger()
        tumour = [r for r in w.session.regions if r.kind.value == "tumour"]
        if tumour and w.view.mpp:
            x0, y0, x1, y1 = tumour[0].geometry.bounds
            w.view.center_on_px(x0 / w.view.mpp[0], (y0 + y1) / 2 / w.view.mpp[1])
            w.view.set_zoom(w.view.fit_zoom() * 2.5)

    def _scores(self) -> None:
        w = self.window
        w.tool_actions[ToolMode.MOVE].trigger()
        w.view.fit()
        tab_widget = w.score_panel.findChild(QTabWidget)
        if tab_widget is not None:
            tab_widget.setCurrentIndex(1)
        w.results_dock.raise_()

    def _report(self) -> QWidget | None:
        from app.dialogs.report_dialog import ReportDialog

        w = self.window
        pdf = w.report.render()
        if pdf is None:
            return None
        dlg = ReportDialog(pdf, w.score_panel.headline.text(), w)
        dlg.show()
        return dlg
