"""First-run demo: the slide shows as soon as it exists, the cells come in while it is analysed,
and every line the user reads says which stage it is in (a real phantom, model and window)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.demo_runner import ANALYSING, MAKING, DemoRunner


def test_demo_shows_the_slide_while_it_is_made_and_analysed(qtbot, window, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
                                                            tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # this test's demo slide and outputs only
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    window.settings.analysis.precision = "fp32"
    # the demo as users run it: the shipped model (a random one calls no nuclei, and the engine
    # rightly keeps none of its calls)
    window.settings.analysis.model_dir = ""
    lines: list[str] = []
    window.analysis_panel.headline.connect(lines.append)
    runner = DemoRunner(window, size=1024)
    runner.start()
    job = window.analysis.runner
    assert job is not None
    # The slide is in the viewer before the case exists, i.e. while the demo is still being analysed.
    qtbot.waitUntil(lambda: window.view.slide is not None or not job.running, timeout=120000)
    assert job.running and window.session.case is None and window.view.slide is runner.preview
    assert window.windowTitle().startswith("Demo case (being analysed)")
    qtbot.waitUntil(lambda: window.view.cells is not None and window.view.cells.count > 0 or not job.running,
                    timeout=120000)
    assert window.view.cells.count > 0 and window.session.case is None  # cells shown as they are found
    with qtbot.waitSignal(job.done, timeout=120000):
        pass
    assert window.reporter.last_error is None, window.reporter.last_error
    assert window.session.case is not None and window.session.case.accession == "DEMO-1024-7"
    assert window.view.slide is window.session.slide and runner.preview is None
    assert any(line.startswith(f"Analysis: {MAKING}: ") for line in lines)
    assert any(line.startswith(f"Analysis: {ANALYSING}: Tile") for line in lines)
    assert not any("/" in line or "\\\\" in line for line in lines)  # no folders in what the user reads
    assert window.analysis_panel.status.text().startswith("Finished: demo case DEMO-1024-7")
    assert window.labels.device.text() in ("Device: CPU", "Device: CPU · shown cells: CPU, full precision")
