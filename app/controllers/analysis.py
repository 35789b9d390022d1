"""AnalysisController: runs the analysis of the open case on the worker and shows it as it comes.

Declared state, owned here and nowhere else:

* ``runner``: the :class:`~app.workers.JobRunner` of the job running or run last (None before any);
  one job at a time (the demo pipeline runs through it too, :mod:`app.demo_runner`);
* ``partial_cells``: the cell tables of the blocks finished so far in the running analysis;
* ``partial_counts``: cells per class index so far, for the Layers dock.

It reads the window's session (case, slide, channel), settings (model, device, precision) and
panels, and reports every error through the window's one reporter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import QObject, Slot

from app.analysis_job import AnalysisOutcome, analysis_job
from app.workers import JobFactory, JobRunner
from core.classes import class_index
from core.engine import BlockDone
from core.errors import CoreError
from core.progress import Progress

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

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.runner: JobRunner | None = None
        self.partial_cells: list[pd.DataFrame] = []
        self.partial_counts: dict[int, int] = {}

    @property
    def running(self) -> bool:
        return self.runner is not None and self.runner.running

    def start_job(self, factory: JobFactory, finished: Any) -> JobRunner | None:
        """Run a job whose progress is an analysis's (tiles, blocks of cells); None if one is running."""
        w = self.window
        if self.running:
            w.reporter.report(CoreError("An analysis is already running: wait for it or cancel it."), w)
            return None
        runner = JobRunner(factory, self)
        runner.worker.progress.connect(self.on_progress)
        runner.worker.finished.connect(finished)
        runner.worker.cancelled.connect(self.on_cancelled)
        runner.worker.failed.connect(self.on_failed)
        self.runner = runner
        self._forget_partial()
        w.analysis_panel.started()
        runner.start()
        return runner

    def run(self) -> None:
        """Analyse the open case's slide with the model of the settings (asks the channel if needed)."""
        w = self.window
        s = w.session
        if s.case is None:
            w.reporter.report(CoreError("Open a slide or a case before running the analysis."), w)
            return
        if s.read_only:
            w.reporter.report(CoreError(f"Case {s.case.accession} is signed: use Case › New version."), w)
            return
        store, case_id, slide_id, slide = s.store, s.case.id, s.slide_record.id, s.slide
        if s.channel is None:
            chosen = w.cases.choose_channel(Path(str(slide.path)).name, list(slide.channel_names))
            if chosen is False:
                return
            s.channel = chosen or None
        channel, provenance = s.channel, s.analysis_parameters()
        model_dir, device, precision = w.model_dir(), w._device(), w.settings.analysis.precision

        def factory(cancel: Any) -> Any:
            return analysis_job(store, case_id, slide_id, slide, model_dir, device=device, precision=precision,
                                cancel=cancel, channel=channel, provenance=provenance)
        w._show_cells(None)
        w._show_density(None)  # the old cells' map would mislead while new cells come in
        self.start_job(factory, self.on_finished)

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()
            self.window.analysis_panel.status.setText("Cancelling…")

    def shutdown(self, ms: int = 30000) -> None:
        """Cancel a running job and wait for its thread (before the window closes)."""
        if self.running:
            self.runner.cancel()
            self.runner.wait(ms)

    # --- worker signals (UI thread) ---------------------------------------------------------------
    @Slot(object)
    def on_progress(self, p: Progress) -> None:
        w = self.window
        if isinstance(p, BlockDone) and len(p.cells):
            # Only the new block goes to the view: concatenating and re-indexing every cell so far
            # for each block cost up to 170 ms on this thread late in a large slide.
            self.partial_cells.append(p.cells)
            cls = class_ids(p.cells)
            if w.view.cells is not None:
                w.view.cells.add_cells(p.cells["x_px"].to_numpy(), p.cells["y_px"].to_numpy(), cls)
            for i, k in class_counts(cls).items():
                self.partial_counts[i] = self.partial_counts.get(i, 0) + k
            w.layers_panel.set_counts(self.partial_counts)
        n = sum(len(c) for c in self.partial_cells)
        w.analysis_panel.show_progress(p, n)

    @Slot(object)
    def on_finished(self, outcome: AnalysisOutcome) -> None:
        w = self.window
        self._forget_partial()
        words = run_words(outcome.summary.get("device", "?"), outcome.summary.get("precision"))
        w.device_label.setText(f"Device: {words}")
        w.analysis_panel.set_model(outcome.model_name, words)
        w.analysis_panel.ended(f"Finished: {len(outcome.cells):,} cells in {outcome.summary.get('seconds', 0):.0f} s.")
        w._try("Scoring", w.session.set_cells, outcome.cells,
               {"id": outcome.analysis_id, "model_name": outcome.model_name,
                "model_sha256": outcome.model_sha256, "summary": outcome.summary})

    @Slot()
    def on_cancelled(self) -> None:
        self._forget_partial()
        self.window.analysis_panel.ended("Cancelled. Nothing was changed.")
        self._show_stored_cells()

    @Slot(object)
    def on_failed(self, exc: BaseException) -> None:
        self._forget_partial()
        self.window.analysis_panel.ended("Failed: see the message.")
        self._show_stored_cells()
        self.window.reporter.report(exc, self.window, "The analysis")

    def _forget_partial(self) -> None:
        self.partial_cells = []
        self.partial_counts = {}

    def _show_stored_cells(self) -> None:
        w = self.window
        w._show_cells(w.session.cells)
        w._show_density(w.session.cells)
