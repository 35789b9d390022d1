"""Opening a slide asks what the file does not say: the nuclear channel and the pixel size.

Real dialogs answered with real key presses and clicks while they run modally (QTimer), a real
store and, for the channel, a real analysis that must read the chosen channel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDialogButtonBox, QLabel

from tests.app.conftest import write_ome_tiff


def answer(qtbot, window, *acts: Callable) -> list:  # noqa: ANN001
    """Answer the next modal questions, in order, with ``act(dialog)`` each (a question is new when
    it is another dialog than the last one answered); the returned list gets the dialogs."""
    seen: list = []
    pending = list(acts)

    def go() -> None:
        question = window.prompts.question
        if question is None or (seen and question is seen[-1]):
            QTimer.singleShot(20, go)
            return
        seen.append(question)
        pending.pop(0)(question)
        if pending:
            QTimer.singleShot(20, go)
    QTimer.singleShot(0, go)
    return seen


def click_ok(qtbot, dialog) -> None:  # noqa: ANN001
    box = dialog.findChild(QDialogButtonBox)
    qtbot.mouseClick(box.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)


def test_channel_chooser_is_asked_remembered_and_used(qtbot, window, tmp_path: Path) -> None:  # noqa: ANN001
    names = ("FITC", "Nuclei 405", "Cy3")
    first = write_ome_tiff(tmp_path / "a.ome.tif", size=512, channels=names)
    second = write_ome_tiff(tmp_path / "b.ome.tif", size=512, channels=names, seed=1)

    def pick(dialog) -> None:  # noqa: ANN001
        qtbot.keyClick(dialog.combo, Qt.Key.Key_Down)  # FITC -> Nuclei 405
        click_ok(qtbot, dialog)
    seen = answer(qtbot, window, pick)
    assert window.cases.open_slide_file(first, "CH-1")
    assert len(seen) == 1 and "no channel is named Hoechst" in seen[0].findChild(QLabel).text()
    assert window.session.channel == "Nuclei 405"
    assert "Nuclei 405" in window.settings.slides.nuclear_channel.values()
    # Same scanner naming: no question the second time.
    assert window.cases.open_slide_file(second, "CH-2")
    assert window.prompts.question is None and window.session.channel == "Nuclei 405"
    window.settings.analysis.precision = "fp32"  # pinned: a CPU with AMX would pick bf16 itself
    window.analysis.run()
    with qtbot.waitSignal(window.analysis.runner.done, timeout=120000):
        pass
    assert window.reporter.last_error is None, window.reporter.last_error
    (run,) = window.session.store.list_analyses(window.session.case.id)
    assert run.parameters["engine"]["channel"] == "Nuclei 405"
    assert run.summary["channel"] == "Nuclei 405"
    assert run.parameters["pixel_size"]["source"] == "file"


def test_channel_chooser_cancel_opens_nothing(qtbot, window, tmp_path: Path) -> None:  # noqa: ANN001
    path = write_ome_tiff(tmp_path / "c.ome.tif", size=512, channels=("FITC", "Cy3"))
    answer(qtbot, window, lambda d: d.reject())
    assert not window.cases.open_slide_file(path, "CH-3")
    assert window.session.case is None


def test_hoechst_named_slide_is_not_asked(window, slide_path: Path) -> None:  # noqa: ANN001
    assert window.cases.open_slide_file(slide_path, "CH-4")
    assert window.session.channel is None


def _uncalibrated(path: Path) -> Path:
    rng = np.random.default_rng(0)
    tifffile.imwrite(path, rng.integers(0, 4000, (512, 512), dtype=np.uint16), tile=(256, 256))
    return path


def test_pixel_size_starts_empty_and_the_suggestion_needs_a_click(qtbot, window, tmp_path: Path) -> None:  # noqa: ANN001
    path = _uncalibrated(tmp_path / "raw.tif")
    (tmp_path / "raw.json").write_text('{"mpp": 0.325}')
    state: dict = {}

    def act(dialog) -> None:  # noqa: ANN001
        ok = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok)
        state["empty"] = dialog.edit.text()
        state["ok_enabled_when_empty"] = ok.isEnabled()
        qtbot.keyClick(dialog.edit, Qt.Key.Key_Return)  # Enter on an empty field calibrates nothing
        state["still_open"] = dialog.isVisible()
        qtbot.mouseClick(dialog.use_suggestion, Qt.MouseButton.LeftButton)
        click_ok(qtbot, dialog)
    answer(qtbot, window, act)
    assert window.cases.open_slide_file(path, "PX-1")
    assert state == {"empty": "", "ok_enabled_when_empty": False, "still_open": True}
    assert window.session.slide.mpp == (0.325, 0.325)
    record = window.session.slide_record
    assert record.mpp_source == "suggested by raw.json, confirmed by the user"
    assert window.session.analysis_parameters()["pixel_size"] == {
        "mpp_um": [0.325, 0.325], "source": "suggested by raw.json, confirmed by the user"}


def test_pixel_size_typed_by_the_user(qtbot, window, tmp_path: Path) -> None:  # noqa: ANN001
    path = _uncalibrated(tmp_path / "raw2.tif")

    def act(dialog) -> None:  # noqa: ANN001
        qtbot.keyClicks(dialog.edit, "0.5")
        qtbot.keyClick(dialog.edit, Qt.Key.Key_Return)
    answer(qtbot, window, act)
    assert window.cases.open_slide_file(path, "PX-2")
    assert window.session.slide.mpp == (0.5, 0.5)
    assert window.session.slide_record.mpp_source == "entered by the user"
