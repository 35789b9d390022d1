"""SaliencyDock: "why did the model call this cell CD8?" — HiPe maps for a point the user picks.

The dock shows the Hoechst patch the model saw around the point, its prediction, and for each
explained class the HiPe saliency map over the patch, all depths summed or one depth at a time
(coarse windows first). Everything is computed by :mod:`core.saliency.explain` in one job run by
the app's worker (:mod:`app.workers`), with progress and cancel; the window stays usable.

:class:`SaliencyController` connects it to the open case and the slide view; the main window
makes the dock (hidden until used) and the actions *Analysis › Explain the call at a point…*
(arms a one-shot pick: the next left click on the slide is explained) and *Explain the call under
the cursor* (Shift+X), plus *Feature visualisation…* (:mod:`app.feature_vis`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent, QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.controllers.settings import chosen_device, model_dir
from app.errors import REPORTER, ErrorReporter
from app.feature_vis import FeatureVisLauncher
from app.settings import AppSettings
from app.workers import JobRunner
from core.classes import POSITIVE_CLASSES, class_label
from core.errors import CoreError
from core.jsontypes import JSONDict
from core.models.runtime import LoadedModel, load_model
from core.progress import CancelToken, Progress
from core.saliency.eta import SaliencyEta
from core.saliency.explain import (
    ClassDone,
    ContextReady,
    ExplainContext,
    Explanation,
    HipeStep,
    classes_rgb,
    explain_point_job,
    hoechst_rgb,
    outline,
    saliency_rgb,
)
from core.saliency.hipe import PERTURBATIONS

if TYPE_CHECKING:
    from app.case_session import CaseSession
    from app.viewer import SlideView
    from core.slides import Slide

VIEW_PX = 200  # on-screen size of the small pictures; the saliency view is twice that


PREDICTED_ONLY, ALL_POSITIVE = "Predicted class only", "All positive classes"


@dataclass(frozen=True)
class ModelLoaded(Progress):
    """Progress that hands the model loaded on the worker thread to the panel, to reuse next time."""

    model: LoadedModel | None = None


def saliency_job(slide: Slide, model: LoadedModel | Path, device: str | None, x_px: float, y_px: float,
                 cell: bool, all_classes: bool, perturbation: str, cancel: CancelToken
                 ) -> Generator[Progress, None, Explanation]:
    """Load the model if given a folder, then :func:`core.saliency.explain_point_job`."""
    if not isinstance(model, LoadedModel):
        yield Progress(0, 0, "Loading the model…")
        model = load_model(model, device=device, precision="fp32")  # fp32: see core.saliency.explain
        yield ModelLoaded(0, 0, f"Model loaded on the {device_words(model)}", model=model)
    cancel.check()
    targets = [c for c in POSITIVE_CLASSES if c < len(model.card.classes)] if all_classes else None
    return (yield from explain_point_job(model, slide, x_px, y_px, cell, targets, perturbation, cancel=cancel))


def device_words(model: LoadedModel) -> str:
    """Where HiPe runs: on the model's device (a GPU when the model was loaded on one)."""
    return "GPU" if model.device.type == "cuda" else "CPU"


def to_pixmap(rgb: np.ndarray, size: int) -> QPixmap:
    """(H, W, 3) uint8 → QPixmap ``size`` px wide, pixels kept sharp (nearest neighbour)."""
    rgb = np.ascontiguousarray(rgb)
    h, w, _ = rgb.shape
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.FastTransformation)


def _button(text: str, row: QHBoxLayout, slot: Callable[[], object] | None = None, enabled: bool = True, checkable: bool = False
            ) -> QPushButton:
    button = QPushButton(text)
    button.setEnabled(enabled)
    button.setCheckable(checkable)
    if slot is not None:
        button.clicked.connect(slot)
    row.addWidget(button)
    return button


def _picture(size: int, tip: str) -> QLabel:
    label = QLabel()
    label.setFixedSize(size, size)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setStyleSheet("background: #202020;")
    label.setToolTip(tip)
    return label


