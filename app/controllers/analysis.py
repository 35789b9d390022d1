"""AnalysisController: runs the analysis of the open case on the worker and shows it as it comes.

Declared state, owned here and nowhere else:

* ``runner``: the :class:`~app.workers.JobRunner` of the job running or run last (None before any);
  one job at a time (the demo pipeline runs through it too, :mod:`app.demo_runner`);
* ``partial_cells``: the cell tables of the blocks finished so far in the running analysis;
* ``partial_counts``: cells per class index so far, for the Layers dock.

Its parts come in the constructor: the session (case, slide, channel), the settings (model,
device, precision), the viewer (cells as they come), the Analysis and Layers docks, the device
label, the channel question and the prompts (every error shown through one reporter).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pandas as pd
from PySide6.QtCore import QObject, Slot

from app.analysis_job import AnalysisOutcome, analysis_job
from app.case_session import CaseSession
from app.controllers.prompts import Prompts
from app.controllers.settings import chosen_device, device_setting_words, model_dir, model_label
from app.controllers.status import StatusLabels
from app.docks.analysis_dock import AnalysisPanel
from app.docks.layers_dock import LayersPanel
from app.settings import AppSettings
from app.workers import JobRunner
from core.classes import ClassTable, class_index
from core.engine import BlockDone
from core.errors import CoreError
from core.models.card import load_card
from core.progress import CancelToken, Progress

if TYPE_CHECKING:
    from app.controllers.case import ChannelChooser
    from app.controllers.viewer import ViewerController

R = TypeVar("R")

#: Precision names as users read them.
PRECISION_WORDS = {"fp32": "full precision", "bf16": "half precision (bfloat16)", "fp16": "half precision (float16)"}


def run_words(device: object, precision: object) -> str:
    """Device and precision of a run in words: "CPU, full precision" rather than "cpu (fp32)"."""
    d = str(device)
    where = "CPU" if d == "cpu" else ("GPU" if d.startswith("cuda") else d)
    return f"{where}, {PRECISION_WORDS.get(str(precision), str(precision or 'precision unknown'))}"


def class_ids(cells: pd.DataFrame) -> np.ndarray:
    """The class index of each row of a cell table."""
    return cells["class_id"].to_numpy() if "class_id" in cells else cells["class_name"].map(class_index).to_numpy()


def class_counts(cls: np.ndarray) -> dict[int, int]:
    """Cells per class index, for the Layers dock."""
    ids, counts = np.unique(cls, return_counts=True)
    return {int(i): int(n) for i, n in zip(ids, counts, strict=True)}


class AnalysisController(QObject):
    """Run, cancel and show the analysis (see the module docstring for the state it owns)."""

    def __init__(self, session: CaseSession, settings: AppSettings, viewer: ViewerController,
                 analysis_panel: AnalysisPanel, layers_panel: LayersPanel, labels: StatusLabels,
                 channels: ChannelChooser, prompts: Prompts, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.settings, self.viewer = session, settings, viewer
        self.analysis_panel, self.layers_panel, self.labels = analysis_panel, layers_panel, labels
        self.channels, self.prompts = channels, prompts
        self.runner: JobRunner | None = None
        self.partial_cells: list[pd.DataFrame] = []
        self.partial_counts: dict[int, int] = {}
        self.shown_case_id: int | None = None  # the case whose run the Analysis dock shows

    @property
    def running(self) -> bool:
        return self.runner is not None and self.runner.running

    def start_job(self, factory: Callable[[CancelToken], Generator[Progress, None, R]],
                  finished: Callable[[R], None]) -> JobRunner | None:
        """Run a job whose progress is an analysis's (tiles, blocks of cells); None if one is running.
        ``finished`` gets the job's result on the UI thread."""
        if self.running:
            self.prompts.report(CoreError("An analysis is already running: wait for it or cancel it."))
            return None
        runner = JobRunner(factory, self)
        runner.worker.progress.connect(self.on_progress)
        runner.worker.finished.connect(finished)
        runner.worker.cancelled.connect(self.on_cancelled)
        runner.worker.failed.connect(self.on_failed)
        self.runner = runner
        self._forget_partial()
        self.analysis_panel.started()
        runner.start()
        return runner

    def run(self) -> None:
        """Analyse the open case's slide with the model of the settings (asks the channel if needed)."""
        s = self.session
        if s.case is None or s.slide_record is None or s.slide is None:
            self.prompts.report(CoreError("Open a slide or a case before running the analysis."))
            return
        if s.read_only:
            self.prompts.report(CoreError(f"Case {s.case.accession} is signed: use Case › New version."))
            return
        store, case_id, slide_id, slide = s.store, s.case.id, s.slide_record.id, s.slide
        if s.channel is None:
            chosen = self.channels.choose(Path(str(slide.path)).name, list(slide.channel_names))
            if chosen is False:
                return
            s.channel = chosen or None
        channel, provenance = s.channel, s.analysis_parameters()
        folder, device, precision = model_dir(self.settings), chosen_device(self.settings), \
            self.settings.analysis.precision

        def factory(cancel: CancelToken) -> Generator[Progress, None, AnalysisOutcome]:
            return analysis_job(store, case_id, slide_id, slide, folder, device=device, precision=precision,
                                cancel=cancel, channel=channel, provenance=provenance)
        self.viewer.show_cells(None)
        try:  # the blocks coming in carry class indices of this model's card
            card = load_card(folder)
            self.viewer.set_class_table(ClassTable.from_names(card.classes, card.class_colours))
        except (CoreError, ValueError):
            pass  # no usable card: the job itself says so
        self.viewer.show_density(None)  # the old cells' map would mislead while new cells come in
        self.start_job(factory, self.on_finished)

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()
            self.analysis_panel.status.setText("Cancelling…")

    def shutdown(self, ms: int = 30000) -> None:
        """Cancel a running job and wait for its thread (before the window closes)."""
        if self.runner is not None and self.runner.running:
            self.runner.cancel()
            self.runner.wait(ms)

    # --- the case and its cells (session signals) ------------------------------------------------
    def on_case_changed(self) -> None:
        """Opening another case clears the previous one's "Finished: … cells"; re-showing the same
        case (after signing, a new version) keeps it, and so does a running job (the demo's)."""
        case = self.session.case
        if case is None:
            return
        if self.shown_case_id != case.id and not self.running:
            self.analysis_panel.reset()
        self.shown_case_id = case.id

    def on_cells_changed(self) -> None:
        """Name the run that made the shown cells (what made them, not only the setting)."""
        analysis, summary = self.session.analysis, self.session.summary
        if summary.device:
            run = run_words(summary.device, summary.precision)
            self.analysis_panel.set_model(analysis.model_name if analysis is not None else model_label(self.settings),
                                          run)
            self.labels.device.setText(
                f"Device: {device_setting_words(self.settings.analysis.device)} · shown cells: {run}")

    # --- worker signals (UI thread) ---------------------------------------------------------------
    @Slot(object)
    def on_progress(self, p: Progress) -> None:
        if isinstance(p, BlockDone) and len(p.cells):
            # Only the new block goes to the view: concatenating and re-indexing every cell so far
            # for each block cost up to 170 ms on this thread late in a large slide.
            self.partial_cells.append(p.cells)
            cls = self.viewer.add_cells(p.cells)
            for i, k in class_counts(cls).items():
                self.partial_counts[i] = self.partial_counts.get(i, 0) + k
            self.layers_panel.set_counts(self.partial_counts)
        n = sum(len(c) for c in self.partial_cells)
        self.analysis_panel.show_progress(p, n)

    @Slot(object)
    def on_finished(self, outcome: AnalysisOutcome) -> None:
        self._forget_partial()
        summary = outcome.summary
        words = run_words(summary.device or "?", summary.precision)
        self.labels.device.setText(f"Device: {words}")
        self.analysis_panel.set_model(outcome.record.model_name, words)
        self.analysis_panel.ended(f"Finished: {len(outcome.cells):,} cells in {summary.seconds:.0f} s.")
        self.prompts.attempt("Scoring", self.session.set_cells, outcome.cells, outcome.record)

    @Slot()
    def on_cancelled(self) -> None:
        self._forget_partial()
        self.analysis_panel.ended("Cancelled. Nothing was changed.")
        self.viewer.on_cells_changed()  # the stored cells again

    @Slot(object)
    def on_failed(self, exc: BaseException) -> None:
        self._forget_partial()
        self.analysis_panel.ended("Failed: see the message.")
        self.viewer.on_cells_changed()  # the stored cells again
        self.prompts.report(exc, "The analysis")

    def _forget_partial(self) -> None:
        self.partial_cells = []
        self.partial_counts = {}
