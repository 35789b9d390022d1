"""AnalysisPanel: which model and device, Run/Cancel, progress with ETA and cell count.

A run that resumes an interrupted one (the engine's checkpoints) says so while it runs and after:
"Resumed: 40 of 120 tiles were already done". Its estimate of the time left counts only the tiles
analysed in this run, timed from the first one: counting the resumed tiles, or the model loading,
made the early estimates up to 4× too high.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.engine import BlockDone
from core.progress import Progress


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class RunEta:
    """Seconds left of one analysis run, from the tiles this run has analysed (not resumed ones).

    Tiles done before the first tile report of the run (resumed from a checkpoint) are counted in
    :attr:`resumed` and left out of the rate; the clock starts at the first tile report, so loading
    the model and finding the tissue are not in it either. ``clock`` is injected for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._first: tuple[float, int] | None = None  # (time, tiles done) at the first tile report
        self._total = 0  # units of the stage being timed
        self.resumed = 0  # tiles an earlier, interrupted run had finished
        self.resumed_blocks = 0  # its finished blocks (rows of tiles) read back from the checkpoint

    def update(self, p: Progress) -> float | None:
        """Take one progress report; the seconds left, or None before two tile reports of this run."""
        if p.total <= 0:
            return None
        if p.total != self._total:  # a new stage (the demo makes its slide, then analyses it)
            self._first, self._total = None, p.total
        if self._first is None:
            if isinstance(p, BlockDone):  # before any tile of this run: a block an earlier run finished
                self.resumed = max(self.resumed, p.done)
                self.resumed_blocks += 1
                return None
            self._first = (self._clock(), p.done)
            return None
        t0, done0 = self._first
        if p.done <= done0:
            return None
        rate = (self._clock() - t0) / (p.done - done0)
        return rate * max(0, p.total - p.done)


def resumed_words(resumed: int, total: int, blocks: int = 0) -> str:
    """"Resumed: 40 of 120 tiles were already done" (empty for a fresh run).

    A block's cells need the next row of tiles as margin, so the last resumed row is analysed
    again: with one block resumed no tile is saved, but its cells are ("``blocks``")."""
    if resumed <= 0:
        if blocks <= 0:
            return ""
        return f"Resumed: the cells of {blocks} row{'s' if blocks != 1 else ''} of tiles were already done"
    return f"Resumed: {resumed:,} of {total:,} tile{'s' if total != 1 else ''} {'were' if resumed != 1 else 'was'} already done"


class AnalysisPanel(QWidget):
    run_requested = Signal()
    cancel_requested = Signal()
    headline = Signal(str)  # one line of what the analysis is doing, for the window's status bar

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.model_label = QLabel("—")
        self.model_label.setWordWrap(True)
        self.device_label = QLabel("—")
        form.addRow("Model", self.model_label)
        form.addRow("Device", self.device_label)
        layout.addLayout(form)
        row = QHBoxLayout()
        self.run_button = QPushButton("Run analysis")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_requested)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        layout.addWidget(self.progress)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self._eta: RunEta | None = None
        self._total = 0

    def set_model(self, name: str, device: str) -> None:
        self.model_label.setText(name)
        self.device_label.setText(device)

    def reset(self) -> None:
        """Another case was opened: nothing shown here belongs to it yet."""
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText("Ready.")
        self._eta = None
        self.headline.emit("")

    def started(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._eta = RunEta(clock)
        self._total = 0
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.status.setText("Starting…")
        self.headline.emit("Analysis: starting…")

    @property
    def resumed(self) -> str:
        """The resume note of the current or last run ("" when it started afresh)."""
        eta = self._eta
        return resumed_words(eta.resumed, self._total, eta.resumed_blocks) if eta is not None else ""

    def show_progress(self, p: Progress, n_cells: int) -> None:
        if p.total > 0:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
        else:
            self.progress.setRange(0, 0)
        eta = self._eta.update(p) if self._eta else None
        self._total = max(self._total, p.total)
        extra = f" — about {_duration(eta)} left" if eta is not None else ""
        resumed = f"\n{self.resumed}." if self.resumed else ""
        cells = f"\n{n_cells:,} cells so far" if n_cells else ""
        self.status.setText(f"{p.message}{extra}{resumed}{cells}")
        self.headline.emit(f"Analysis: {p.message}{extra}" + (f" · {self.resumed}" if self.resumed else ""))

    def ended(self, message: str) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if message.startswith("Finished") else 0)
        if self.resumed and message.startswith("Finished"):
            message = f"{message} {self.resumed} (from the interrupted run)."
        self.status.setText(message)
        self.headline.emit(message.split("\n")[0])
