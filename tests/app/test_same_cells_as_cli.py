"""The app and `core analyse` count the same cells on one computer: one loading rule
(core.models.inference), so the same runtime and precision run the network in both."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from core.cli import main as core_main


def test_app_analysis_equals_core_analyse(qtbot, window, slide_path: Path, model_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    window.settings.analysis.precision = "fp32"  # pinned: a CPU with AMX would be allowed bf16 only if asked
    assert window.cases.open_slide_file(slide_path, "T-SAME")
    window.analysis.run()
    with qtbot.waitSignal(window.analysis.runner.done, timeout=120000):
        pass
    assert window.reporter.last_error is None, window.reporter.last_error
    app_cells = window.session.cells
    assert window.session.analysis is not None
    stored = window.session.store.get_analysis(window.session.analysis.id).summary

    out = tmp_path / "cli"
    assert core_main(["analyse", str(slide_path), "--model", str(model_dir), "--precision", "fp32",
                      "--device", "cpu", "--out", str(out)]) == 0
    cli_cells = pd.read_csv(out / "cells.csv")
    cli_summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))

    assert stored["runtime"] == cli_summary["runtime"]
    assert stored["precision"] == cli_summary["precision"] == "fp32"
    assert len(app_cells) == len(cli_cells) > 0
    assert app_cells["class_name"].value_counts().to_dict() == cli_cells["class_name"].value_counts().to_dict()
