"""A resumed analysis says so, in the dock and the status bar, while it runs and after; its
estimate of the time left counts the tiles of this run only (a fake clock drives the estimate)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PySide6.QtCore import Qt

from app.docks.analysis_dock import AnalysisPanel, RunEta, resumed_words
from core.engine import BlockDone
from core.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_estimate_leaves_out_resumed_tiles_and_the_start() -> None:
    clock = FakeClock()
    eta = RunEta(clock)
    clock.now = 20.0  # loading the model and finding the tissue: not tile time
    assert eta.update(Progress(0, 0, "Finding tissue")) is None
    for _ in range(3):  # three blocks of an interrupted run: 40 of 120 tiles
        assert eta.update(BlockDone(40, 120, "Tile 40 of 120", cells=pd.DataFrame())) is None
    assert eta.resumed == 40
    clock.now = 21.0
    assert eta.update(Progress(44, 120, "Tile 44 of 120")) is None  # the first tile report starts the clock
    clock.now = 23.0  # 8 more tiles in 2 s: 0.25 s a tile, 68 tiles left
    assert eta.update(Progress(52, 120, "Tile 52 of 120")) == pytest.approx(17.0)
    assert eta.update(BlockDone(52, 120, "Tile 52 of 120", cells=pd.DataFrame())) == pytest.approx(17.0)
    assert eta.resumed == 40  # blocks finished in this run are not resumed ones
    assert resumed_words(40, 120) == "Resumed: 40 of 120 tiles were already done"
    assert resumed_words(0, 120) == ""
    assert resumed_words(0, 120, blocks=1) == "Resumed: the cells of 1 row of tiles were already done"


def test_panel_says_it_resumed_while_running_and_after(qtbot) -> None:  # noqa: ANN001
    panel = AnalysisPanel()
    qtbot.addWidget(panel)
    lines: list[str] = []
    panel.headline.connect(lines.append)
    clock = FakeClock()
    panel.started(clock)
    panel.show_progress(BlockDone(40, 120, "Tile 40 of 120", cells=pd.DataFrame()), 300)
    clock.now = 10.0
    panel.show_progress(Progress(48, 120, "Tile 48 of 120"), 300)
    clock.now = 12.0
    panel.show_progress(Progress(56, 120, "Tile 56 of 120"), 350)
    assert "Resumed: 40 of 120 tiles were already done" in panel.status.text()
    assert "about 16 s left" in panel.status.text()  # 0.25 s a tile (this run), 64 left
    assert "Resumed: 40 of 120" in lines[-1] and lines[-1].startswith("Analysis: Tile 56 of 120")
    panel.ended("Finished: 900 cells in 30 s.")
    assert panel.status.text().endswith("Resumed: 40 of 120 tiles were already done (from the interrupted run).")
    assert lines[-1] == panel.status.text()
    panel.reset()
    assert panel.status.text() == "Ready." and lines[-1] == ""


def test_an_interrupted_analysis_resumes_and_says_so(qtbot, window, slide_path: Path,  # noqa: ANN001
                                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from app.analysis_job import checkpoint_dir, engine_params
    from app.controllers.settings import model_dir
    from core.engine import analyse_slide
    from core.models.inference import load_for_inference
    from core.progress import run_to_completion

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the checkpoints of this test only
    window.settings.analysis.precision = "fp32"
    assert window.cases.open_slide_file(slide_path, "T-RESUME")
    window.analysis.run()  # cancelled at once: it only settles the channel, as a first try would
    window.analysis.runner.cancel()
    with qtbot.waitSignal(window.analysis.runner.done, timeout=120000):
        pass
    # An earlier run of the same analysis (the model loaded as the app loads it: same runtime, so the
    # same checkpoint key) that stopped after three of its six blocks (rows of tiles).
    params = engine_params(window.session.channel)
    model = load_for_inference(model_dir(window.settings), "cpu", "fp32", threads=params.torch_threads)
    run_to_completion(analyse_slide(window.session.slide, model, params,
                                    checkpoint_dir=checkpoint_dir()))
    blocks = sorted(checkpoint_dir().glob("*/block-*.npz"))
    assert len(blocks) == 6
    for late in blocks[3:]:
        late.unlink()
    seen: list[str] = []
    window.analysis_panel.headline.connect(seen.append)
    qtbot.mouseClick(window.analysis_panel.run_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(window.analysis.runner.done, timeout=120000):
        pass
    assert window.reporter.last_error is None, window.reporter.last_error
    status = window.analysis_panel.status.text()
    assert status.startswith("Finished") and "tiles were already done (from the interrupted run)." in status
    assert any("Resumed:" in line and line.startswith("Analysis: Tile") for line in seen)  # while it ran
    assert "Resumed:" in window.statusBar().currentMessage()
    assert not list(checkpoint_dir().glob("*/block-*.npz"))  # stored, so the checkpoint is gone


def test_a_new_stage_restarts_the_estimate() -> None:
    clock = FakeClock()
    eta = RunEta(clock)
    eta.update(Progress(1, 10, "Block 1 of 10"))  # the demo making its slide: 10 blocks, 1 s each
    clock.now = 9.0
    assert eta.update(Progress(10, 10, "Block 10 of 10")) == pytest.approx(0.0)
    clock.now = 30.0
    assert eta.update(Progress(8, 35, "Tile 8 of 35")) is None  # the analysis: timed afresh
    clock.now = 34.0
    assert eta.update(Progress(16, 35, "Tile 16 of 35")) == pytest.approx(0.5 * 19)
