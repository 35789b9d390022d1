"""core.validation: split/merge counting, the summary's arithmetic, and one real end-to-end case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.validation import (
    ENGINE_CELLS,
    ENGINE_TISSUE,
    CaseValidation,
    ValidationOptions,
    compare_case,
    format_table,
    split_and_merged,
    summarise,
    validate_case,
)


def test_split_and_merged_counts_what_happened_to_true_lymphocytes() -> None:
    truth = pd.DataFrame({"x_um": [0.0, 10.0, 14.0, 40.0, 80.0], "y_um": [0.0] * 5,
                          "type": ["CD3", "CD3", "CD8_CD3LO", "CD20", "other"]})
    calls = pd.DataFrame({"x_um": [-1.0, 1.0, 10.2, 40.0], "y_um": [0.0, 0.0, 0.0, 0.5]})
    # cell 0: two calls (split); cell 2 (at 14): none, its nearest call sits on cell 1 (merged);
    # cell 3: one call; "other" nuclei are not lymphocytes and never count
    assert split_and_merged(calls, truth) == (1, 1)
    assert split_and_merged(calls.iloc[:0], truth) == (0, 0)


def test_summary_judges_only_regions_with_enough_true_cells() -> None:
    def case(seed: int, errors: list[tuple[str, str, int, float]]) -> CaseValidation:
        c = CaseValidation(seed, 0.5, 0.5, im_area_mm2=(1.0, 1.02), is_category=("High", "High"),
                           is_level=(3, 3), tb_category=("Low", "High"))
        c.rows = [{"seed": seed, "region": r, "group": g, "true_density": 100.0, "engine_density": 100 + e,
                   "true_cells": n, "engine_cells": n, "error_pct": e} for r, g, n, e in errors]
        return c

    cases = [case(1, [("CT", "CD3+", 50, 4.0), ("IM", "CD3+", 5, 80.0)]), case(2, [("CT", "CD3+", 30, -8.0)])]
    s = summarise(cases)
    assert s["densities"]["CD3+ CT"] == {"cases": 2, "median_abs_error_pct": 6.0, "max_abs_error_pct": 8.0,
                                         "mean_error_pct": -2.0}
    assert "CD3+ IM" not in s["densities"]  # 5 true cells: Poisson noise, not judged
    assert s["im_area_error_pct"]["max_abs"] == pytest.approx(2.0)
    assert s["is_category_agreement"] == 1.0 and s["tb_category_agreement"] == 0.0
    assert "| CD3+ CT | 2 | 6.0% | 8.0% | -2.0% |" in format_table(cases)


def test_one_phantom_case_end_to_end(tmp_path: Path, one_torch_thread) -> None:
    """Slide → engine → scores on a small phantom; the demo model at fp32 (pinned)."""
    from core.models.runtime import default_model_dir, load_model
    from core.progress import CancelToken, run_to_completion
    from core.resources import demo_cohort_csv
    from core.scores import ReferenceCohort

    options = ValidationOptions(cases=1, size=768, work_dir=tmp_path)
    model = load_model(default_model_dir(), device="cpu", precision="fp32")
    cohort = ReferenceCohort.from_csv(demo_cohort_csv())
    case = run_to_completion(validate_case(5000, (1.0, 1.0), model, options, cohort, CancelToken()))
    assert {(r["region"], r["group"]) for r in case.rows} == {(r, g) for r in ("CT", "IM") for g in ("CD3+", "CD8+", "CD20+")}
    assert case.true_lymphocytes > 20
    truth, engine = case.im_area_mm2
    assert truth > 0 and engine == pytest.approx(truth, rel=0.15)
    cd3 = [r for r in case.rows if r["group"] == "CD3+" and r["true_cells"]]
    assert cd3 and all(r["engine_cells"] is not None for r in cd3)
    # the engine's output is kept beside the phantom; comparing it again needs no model and agrees
    out = tmp_path / "phantom-768-5000"
    saved = np.load(out / ENGINE_TISSUE)
    again = compare_case(out, pd.read_csv(out / ENGINE_CELLS), saved["mask"], float(saved["raster_downsample"]),
                         cohort, 5000, (1.0, 1.0))
    assert pd.DataFrame(again.rows).equals(pd.DataFrame(case.rows))
    assert (again.im_area_mm2, again.is_category, again.split) == (case.im_area_mm2, case.is_category, case.split)


def test_validate_cli_names_the_model_and_runtime_it_measured(tmp_path: Path, one_torch_thread) -> None:
    """`core validate` measures what `core analyse` runs (one loading rule) and says which model that was."""
    import json

    from core.cli import main as core_main
    from core.models.onnx_runtime import onnxruntime_version

    out = tmp_path / "out"
    assert core_main(["validate", "--cases", "1", "--size", "512", "--first-seed", "5000", "--precision", "fp32",
                      "--work-dir", str(tmp_path / "work"), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    name, sha, precision, runtime, device = summary["model"].split()
    assert name == "hoechstscore-demo" and len(sha) == 12 and precision == "fp32" and device == "cpu"
    assert runtime == ("onnxruntime" if onnxruntime_version() else "torch")  # as `core analyse --runtime auto`
    assert pd.read_csv(out / "cases.csv")["model"].tolist() == [summary["model"]]