def eta_words(seconds: float | None, p: Progress) -> str:
    """" — about 4 min left" for the status line; while HiPe runs without an estimate, say so."""
    if seconds is None:
        return " — estimating the time left…" if isinstance(p, HipeStep) else ""
    if seconds < 1:
        return ""
    if seconds < 90:
        return f" — about {seconds:.0f} s left"
    return f" — about {seconds / 60:.0f} min left"


class SaliencyPanel(QWidget):
    """Controls, progress and pictures; :meth:`explain_at` starts a job for a level-0 point."""

    pick_requested = Signal(bool)  # the user wants (True) or no longer wants the next click on the slide
    explained = Signal()  # an explanation finished and is shown

    def __init__(self, reporter: ErrorReporter = REPORTER, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.reporter = reporter
        self.slide: Slide | None = None
        self.model: LoadedModel | Path | None = None
        self.device: str | None = None
        self.runner: JobRunner | None = None
        self._busy = False
        self.context: ExplainContext | None = None
        self.explanation: Explanation | None = None
        self.point: tuple[float, float] | None = None  # level-0 px of the last explain_at
        self._models: dict[tuple[str, str | None], LoadedModel] = {}
        self._eta: SaliencyEta | None = None
        self._partial: ClassDone | None = None  # the classes finished so far, shown if the run is cancelled
        self._stale = False  # the running job belongs to a case no longer open: its results are dropped
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.patch_mode, self.cell_mode = QRadioButton("Whole patch"), QRadioButton("Cell under the point")
        self.cell_mode.setChecked(True)
        self.mode_group = QButtonGroup(self)
        row = QHBoxLayout()
        for b in (self.cell_mode, self.patch_mode):
            self.mode_group.addButton(b)
            row.addWidget(b)
        form.addRow("Explain", row)
        self.classes_box = QComboBox()
        # The predicted class first: one HiPe run (~8 min on a CPU) answers "why this call"; all four
        # classes took 4× as long and were the default.
        self.classes_box.addItems([PREDICTED_ONLY, ALL_POSITIVE])
        self.classes_box.setToolTip("One HiPe run per class: four classes take four times as long.")
        form.addRow("Classes", self.classes_box)
        self.perturbation_box = QComboBox()
        self.perturbation_box.addItems(list(PERTURBATIONS))
        self.perturbation_box.setToolTip("What hides a window: zero (fade, as in the paper), the patch mean, a blur.")
        form.addRow("Perturbation", self.perturbation_box)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        self.pick_button = _button("Pick a point on the slide", buttons, checkable=True)
        self.pick_button.toggled.connect(self.pick_requested)
        self.cancel_button = _button("Cancel", buttons, self.cancel, enabled=False)
        self.save_button = _button("Save…", buttons, self.save_dialog, enabled=False)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.status = QLabel("Pick a point on the slide to see what the model looked at.")
        self.status.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        grid = QGridLayout()
        self.hoechst_view = _picture(VIEW_PX, "The Hoechst patch the model saw (contrast stretched)")
        self.prediction_view = _picture(VIEW_PX, "The model's prediction; the explained cell outlined in white")
        self.saliency_view = _picture(2 * VIEW_PX, "Saliency: brighter = hiding it lowered the class's output more")
        for view, place in ((self.hoechst_view, (0, 0)), (self.prediction_view, (0, 1)),
                            (self.saliency_view, (1, 0, 1, 2))):
            grid.addWidget(view, *place)
        layout.addLayout(grid)
        maps = QFormLayout()
        self.class_view_box = QComboBox()
        self.class_view_box.currentIndexChanged.connect(self.show_map)
        maps.addRow("Class shown", self.class_view_box)
        self.depth_slider = QSlider(Qt.Orientation.Horizontal)
        self.depth_slider.setRange(0, 0)
        self.depth_slider.valueChanged.connect(self.show_map)
        self.depth_label = QLabel("All depths")
        depth_row = QHBoxLayout()
        depth_row.addWidget(self.depth_slider, 1)
        depth_row.addWidget(self.depth_label)
        maps.addRow("Depth", depth_row)
        layout.addLayout(maps)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        layout.addWidget(self.info)
        layout.addStretch(1)

    # --- context and starting -------------------------------------------------------------------
    def set_context(self, slide: Slide | None, model: LoadedModel | str | Path | None, device: str | None = None) -> None:
        """The slide (a core Slide) and the model (loaded, or a folder loaded on first use) to explain with.

        Another slide clears the maps shown: they belong to the previous case."""
        if slide is not self.slide:
            if self._busy:  # explaining a point of the previous case: stopped, and its results dropped
                self._stale = True
                self.cancel()
            self._clear()
            self.status.setText("Pick a point on the slide to explain the model's call there.")
        self.slide = slide
        self.model = model if model is None or isinstance(model, LoadedModel) else Path(model)
        self.device = device

    @property
    def running(self) -> bool:
        """A job was started and has not yet reported its end (its thread may still be winding down)."""
        return self._busy

    def explain_at(self, x_px: float, y_px: float, cell: bool | None = None) -> bool:
        """Explain the call at level-0 point (x_px, y_px); ``cell`` None = the mode chosen in the dock.

        Returns False (and says why in the status line) when nothing was started.
        """
        self.pick_button.setChecked(False)
        if self.running:
            self.status.setText("Still computing the last explanation: wait for it or cancel it.")
            return False
        if self.slide is None or self.model is None:
            self.status.setText("Open a slide first.")
            return False
        if cell is not None:
            (self.cell_mode if cell else self.patch_mode).setChecked(True)
        model = self.model
        if isinstance(model, Path):
            model = self._models.get((str(model), self.device), model)
        self.point = (x_px, y_px)
        slide, device, cell_mode = self.slide, self.device, self.cell_mode.isChecked()
        all_classes = self.classes_box.currentText() == ALL_POSITIVE
        perturbation = self.perturbation_box.currentText()

        def factory(cancel: CancelToken) -> Generator[Progress, None, Explanation]:
            return saliency_job(slide, model, device, x_px, y_px, cell_mode, all_classes, perturbation, cancel)

        self._clear()
        runner = JobRunner(factory, self)
        runner.worker.progress.connect(self.on_progress)
        runner.worker.finished.connect(self.on_finished)
        runner.worker.cancelled.connect(self.on_cancelled)
        runner.worker.failed.connect(self.on_failed)
        self.runner = runner
        self._eta = SaliencyEta()
        self._partial = None
        self._stale = False
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        where = f" on the {device_words(model)}" if isinstance(model, LoadedModel) else ""
        self.status.setText(f"Explaining ({x_px:.0f}, {y_px:.0f}) px{where}…")
        self._busy = True
        runner.start()
        return True

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()
            if not self._stale:
                self.status.setText("Cancelling…")

    def shutdown(self, ms: int = 30000) -> None:
        """Cancel a running job and wait for its thread (call before the window closes)."""
        if self.runner is not None and self.runner.running:
            self.runner.cancel()
            self.runner.wait(ms)

    # --- worker signals (UI thread) ---------------------------------------------------------------
    def on_progress(self, p: Progress) -> None:
        if self._stale:
            return
        if isinstance(p, ModelLoaded) and p.model is not None and isinstance(self.model, Path):
            self._models[(str(self.model), self.device)] = p.model
        if isinstance(p, ContextReady) and p.context is not None:
            self.context = p.context
            self._show_patch()
        if isinstance(p, ClassDone) and p.explanation is not None:
            self._partial = p
            self._show_explanation(p.explanation)  # finished classes can be looked at while the rest run
        if p.total > 0:
            self.progress.setRange(0, p.total)
            self.progress.setValue(p.done)
        eta = self._eta.update(p) if self._eta is not None else None
        self.status.setText(p.message + eta_words(eta, p))

    def on_finished(self, expl: Explanation) -> None:
        if self._stale:
            self.on_cancelled()
            return
        self._show_explanation(expl)
        passes = sum(r.n_masks for r in expl.maps.values())
        self._ended(f"Done: {passes:,} forward passes in {sum(expl.seconds.values()):.0f} s.")
        self.explained.emit()

    def _show_explanation(self, expl: Explanation) -> None:
        self.explanation = expl
        self.context = expl.context
        self._show_patch()
        names = expl.context.class_names
        self.class_view_box.blockSignals(True)
        self.class_view_box.clear()
        for target in expl.maps:
            self.class_view_box.addItem(class_label(names[target]), target)
        preferred = expl.context.cell_class if expl.context.cell_class is not None else expl.context.point_class
        self.class_view_box.setCurrentIndex(max(0, self.class_view_box.findData(preferred)))
        self.class_view_box.blockSignals(False)
        depths = max(r.depth_maps.shape[0] for r in expl.maps.values())
        self.depth_slider.blockSignals(True)
        self.depth_slider.setRange(0, depths)
        self.depth_slider.setValue(0)
        self.depth_slider.blockSignals(False)
        self.show_map()
        self.save_button.setEnabled(True)

    def on_cancelled(self) -> None:
        """Keep what was finished: the classes done before the cancel are shown, the others named."""
        partial, self._partial = self._partial, None
        if self._stale:
            self._stale = False
            self._busy = False
            self.cancel_button.setEnabled(False)
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            return
        if partial is None or partial.explanation is None or not partial.explanation.maps:
            self._ended("Cancelled.")
            return
        expl = partial.explanation
        self._show_explanation(expl)
        names = expl.context.class_names
        shown = ", ".join(class_label(names[t]) for t in expl.maps)
        cancelled = ", ".join(class_label(names[t]) for t in partial.pending)
        self._ended(f"Cancelled: {shown} finished and shown; {cancelled} not computed.")
        self.explained.emit()

    def on_failed(self, exc: BaseException) -> None:
        if self._stale:
            self.on_cancelled()
            return
        self._ended("Failed: see the message.")
        self.reporter.report(exc, self, "Explaining the call")

    def _ended(self, message: str) -> None:
        self._busy = False
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if message.startswith("Done") else 0)
        self.status.setText(message)

    # --- pictures ---------------------------------------------------------------------------------
    def _clear(self) -> None:
        self.context = self.explanation = None
        for view in (self.hoechst_view, self.prediction_view, self.saliency_view):
            view.clear()
        self.class_view_box.clear()
        self.depth_slider.setRange(0, 0)
        self.info.setText("")
        self.save_button.setEnabled(False)

    def _show_patch(self) -> None:
        ctx = self.context
        if ctx is None:
            return
        self.hoechst_view.setPixmap(to_pixmap(hoechst_rgb(ctx.patch.hoechst), VIEW_PX))
        pred = classes_rgb(ctx.classes, ctx.class_colours)
        if ctx.cell_mask is not None:
            pred[outline(ctx.cell_mask)] = 255
        self.prediction_view.setPixmap(to_pixmap(pred, VIEW_PX))

    def current_map(self) -> np.ndarray | None:
        """The map on screen: the chosen class, all depths summed (slider at 0) or one depth."""
        expl, target = self.explanation, self.class_view_box.currentData()
        if expl is None or target is None:
            return None
        res = expl.maps[int(target)]
        depth = self.depth_slider.value()
        return res.saliency if depth == 0 or depth > res.depth_maps.shape[0] else res.depth_maps[depth - 1]

    def show_map(self) -> None:
        expl, sal = self.explanation, self.current_map()
        if expl is None or sal is None:
            return
        ctx, target = expl.context, int(self.class_view_box.currentData())
        depth = self.depth_slider.value()
        if depth == 0:
            self.depth_label.setText("All depths")
        else:
            window = 2 * ctx.patch.image.shape[0] / (expl.initial_cells * 2**depth) * ctx.patch.mpp
            self.depth_label.setText(f"Depth {depth}: windows of {window:.1f} µm")
        overlay = saliency_rgb(hoechst_rgb(ctx.patch.hoechst), sal)
        if ctx.cell_mask is not None:
            overlay[outline(ctx.cell_mask)] = (0, 255, 255)
        self.saliency_view.setPixmap(to_pixmap(overlay, 2 * VIEW_PX))
        res, name = expl.maps[target], class_label(ctx.class_names[target])
        where = "inside the cell" if ctx.is_cell else f"on pixels predicted {name}"
        inside, grown = expl.inside_fraction(target), expl.inside_fraction(target, 1.0)
        share = "no saliency found" if np.isnan(inside) else (
            f"{inside:.0%} of the saliency {where} ({grown:.0%} within 1 µm); of its most salient pixels, "
            f"{expl.rank_fraction(target):.0%} lie {where}")
        self.info.setText(f"{name}: {res.n_masks:,} forward passes, {expl.seconds[target]:.1f} s; {share}.")

    # --- saving -----------------------------------------------------------------------------------
    def save_to(self, folder: str | Path) -> Path | None:
        """Write the maps, pictures and saliency.json as ``python -m core saliency`` does."""
        from core.cli.saliency import write_outputs

        expl = self.explanation
        if expl is None:
            return None
        x, y = expl.context.patch.to_level0(*expl.context.patch.point)
        slide_path = self.slide.path if self.slide is not None else None
        meta: JSONDict = {"slide": str(slide_path) if slide_path else None, "point_px": [round(x, 2), round(y, 2)]}
        try:
            write_outputs(expl, Path(folder), meta)
        except OSError as exc:
            self.reporter.report(CoreError(f"Cannot save to {folder}: {exc.strerror or exc}."), self, "Saving")
            return None
        return Path(folder)

    def save_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save the saliency maps in")
        if folder:
            self.save_to(folder)


