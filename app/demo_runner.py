"""DemoRunner: ``--demo`` runs core's demo pipeline in the worker, opens the case, maybe screenshots it.

The first run makes the synthetic slide and analyses it (about a minute); the slide is shown as
soon as its file exists and the cells appear as they are found, instead of a blank viewer until
the end. Every progress line says which stage it belongs to, in the words of :func:`demo_words`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import platformdirs
from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication

from app.controllers.settings import model_dir
from core.demo import DemoSlideReady
from core.progress import CancelToken, Progress

if TYPE_CHECKING:
    from app.main_window import MainWindow
    from core.demo import DemoResult
    from core.slides import Slide

R = TypeVar("R")

log = logging.getLogger(__name__)

MAKING, ANALYSING = "Making the synthetic demo slide (first run only)", "Analysing the demo slide"


def demo_words(job: Generator[Progress, None, R]) -> Generator[Progress, None, R]:
    """The demo job with each message prefixed by its stage ("Analysing the demo slide: Tile 4 of 35").

    Reports keep their type (the cells of a BlockDone still reach the viewer)."""
    stage = MAKING
    while True:
        try:
            p = next(job)
        except StopIteration as stop:
            return stop.value
        if isinstance(p, DemoSlideReady):
            stage = ANALYSING
            yield p
            continue
        yield dataclasses.replace(p, message=f"{stage}: {p.message}")


class DemoRunner(QObject):
    """Opens the demo case in ``window``; with ``screenshot`` saves the window there and quits."""

    def __init__(self, window: MainWindow, size: int, screenshot: Path | None = None) -> None:
        super().__init__(window)
        self.window, self.size, self.screenshot = window, size, screenshot
        self._waited = 0
        self.preview: Slide | None = None  # the demo slide, shown while it is analysed (the case opens it again)

    def start(self) -> None:
        from core.demo import DemoOptions, run_demo_case

        options = DemoOptions(
            out_dir=Path(platformdirs.user_data_dir("HoechstScore", appauthor=False)) / "demo-case-app",
            db_url=self.window.session.database_url or None, size=self.size, model_dir=model_dir(self.window.settings),
            precision=self.window.settings.analysis.precision,
        )

        def factory(cancel: CancelToken) -> Generator[Progress, None, DemoResult]:
            return demo_words(run_demo_case(options, cancel))
        runner = self.window.analysis.start_job(factory, self.on_done)
        if runner is not None:
            runner.worker.failed.connect(self.on_failed)
            runner.worker.progress.connect(self.on_progress)
            runner.done.connect(self.close_preview)

    @Slot(object)
    def on_progress(self, p: Progress) -> None:
        """Show the demo slide as soon as it exists; the window adds the cells as they come."""
        if not isinstance(p, DemoSlideReady) or p.path is None or self.window.session.case is not None:
            return
        from core.slides import open_slide

        try:
            self.preview = open_slide(p.path, mpp=p.mpp)
        except Exception:  # the case opens it at the end anyway; a preview is not worth a dialog
            log.warning("Could not show the demo slide before its analysis", exc_info=True)
            return
        self.window.view.open_slide(self.preview)
        self.window.viewer.apply_layer_choices()
        self.window.view.fit()
        self.window.setWindowTitle("Demo case (being analysed) — HoechstScore")

    @Slot()
    def close_preview(self) -> None:
        """The case's own slide replaced the preview (or the run ended without one): close it."""
        preview, self.preview = self.preview, None
        if preview is not None:
            if self.window.view.slide is preview:
                self.window.view.close_slide()
            preview.close()

    @Slot(object)
    def on_done(self, result: DemoResult) -> None:
        self.window.cases.open_case(result.case_id)  # first: a newly opened case resets the Analysis dock
        self.window.analysis_panel.ended(f"Finished: demo case {result.accession}, {result.n_cells:,} cells.")
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
        if self.screenshot is None:
            return
        self.screenshot.parent.mkdir(parents=True, exist_ok=True)
        self.window.grab().save(str(self.screenshot))
        log.info("Screenshot saved to %s", self.screenshot)
        print(f"Screenshot saved to {self.screenshot}")
        self.window.close()
        QApplication.exit(0)
