"""DemoRunner: ``--demo`` runs core's demo pipeline in the worker, opens the case, maybe screenshots it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import platformdirs
from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication

from core.progress import CancelToken

log = logging.getLogger(__name__)


class DemoRunner(QObject):
    """Opens the demo case in ``window``; with ``screenshot`` saves the window there and quits."""

    def __init__(self, window: Any, size: int, screenshot: Path | None = None) -> None:
        super().__init__(window)
        self.window, self.size, self.screenshot = window, size, screenshot
        self._waited = 0

    def start(self) -> None:
        from core.demo import DemoOptions, run_demo_case

        options = DemoOptions(
            out_dir=Path(platformdirs.user_data_dir("HoechstScore", appauthor=False)) / "demo-case-app",
            db_url=self.window.session.database_url or None, size=self.size, model_dir=self.window.model_dir(),
            precision=self.window.settings.analysis.precision,
        )

        def factory(cancel: CancelToken) -> Any:
            return run_demo_case(options, cancel)
        runner = self.window.start_job(factory, self.on_done)
        if runner is not None:
            runner.worker.failed.connect(self.on_failed)

    @Slot(object)
    def on_done(self, result: Any) -> None:
        self.window.analysis_panel.ended(f"Finished: demo case {result.accession}, {result.n_cells:,} cells.")
        self.window.open_case(result.case_id)
        if self.screenshot is not None:
            QTimer.singleShot(300, self._fit_then_shoot)

    def _fit_then_shoot(self) -> None:
        self.window.view.fit()
        QTimer.singleShot(300, self._shoot_when_ready)

    @Slot(object)
    def on_failed(self, _exc: object) -> None:
        if self.screenshot is not None:
            QApplication.exit(1)

    def _shoot_when_ready(self) -> None:
        loader = self.window.view.loader
        busy = loader is not None and loader.pool.activeThreadCount() > 0
        if busy and self._waited < 50:
            self._waited += 1
            QTimer.singleShot(200, self._shoot_when_ready)
            return
        QTimer.singleShot(300, self._shoot)

    def _shoot(self) -> None:
        self.screenshot.parent.mkdir(parents=True, exist_ok=True)
        self.window.grab().save(str(self.screenshot))
        log.info("Screenshot saved to %s", self.screenshot)
        print(f"Screenshot saved to {self.screenshot}")
        self.window.close()
        QApplication.exit(0)