class SaliencyController(QObject):
    """Connects the panel to the slide: context on case change, picking clicks, Explain actions.

    Its parts come in the constructor: the session (its slide, ``case_changed``), the view (a
    SlideView: ``viewport()``, ``mapToScene``, ``cursor_moved``), the settings (model folder,
    device), the panel and its dock, the feature-visualisation launcher, and the window it belongs
    to (its parent, watched for Esc while a pick is armed). The window makes the dock and the
    actions and connects them to :meth:`pick_action`, :meth:`explain_under_cursor` and
    ``launcher.open``.
    """

    def __init__(self, session: CaseSession, view: SlideView, settings: AppSettings, panel: SaliencyPanel,
                 dock: QDockWidget, launcher: FeatureVisLauncher, parent: QWidget) -> None:
        super().__init__(parent)
        self.session, self.view, self.settings = session, view, settings
        self.panel, self.dock, self.launcher = panel, dock, launcher
        self.host = parent
        self.armed = False
        self.cursor: tuple[float, float] | None = None
        session.case_changed.connect(self.refresh_context)
        view.cursor_moved.connect(self.on_cursor_moved)
        panel.pick_requested.connect(self.arm)
        for watched in (view.viewport(), view, parent):
            watched.installEventFilter(self)

    def refresh_context(self) -> None:
        """The open slide, the model folder and the device from the settings."""
        self.panel.set_context(self.session.slide, model_dir(self.settings), chosen_device(self.settings))

    def arm(self, on: bool = True) -> None:
        self.armed = bool(on)
        self.view.viewport().setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor)
        if on:
            self.dock.show()
            self.dock.raise_()
            self.panel.status.setText("Click on a cell in the slide (Esc to stop).")
        if self.panel.pick_button.isChecked() != self.armed:
            self.panel.pick_button.setChecked(self.armed)

    def pick_action(self) -> None:
        self.arm(True)

    def on_cursor_moved(self, x: float, y: float) -> None:
        self.cursor = (x, y)

    def explain_under_cursor(self) -> None:
        if self.cursor is not None:
            self.explain(*self.cursor)

    def explain(self, x: float, y: float) -> None:
        self.refresh_context()
        self.dock.show()
        self.dock.raise_()
        self.panel.explain_at(x, y)

    def shutdown(self) -> None:
        """Stop a running explanation and feature visualisation (before the window closes)."""
        self.panel.shutdown()
        self.launcher.shutdown()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if not self.armed:
            return False
        if isinstance(event, QKeyEvent) and event.type() == QEvent.Type.KeyPress and event.key() == Qt.Key.Key_Escape:
            self.arm(False)
            return True
        if (obj is not self.host and isinstance(event, QMouseEvent)
                and event.type() == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton):
            pos: QPointF = self.view.mapToScene(event.position().toPoint())
            self.arm(False)
            self.explain(pos.x(), pos.y())
            return True  # the click picks a point; it neither pans nor draws
        return False
