"""The window's wiring, end to end with real core parts: open, view, draw, analyse, score, save, reopen, report."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt

from app.errors import ErrorReporter
from app.main_window import MainWindow
from app.viewer import ToolMode
from core.errors import StoreError
from core.regions import RegionKind


def _viewport_point(view, x_px: float, y_px: float) -> QPoint:  # noqa: ANN001
    from PySide6.QtCore import QPointF

    return view.mapFromScene(QPointF(x_px, y_px))


def _drag_rectangle(qtbot, window, start: float, end: float) -> None:  # noqa: ANN001
    """Draw a rectangle from (start, start) to (end, end) level-0 px with the Rectangle tool and the mouse."""
    window.tool_actions[ToolMode.RECTANGLE].trigger()
    vp = window.view.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=_viewport_point(window.view, start, start))
    qtbot.mouseMove(vp, _viewport_point(window.view, (start + end) / 2, (start + end) / 2))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=_viewport_point(window.view, end, end))


def test_open_zoom_pan(qtbot, window, slide_path: Path) -> None:  # noqa: ANN001
    assert window.cases.open_slide_file(slide_path, "T-VIEW")
    view = window.view
    qtbot.waitUntil(lambda: len(view.cache) > 0, timeout=10000)
    fit = view.zoom
    view.set_zoom(fit * 4, view.visible_rect().center())
    assert view.zoom == pytest.approx(fit * 4)
    qtbot.waitUntil(lambda: any(k[0] == view.level_for_zoom() for k in view.cache._items), timeout=10000)
    before = view.visible_rect().center()
    vp = view.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=QPoint(400, 300))
    qtbot.mouseMove(vp, QPoint(300, 250))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=QPoint(200, 200))
    after = view.visible_rect().center()
    assert after.x() > before.x() and after.y() > before.y()
    assert "µm" in window.labels.pixel_size.text()


def test_draw_polygon_undo_redo_autosave(qtbot, window, slide_path: Path) -> None:  # noqa: ANN001
    window.cases.open_slide_file(slide_path, "T-DRAW")
    view = window.view
    window.tool_actions[ToolMode.POLYGON].trigger()
    assert view.tool_mode is ToolMode.POLYGON
    vp = view.viewport()
    pts = [(200, 200), (800, 220), (780, 800), (220, 760)]
    for x, y in pts:
        qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=_viewport_point(view, x, y))
    qtbot.mouseDClick(vp, Qt.MouseButton.LeftButton, pos=_viewport_point(view, *pts[-1]))
    session = window.session
    assert len(session.regions) == 1
    region = next(iter(session.regions))
    assert region.kind is RegionKind.TUMOUR
    assert region.area_um2 == pytest.approx(600 * 570 * 0.25, rel=0.05)
    assert len(session.store.load_regions(session.case.id)) == 1  # autosaved
    window.regions.undo.undo()
    assert len(session.regions) == 0 and not session.store.load_regions(session.case.id)
    window.regions.undo.redo()
    assert len(session.regions) == 1
    assert window.layers_panel.region_list.count() == 1


def test_analyse_score_save_reopen_report(qtbot, window, settings_store, slide_path: Path, tmp_path: Path) -> None:  # noqa: ANN001
    window.cases.open_slide_file(slide_path, "T-FULL")
    _drag_rectangle(qtbot, window, 100, 900)
    assert len(window.session.regions) == 1
    window.settings.analysis.precision = "fp32"  # pinned: a CPU with AMX would pick bf16 itself
    window.analysis.run()
    assert window.analysis.runner is not None
    with qtbot.waitSignal(window.analysis.runner.done, timeout=120000):
        pass
    assert window.reporter.last_error is None, window.reporter.last_error
    session = window.session
    assert session.cells is not None and len(session.cells) > 0
    assert window.view.cells.count == len(session.cells)
    assert "Finished" in window.analysis_panel.status.text()
    window.settings.analysis.im_half_width_um = 50.0
    window.settings_controller.apply_to_session()
    window.regions.replace_ct_im_by_derived()
    kinds = {r.kind for r in session.regions}
    assert {RegionKind.TUMOUR_CENTRE, RegionKind.INVASIVE_MARGIN} <= kinds
    assert session.scores is not None
    assert window.score_panel.table.rowCount() >= 2
    regions_text = [window.score_panel.table.item(i, 0).text() for i in range(window.score_panel.table.rowCount())]
    assert "CT" in regions_text and "IM" in regions_text
    report = window.report.make(tmp_path / "report.pdf")
    assert report is not None and report.read_bytes().startswith(b"%PDF")
    case_id, n_cells, n_regions = session.case.id, len(session.cells), len(session.regions)
    window.close()

    again = MainWindow(settings_store, ErrorReporter())
    qtbot.addWidget(again)
    assert again.cases.open_case(case_id)
    assert len(again.session.regions) == n_regions
    assert again.session.cells is not None and len(again.session.cells) == n_cells
    assert again.session.scores is not None and again.score_panel.table.rowCount() >= 2
    assert "shown cells: CPU, full precision" in again.labels.device.text()  # the device of the stored run
    again.session.store.add_user("test", "Dr Test", "1234")
    again.session.sign("test", "1234", "Approval")
    assert again.session.read_only
    again.regions.on_region_drawn(next(iter(again.session.regions)).geometry)
    assert isinstance(again.reporter.last_error, StoreError)
    again.close()


def test_core_error_is_shown_not_raised(window) -> None:  # noqa: ANN001
    window.analysis.run()  # no case open
    assert window.reporter.last_dialog is not None
    assert "Open a slide" in window.reporter.last_dialog.text()


def test_reopening_after_a_crash_closes_the_stale_run_and_says_so(qtbot, window, settings_store,  # noqa: ANN001
                                                                   slide_path: Path) -> None:
    """An analysis a dead HoechstScore left "running" must not block signing: opening the case closes it."""
    import socket
    import subprocess
    import sys

    assert window.cases.open_slide_file(slide_path, "T-CRASH")
    session = window.session
    case_id, slide_id = session.case.id, session.slide_record.id
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    runner = {"host": socket.gethostname(), "pid": int(dead.stdout), "process_started": 0.0}
    stale = session.store.start_analysis(case_id, slide_id, model_name="m", model_sha256="ab" * 32,
                                         parameters={"engine": {}, "runner": runner}, device="cpu", precision="fp32")
    window.close()

    again = MainWindow(settings_store, ErrorReporter())
    qtbot.addWidget(again)
    assert again.cases.open_case(case_id)
    assert again.session.interrupted == [stale.id]
    assert "stopped unfinished" in again.analysis_panel.status.text()
    assert str(again.session.store.get_analysis(stale.id).status) == "failed"
    again.session.store.add_user("test", "Dr Test", "1234")
    again.session.sign("test", "1234", "Approval")
    assert again.session.read_only and again.reporter.last_error is None
    again.close()


def test_layer_choices_carry_over_to_the_next_slide(qtbot, window, slide_path: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """Each slide gets new layers: they must start as the user left the toggles, not all on."""
    from tests.app.conftest import write_ome_tiff

    assert window.cases.open_slide_file(slide_path, "T-LAYERS-1")
    window.cells_action.trigger()  # D: cells off
    window.regions_action.trigger()  # A: regions off
    window.layers_panel.class_boxes[2].setChecked(False)  # CD3 off
    assert not window.view.cells.isVisible()
    assert window.cases.open_slide_file(write_ome_tiff(tmp_path / "second.ome.tif", seed=3), "T-LAYERS-2")
    assert window.view.slide is window.session.slide
    assert not window.view.cells.isVisible() and not window.layers_panel.cells_box.isChecked()
    assert 2 not in window.view.cells.visible_classes and 1 in window.view.cells.visible_classes
    assert not window.view.regions.visible


def test_exported_regions_have_the_colours_drawn_in_the_window(qtbot, window, slide_path: Path,  # noqa: ANN001
                                                               tmp_path: Path) -> None:
    import json

    window.cases.open_slide_file(slide_path, "T-COLOURS")
    _drag_rectangle(qtbot, window, 200, 800)
    window.settings.analysis.im_half_width_um = 40.0
    window.settings_controller.apply_to_session()
    window.regions.replace_ct_im_by_derived()
    path = window.session.export_geojson(tmp_path / window.prompts.export_name("regions.geojson"))
    features = json.loads(path.read_text())["features"]
    by_id = {f["id"]: f["properties"]["classification"]["color"] for f in features}
    drawn = {rid: item.pen().color() for rid, item in window.view.regions.items.items()}
    kinds = {r.id: r.kind for r in window.session.regions}
    assert RegionKind.INVASIVE_MARGIN in kinds.values() and set(by_id) == set(drawn)
    for rid, colour in drawn.items():  # the IM is the same yellow in the window and in QuPath
        assert by_id[rid] == [colour.red(), colour.green(), colour.blue()], kinds[rid]
