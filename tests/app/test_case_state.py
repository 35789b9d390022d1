"""Regions, scores and panels follow the case and the settings: IM width re-derives CT/IM, the chart
legend keeps one entry per marker, a newly opened case starts with clean panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox
from shapely.geometry import box

from core.regions import Region, RegionKind
from tests.app.test_slide_questions import answer


def _cells(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, 500, n), rng.uniform(0, 500, n)
    names = rng.choice(["CD3", "CD8_CD3HI", "CD20", "other"], n)
    ids = {"other": 0, "CD8_CD3LO": 1, "CD3": 2, "CD20": 3, "CD8_CD3HI": 4}
    return pd.DataFrame({"x_px": x / 0.5, "y_px": y / 0.5, "x_um": x, "y_um": y, "class_name": names,
                         "class_id": [ids[c] for c in names], "probability": 0.9, "area_um2": 30.0})


@pytest.fixture
def scored(window, slide_path: Path):  # noqa: ANN001, ANN201
    assert window.cases.open_slide_file(slide_path, "STATE-1")
    s = window.session
    s.regions.add(Region(kind=RegionKind.TUMOUR, geometry=box(150, 150, 350, 350), name="Tumour"))
    s.set_cells(_cells(), None)
    window.regions.replace_ct_im_by_derived()
    return window


def _im_area(window) -> float:  # noqa: ANN001
    return sum(r.area_um2 for r in window.session.regions if r.kind is RegionKind.INVASIVE_MARGIN)


def test_changing_the_im_width_in_settings_rederives_ct_im(qtbot, scored) -> None:  # noqa: ANN001
    window = scored
    before = _im_area(window)
    assert before > 0

    def set_width(dialog) -> None:  # noqa: ANN001
        dialog.im_width.selectAll()
        qtbot.keyClicks(dialog.im_width, "50")
        qtbot.mouseClick(dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok),
                         Qt.MouseButton.LeftButton)
    answer(qtbot, window, set_width)
    window.settings_controller.dialog()
    assert window.session.im_half_width_um == 50
    after = _im_area(window)
    assert 0 < after < before * 0.6  # a 50 µm band instead of 500 µm (clipped to the slide)
    window.regions.undo.undo()  # one step back restores the old band
    assert _im_area(window) == pytest.approx(before)


def test_chart_legend_keeps_one_entry_per_marker(scored) -> None:  # noqa: ANN001
    window = scored
    for _ in range(3):
        window.regions.undo.undo()
        window.regions.undo.redo()
    legend = window.score_panel.density_plot.getPlotItem().legend
    assert len(legend.items) == 3


def test_opening_another_case_resets_the_panels(qtbot, window, slide_path: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from tests.app.conftest import write_ome_tiff

    assert window.cases.open_slide_file(slide_path, "STATE-A")
    window.analysis_panel.ended("Finished: 134 cells in 3 s.")
    window.saliency.panel.info.setText("map of case A")
    other = write_ome_tiff(tmp_path / "b.ome.tif", size=512)
    assert window.cases.open_slide_file(other, "STATE-B")
    assert window.analysis_panel.status.text() == "Ready."
    assert window.saliency.panel.info.text() == ""


def test_user_words_not_developer_text(window) -> None:  # noqa: ANN001
    from app.controllers.analysis import run_words

    labels = [box.text() for box in window.layers_panel.class_boxes.values()]
    assert any(t.startswith("CD8+ CD3 low") for t in labels) and not any("_" in t for t in labels)
    assert run_words("cpu", "bf16") == "CPU, half precision (bfloat16)"
    window.reporter.report(ValueError("TiffFileError('not a TIFF')"), window, "Opening the slide")
    box = window.reporter.last_dialog
    assert "ValueError" not in box.text() + box.informativeText() and "TiffFileError" not in box.informativeText()
    assert "Opening the slide failed" in box.informativeText() and "TiffFileError" in box.detailedText()


def test_cells_csv_has_the_region_of_each_cell_and_export_names_say_the_case(scored, tmp_path: Path) -> None:  # noqa: ANN001
    window = scored
    window.session.im_half_width_um = 40  # CT 190-310 µm, IM 110-390 µm, the rest outside
    window.regions.replace_ct_im_by_derived()
    assert window.prompts.export_name("cells.csv") == "STATE-1-v1-cells.csv"
    path = window.session.export_cells_csv(tmp_path / window.prompts.export_name("cells.csv"))
    table = pd.read_csv(path, keep_default_na=False)
    assert set(table["region"]) == {"CT", "IM", ""}
    centre = table[(table.x_um.between(200, 300)) & (table.y_um.between(200, 300))]
    assert len(centre) and set(centre["region"]) == {"CT"}
    far = table[(table.x_um < 100) | (table.y_um < 100)]
    assert len(far) and set(far["region"]) == {""}
