"""The saliency dock and the feature visualisation dialog, run for real on tiny models."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QDockWidget

from app.errors import ErrorReporter
from app.feature_vis import FeatureVisDialog
from app.saliency_dock import ALL_POSITIVE, PREDICTED_ONLY, SaliencyPanel
from core.models import ModelCard
from core.models.runtime import LoadedModel
from core.slides import open_slide
from tests.conftest import write_ome_pyramid

LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


class LevelModel(torch.nn.Module):
    """Per-pixel logits −k·(x − level_c)²: the class is the nearest intensity level (fast, exact)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("levels", torch.tensor(LEVELS).view(1, -1, 1, 1))
        self.sharpness = torch.nn.Parameter(torch.tensor(200.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.sharpness * (x - self.levels) ** 2


class SlowLevelModel(LevelModel):
    """The level model at the pace of a real one on a CPU (20 ms a batch), so a cancel lands mid-run."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.02)
        return super().forward(x)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared, loaded CPU runs small models far faster on one thread
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def disc_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """128² slide at 0.5 µm: a class-2 disc at (64, 64), a class-4 disc at (64, 52), a class-1 disc at (80, 80)."""
    img = np.zeros((128, 128), np.uint16)
    yy, xx = np.mgrid[0:128, 0:128]
    for cx, cy, cls in ((64, 52, 4), (64, 64, 2), (84, 84, 1)):
        img[(xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= 25] = round(LEVELS[cls] * 20000)
    return write_ome_pyramid(tmp_path_factory.mktemp("dock") / "discs.ome.tif", img[None], mpp=0.5,
                             names=("Hoechst",), levels=1, tile=64)


@pytest.fixture
def panel(qtbot, disc_slide):  # noqa: ANN001, ANN201
    card = ModelCard(name="levels", encoder="none", mpp=0.5, patch_size=64, weights_sha256="0" * 64)
    model = LoadedModel(LevelModel().eval(), card, torch.device("cpu"), "fp32", "test model")
    slide = open_slide(disc_slide)
    p = SaliencyPanel(ErrorReporter())
    qtbot.addWidget(p)
    p.set_context(slide, model)
    yield p
    p.shutdown()
    slide.close()


def test_dock_computes_and_shows_every_positive_class_with_a_depth_slider(qtbot, panel, tmp_path):  # noqa: ANN001
    panel.classes_box.setCurrentText(ALL_POSITIVE)
    with qtbot.waitSignal(panel.explained, timeout=60000):
        assert panel.explain_at(64, 64, cell=False)
    expl = panel.explanation
    assert sorted(expl.maps) == [1, 2, 3, 4]
    assert all(not v.pixmap().isNull() for v in (panel.hoechst_view, panel.prediction_view, panel.saliency_view))
    assert panel.class_view_box.count() == 4 and panel.class_view_box.currentData() == 2  # the class at the point
    assert panel.depth_slider.maximum() == 4  # log2(64 / 4) depths
    np.testing.assert_array_equal(panel.current_map(), expl.maps[2].saliency)
    assert "forward passes" in panel.info.text() and "predicted CD3" in panel.info.text()
    panel.depth_slider.setValue(2)
    np.testing.assert_array_equal(panel.current_map(), expl.maps[2].depth_maps[1])
    assert panel.depth_label.text() == "Depth 2: windows of 4.0 µm"
    assert panel.status.text().startswith("Done")
    panel.save_to(tmp_path)
    doc = json.loads((tmp_path / "saliency.json").read_text())
    assert doc["mode"] == "patch" and len(doc["targets"]) == 4 and (tmp_path / "saliency_CD20.png").exists()


def test_dock_explains_the_cell_then_cancels(qtbot, panel):  # noqa: ANN001
    panel.classes_box.setCurrentText(PREDICTED_ONLY)
    with qtbot.waitSignal(panel.explained, timeout=60000):
        panel.explain_at(64, 64, cell=True)
    ctx = panel.explanation.context
    assert ctx.cell_class == 2 and list(panel.explanation.maps) == [2]
    assert ctx.cell_mask.sum() == 80 and "inside the cell" in panel.info.text()
    assert panel.explain_at(64, 64) and not panel.explain_at(64, 64)  # one at a time
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    assert panel.status.text() == "Cancelled." and panel.explanation is None


def test_dock_reports_a_point_without_a_cell(qtbot, panel):  # noqa: ANN001
    panel.classes_box.setCurrentText(PREDICTED_ONLY)
    panel.explain_at(20, 110, cell=True)
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    assert panel.status.text().startswith("Failed") and "No cell" in str(panel.reporter.last_error)


def test_window_adds_the_dock_and_a_click_on_the_slide_explains_it(qtbot, settings_store, slide_path):  # noqa: ANN001
    from app.controllers.settings import model_dir
    from app.main_window import MainWindow

    window = MainWindow(settings_store, ErrorReporter())
    qtbot.addWidget(window)
    tools = window.saliency
    assert tools.dock in window.findChildren(QDockWidget) and tools.dock.isHidden()
    analysis = next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == "Analysis")
    menu_actions = (window.explain_action, window.explain_here_action, window.features_action)
    assert all(a in analysis.actions() for a in menu_actions)
    assert window.explain_here_action.shortcut().toString() == "Shift+X"
    window.show()
    qtbot.waitExposed(window)
    assert window.cases.open_slide_file(slide_path, "T-SALIENCY")
    assert tools.panel.slide is window.session.slide and tools.panel.model == Path(model_dir(window.settings))
    menu_actions[0].trigger()  # Explain the call at a point…
    assert tools.armed and tools.dock.isVisible()
    view = window.view
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.mapFromScene(QPointF(300, 400)))
    assert not tools.armed and tools.panel.running
    assert tools.panel.point == pytest.approx((300, 400), abs=2 / view.zoom)  # within a screen pixel
    qtbot.waitUntil(lambda: tools.panel.context is not None or not tools.panel.running, timeout=60000)
    tools.panel.cancel()
    qtbot.waitUntil(lambda: not tools.panel.running, timeout=60000)
    menu_actions[2].trigger()  # Feature visualisation…: a dialog for the window's model
    dialog = tools.launcher.dialog
    assert dialog is not None and dialog.isVisible() and dialog.model == Path(model_dir(window.settings))
    dialog.close()
    window.close()


def test_feature_vis_runs_a_few_steps_and_saves_a_png(qtbot, tmp_path):  # noqa: ANN001
    torch.manual_seed(0)
    card = ModelCard(name="conv", encoder="none", patch_size=32, weights_sha256="0" * 64)
    model = LoadedModel(torch.nn.Conv2d(1, 5, 5, padding=2).eval(), card, torch.device("cpu"), "fp32", "test")
    dialog = FeatureVisDialog(model, reporter=ErrorReporter())
    qtbot.addWidget(dialog)
    assert dialog.steps.value() == 10_000  # the paper's
    dialog.steps.setValue(12)
    dialog.run()
    qtbot.waitUntil(lambda: dialog.outcome is not None, timeout=30000)
    assert len(dialog.loss_curve.getData()[1]) == 12 and not dialog.image_view.pixmap().isNull()
    assert "top left: CD8+ CD3 low" in dialog.quadrants.text() and dialog.status.text().startswith("Done")
    path = dialog.save_png(tmp_path / "features")
    assert path == tmp_path / "features.png"
    with Image.open(path) as im:
        assert im.size == (32, 32) and im.mode == "L"


def test_dock_scrolls_and_defaults_to_the_predicted_class(qtbot, window) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QScrollArea

    tools = window.saliency
    assert tools.panel.classes_box.currentText() == PREDICTED_ONLY
    assert isinstance(tools.dock.widget(), QScrollArea)
    height = window.height()
    tools.dock.show()
    qtbot.wait(50)
    assert window.height() == height  # the panel scrolls; the window does not grow to fit it


def test_cancel_keeps_the_finished_classes_and_the_estimate_is_in_words(qtbot, panel):  # noqa: ANN001
    card = ModelCard(name="slow", encoder="none", mpp=0.5, patch_size=64, weights_sha256="0" * 64)
    panel.set_context(panel.slide, LoadedModel(SlowLevelModel().eval(), card, torch.device("cpu"), "fp32", "test"))
    panel.classes_box.setCurrentText(ALL_POSITIVE)
    assert panel.explain_at(64, 64, cell=False)
    assert panel.status.text().endswith("on the CPU…")
    qtbot.waitUntil(lambda: panel._partial is not None, timeout=60000)  # the first class is finished
    assert re.search(r"about \d+ (s|min) left", panel.status.text()), panel.status.text()
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    kept = list(panel.explanation.maps)
    assert 1 <= len(kept) < 4 and kept[0] == 1
    status = panel.status.text()
    assert status.startswith("Cancelled: CD8+ CD3 low finished and shown;") and "CD20+" in status
    assert "not computed" in status
    assert panel.class_view_box.count() == len(kept) and not panel.saliency_view.pixmap().isNull()
    assert panel.save_button.isEnabled()


def test_opening_another_case_stops_and_drops_a_running_explanation(qtbot, panel, disc_slide):  # noqa: ANN001
    card = ModelCard(name="slow", encoder="none", mpp=0.5, patch_size=64, weights_sha256="0" * 64)
    model = LoadedModel(SlowLevelModel().eval(), card, torch.device("cpu"), "fp32", "test")
    panel.set_context(panel.slide, model)
    panel.classes_box.setCurrentText(ALL_POSITIVE)
    assert panel.explain_at(64, 64, cell=False)
    qtbot.waitUntil(lambda: panel.context is not None, timeout=60000)  # the old case's patch is shown
    other = open_slide(disc_slide)
    try:
        panel.set_context(other, model)  # the window opened another case
        assert panel.context is None and panel.hoechst_view.pixmap().isNull()
        qtbot.waitUntil(lambda: not panel.running, timeout=30000)
        assert panel.explanation is None and panel.class_view_box.count() == 0
        assert panel.status.text().startswith("Pick a point") and panel.hoechst_view.pixmap().isNull()
        assert panel.explain_at(64, 64, cell=False)  # and the panel is free for the new case
        panel.cancel()
        qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    finally:
        panel.shutdown()
        other.close()
