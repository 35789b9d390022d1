"""Feature visualisation dialog (paper section 5.1), for technical users checking what a model learned.

Optimises an input image so each quadrant maximises one positive class's logits
(:func:`core.saliency.feature_visualisation_job`), in the background with progress and cancel, then
shows the image (quadrant k = class k, row by row) and the loss curve, and saves the image as PNG.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QCloseEvent, QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.controllers.settings import chosen_device, model_dir
from app.errors import REPORTER, ErrorReporter
from app.settings import AppSettings
from app.workers import JobRunner
from core.classes import POSITIVE_CLASSES, class_label
from core.errors import CoreError
from core.models.runtime import LoadedModel, load_model
from core.progress import CancelToken, Eta, Progress
from core.saliency.features import FeatureVisResult, feature_visualisation_job

PAPER_STEPS = 10_000
STEPS_NOTE = (
    "The paper ran 10,000 steps. Each step is one forward and one backward pass of the model: on a GPU "
    "10,000 steps take minutes, on a CPU they can take hours (the time left is shown once it runs). "
    "A few hundred steps already show the main textures."
)


def feature_vis_job(model: LoadedModel | Path, device: str | None, steps: int, lr: float, start_value: float,
                    seed: int, cancel: CancelToken) -> Generator[Progress, None, tuple[FeatureVisResult, tuple[str, ...]]]:
    """Load the model if given a folder, then optimise; returns the result and the quadrant class names."""
    if not isinstance(model, LoadedModel):
        yield Progress(0, 0, "Loading the model…")
        model = load_model(model, device=device, precision="fp32")
    cancel.check()
    names = tuple(model.card.classes)
    classes = tuple(c for c in POSITIVE_CLASSES if c < len(names))[:4]
    result = yield from feature_visualisation_job(
        model.module, size=model.card.patch_size, steps=steps, lr=lr, start_value=start_value, classes=classes,
        seed=seed, cancel=cancel, report_every=max(1, min(50, steps // 100)))
    return result, tuple(names[c] for c in result.classes)


def grey_qimage(image: np.ndarray) -> QImage:
    """(H, W) float in [0, 1] → 8-bit greyscale QImage (a deep copy)."""
    a = np.ascontiguousarray((np.clip(image, 0, 1) * 255).astype(np.uint8))
    h, w = a.shape
    return QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


class FeatureVisDialog(QDialog):
    """Steps, learning rate, start value and seed; Run/Cancel; the image, the loss curve, Save PNG."""

    def __init__(self, model: LoadedModel | str | Path, device: str | None = None,
                 reporter: ErrorReporter = REPORTER, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Feature visualisation")
        self.model = model if isinstance(model, LoadedModel) else Path(model)
        self.device = device
        self.reporter = reporter
        self.runner: JobRunner | None = None
        self._busy = False
        self.outcome: FeatureVisResult | None = None
        self._eta: Eta | None = None
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.steps = QSpinBox()
        self.steps.setRange(1, 1_000_000)
        self.steps.setSingleStep(100)
        self.steps.setValue(PAPER_STEPS)
        form.addRow("Steps", self.steps)
        note = QLabel(STEPS_NOTE)
        note.setWordWrap(True)
        form.addRow("", note)
        self.lr = QDoubleSpinBox()
        self.lr.setRange(0.001, 100.0)
        self.lr.setDecimals(3)
        self.lr.setValue(1.0)
        form.addRow("Learning rate (SGD)", self.lr)
        self.start_value = QDoubleSpinBox()
        self.start_value.setRange(0.0, 1.0)
        self.start_value.setDecimals(3)
        self.start_value.setValue(0.5)
        self.start_value.setToolTip("The starting grey level: the training images' mean (normalised 0–1).")
        form.addRow("Start value", self.start_value)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        form.addRow("Seed", self.seed)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button = QPushButton("Save PNG…")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self.save_dialog)
        for b in (self.run_button, self.cancel_button, self.save_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        pictures = QHBoxLayout()
        self.image_view = QLabel()
        self.image_view.setFixedSize(256, 256)
        self.image_view.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_view.setStyleSheet("background: #202020;")
        pictures.addWidget(self.image_view)
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setLabel("left", "loss")
        self.loss_plot.setMinimumSize(320, 256)
        self.loss_curve = self.loss_plot.plot([], [])
        pictures.addWidget(self.loss_plot, 1)
        layout.addLayout(pictures)
        self.quadrants = QLabel("")
        self.quadrants.setWordWrap(True)
        layout.addWidget(self.quadrants)
        self.resize(720, 640)

    @property
    def running(self) -> bool:
        """A job was started and has not yet reported its end (its thread may still be winding down)."""
        return self._busy

    def run(self) -> None:
        if self.running:
            return
        model, device = self.model, self.device
        steps, lr, start, seed = self.steps.value(), self.lr.value(), self.start_value.value(), self.seed.value()

        def factory(cancel: CancelToken) -> Generator[Progress, None, Any]:
            return feature_vis_job(model, device, steps, lr, start, seed, cancel)

        runner = JobRunner(factory, self)
        runner.worker.progress.connect(self.on_progress)
        runner.worker.finished.connect(self.on_finished)
        runner.worker.cancelled.connect(self.on_cancelled)
        runner.worker.failed.connect(self.on_failed)
        self.runner, self._eta, self.outcome = runner, Eta(), None
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.save_button.setEnabled(False)
        self.progress.setRange(0, 0)
        self.status.setText("Starting…")
        self._busy = True
        runner.start()

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()
            self.status.setText("Cancelling…")

    def on_progress(self, p: Progress) -> None:
        if p.total > 0:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
        eta = self._eta.remaining(p) if self._eta is not None and p.total > 0 else None
        left = "" if eta is None else f" — about {eta / 60:.0f} min left" if eta >= 90 else f" — about {eta:.0f} s left"
        self.status.setText(p.message + left)

    def on_finished(self, outcome: tuple[FeatureVisResult, tuple[str, ...]]) -> None:
        self.outcome, names = outcome
        image = grey_qimage(self.outcome.image)
        self.image_view.setPixmap(QPixmap.fromImage(image).scaled(
            256, 256, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation))
        losses = self.outcome.losses
        self.loss_curve.setData(np.arange(1, len(losses) + 1), losses)
        corners = ("top left", "top right", "bottom left", "bottom right")
        words = (f"{c}: {class_label(n)}" for c, n in zip(corners, names, strict=False))
        self.quadrants.setText("Quadrants: " + "; ".join(words))
        self._ended(f"Done: {len(losses):,} steps, final loss {losses[-1]:.4f}.")
        self.save_button.setEnabled(True)

    def on_cancelled(self) -> None:
        self._ended("Cancelled.")

    def on_failed(self, exc: BaseException) -> None:
        self._ended("Failed: see the message.")
        self.reporter.report(exc, self, "Feature visualisation")

    def _ended(self, message: str) -> None:
        self._busy = False
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if message.startswith("Done") else 0)
        self.status.setText(message)

    def save_png(self, path: str | Path) -> Path | None:
        """Save the image at its own size (one pixel per model input pixel), 8-bit grey."""
        if self.outcome is None:
            return None
        path = Path(path).with_suffix(".png")
        if not grey_qimage(self.outcome.image).save(str(path)):  # the format follows the .png suffix
            self.reporter.report(CoreError(f"Cannot save {path}: check the folder exists and is writable."), self,
                                 "Saving the image")
            return None
        return path

    def save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save image", "feature-visualisation.png", "PNG (*.png)")
        if path:
            self.save_png(path)

    def shutdown(self, ms: int = 30000) -> None:
        """Cancel a running optimisation and wait for its thread."""
        if self.runner is not None and self.runner.running:
            self.runner.cancel()
            self.runner.wait(ms)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt name)
        self.shutdown()
        super().closeEvent(event)


class FeatureVisLauncher(QObject):
    """Opens one :class:`FeatureVisDialog` for the model folder and device the settings choose."""

    def __init__(self, settings: AppSettings, reporter: ErrorReporter, parent: QWidget) -> None:
        super().__init__(parent)
        self.settings, self.reporter, self.host = settings, reporter, parent
        self.dialog: FeatureVisDialog | None = None

    def open(self) -> None:
        if self.dialog is not None and self.dialog.running:
            self.dialog.show()
            self.dialog.raise_()
            return
        self.dialog = FeatureVisDialog(model_dir(self.settings), chosen_device(self.settings), self.reporter,
                                       self.host)
        self.dialog.show()

    def shutdown(self) -> None:
        if self.dialog is not None:
            self.dialog.shutdown()
