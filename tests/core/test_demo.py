"""The headless demo pipeline and the ``report`` command, end to end on a small phantom.

Real parts throughout: a phantom slide, a real (untrained, seeded) U-Net saved as a model folder,
the engine, the scores, a SQLite case store. The demo is run twice (the second run re-uses the
stored analysis and must write the same report bytes) and ``python -m core report`` prints the
case from the store with its print time.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch
from pypdf import PdfReader

from core.cli import main
from core.demo import DEMO_MODEL, DemoOptions, demo_dir, ensure_demo_slide, require_demo_model, run_demo_case
from core.errors import CoreError
from core.models import ModelCard, build_model, save_model
from core.progress import Progress, run_to_completion
from core.report import SYNTHETIC_BANNER
from core.store import CaseStore
from core.store.records import AnalysisStatus

SIZE, SEED = 1024, 5


@dataclass
class DemoRun:
    base: Path
    options: DemoOptions
    first: object
    second: object
    first_pdf: bytes
    messages: list[str]


def _tiny_model(directory: Path) -> Path:
    """An untrained U-Net with a small encoder, seeded: real weights, real card, real sha256."""
    torch.manual_seed(0)
    card = ModelCard(name="demo-test", encoder="resnet18", synthetic=True, created="2025-01-01T00:00:00+00:00",
                     code_version="test", metrics={"split": "test", "patches": 12, "centroid": {
                         "hard": {"CD3": {"precision": 0.5, "recall": 0.5, "f1": 0.5}}}})
    save_model(build_model(card).eval(), card, directory, weights_dtype="float16")
    return directory


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    base = tmp_path_factory.mktemp("demo")
    options = DemoOptions(out_dir=base / "out", db_url=f"sqlite:///{base / 'cases.db'}", size=SIZE, seed=SEED,
                          data_dir=base / "data", model_dir=_tiny_model(base / "model"), device="cpu",
                          precision="fp32")
    messages: list[str] = []

    def record(p: Progress) -> None:
        messages.append(p.message)

    first = run_to_completion(run_demo_case(options), record)
    first_pdf = first.report_pdf.read_bytes()
    second = run_to_completion(run_demo_case(options))
    return DemoRun(base, options, first, second, first_pdf, messages)


def test_demo_writes_all_outputs(demo: DemoRun) -> None:
    out = demo.options.out_dir
    for name in ("report.pdf", "scores.json", "regions.geojson", "cells.csv"):
        assert (out / name).stat().st_size > 0, name
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores) >= {"densities", "immunoscore_like", "t_and_b", "provenance"}
    assert scores["provenance"]["cohort_synthetic"] is True
    regions = json.loads((out / "regions.geojson").read_text())
    classes = {f["properties"]["classification"]["name"] for f in regions["features"]}
    assert len(classes) >= 3  # tumour, CT and IM at least
    assert demo.first.analysed and any(m.startswith("Tile") for m in demo.messages)
    assert demo.first.slide.generated


def test_report_content_is_the_demo_case(demo: DemoRun) -> None:
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(demo.first_pdf)).pages)
    assert SYNTHETIC_BANNER in text
    assert f"DEMO-{SIZE}-{SEED}" in text
    assert "demo-test" in text and "hoechst.ome.tif" in text and "CD3 0.50" in text
    assert "Tumour centre (CT)" in text and "Invasive margin (IM)" in text


def test_rerun_reuses_case_and_gives_identical_report(demo: DemoRun) -> None:
    assert not demo.second.analysed and not demo.second.slide.generated
    assert demo.second.case_id == demo.first.case_id
    assert demo.second.report_pdf.read_bytes() == demo.first_pdf
    with CaseStore.open(demo.options.db_url) as store:
        assert len(store.list_analyses(demo.first.case_id)) == 1
        assert len(store.load_scores(demo.first.case_id)) == 1
        assert len(store.list_reports(demo.first.case_id)) == 1


def _pdf_text(path: Path) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(path).pages)


def test_report_command_prints_the_print_time(demo: DemoRun, capsys: pytest.CaptureFixture[str]) -> None:
    out, again, now = demo.base / "pinned.pdf", demo.base / "again.pdf", demo.base / "now.pdf"
    case = ["report", f"DEMO-{SIZE}-{SEED}", "--db", demo.options.db_url]
    pinned = ["--printed-at", "2026-03-01T14:05+01:00"]
    assert main([*case, "--out", str(out), *pinned]) == 0, capsys.readouterr().err
    assert main([*case, "--out", str(again), *pinned]) == 0
    assert out.read_bytes() == again.read_bytes()  # a pinned print time reproduces the report
    assert "2026-03-01 13:05 UTC" in _pdf_text(out) and "printed 2026-03-01 13:05 UTC" in capsys.readouterr().out
    before = datetime.now(UTC)
    assert main([*case, "--out", str(now)]) == 0
    text = _pdf_text(now)
    assert "Printed –" not in text and "Printed\n–" not in text
    assert before.strftime("%Y-%m-%d") in text or datetime.now(UTC).strftime("%Y-%m-%d") in text
    assert f"DEMO-{SIZE}-{SEED}" in text and SYNTHETIC_BANNER in text
    with pytest.raises(SystemExit):
        main([*case, "--out", str(now), "--printed-at", "yesterday"])
    assert "ISO 8601" in capsys.readouterr().err
    assert main(["report", "NO-SUCH-CASE", "--out", str(out), "--db", demo.options.db_url]) == 2
    assert "NO-SUCH-CASE" in capsys.readouterr().err


def test_missing_model_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(CoreError, match="training"):
        require_demo_model(tmp_path / "nothing")


def test_partial_phantom_is_not_reused(demo: DemoRun, tmp_path: Path) -> None:
    src = demo_dir(SIZE, SEED, demo.options.data_dir)
    broken = tmp_path / "demo"
    shutil.copytree(src, broken, ignore=shutil.ignore_patterns("checkpoints", "hoechst.ome.tif"))
    from core.demo import existing_demo_slide

    assert existing_demo_slide(broken, SIZE, SEED) is None
    assert existing_demo_slide(src, SIZE, SEED) is not None
    assert existing_demo_slide(src, SIZE, SEED + 1) is None
    again = run_to_completion(ensure_demo_slide(src, SIZE, SEED))
    assert not again.generated


def test_report_from_store_shows_the_stored_scores(demo: DemoRun) -> None:
    """The phantom's true cells stored as an analysis: the report's numbers are the stored scores."""
    import numpy as np
    import pandas as pd

    from core.cells import make_cell_table
    from core.classes import class_index
    from core.demo import _Run, existing_demo_slide, store_regions, store_scores
    from core.engine.summary import AnalysisSummary
    from core.report.from_store import report_data_from_store

    slide = existing_demo_slide(demo_dir(SIZE, SEED, demo.options.data_dir), SIZE, SEED)
    assert slide is not None
    truth = pd.read_csv(slide.directory / "cells.csv")
    cells = make_cell_table(truth.x_px, truth.y_px, [class_index(t) for t in truth.type],
                            np.full(len(truth), 0.9), truth.area_um2, slide.mpp)
    with CaseStore.open(demo.options.db_url) as store:
        case = store.create_case("TRUTH-1", patient_id="P-7")
        record = store.add_slide(case.id, slide.hoechst, mpp=slide.mpp, is_synthetic=True)
        run = store.start_analysis(case.id, record.id, model_name="truth", model_sha256="ab" * 32, parameters={},
                                   device="cpu", precision="fp32")
        store.save_cells(run.id, cells)
        store.finish_analysis(run.id, summary={"tissue_area_mm2": 0.05})
        regions = store_regions(store, case, slide, AnalysisSummary())
        scores = store_scores(store, case, _Run(run.id, store.load_cells(run.id), True), regions,
                              demo.options.cohort_csv, slide)
        data = report_data_from_store(store, case.id)
    assert data.patient_id == "P-7" and data.synthetic
    table = {s.short: s for s in data.region_stats}
    for row in scores.densities.regions:
        assert table[row.region].densities == pytest.approx(dict(row.densities))
        assert table[row.region].area_mm2 == pytest.approx(row.area_mm2)
    is_result = scores.immunoscore_like
    assert data.immunoscore is not None and data.immunoscore.evaluable == is_result.evaluable
    if is_result.evaluable:
        assert data.immunoscore.label == is_result.label and data.immunoscore.category == is_result.category
        assert data.immunoscore.level == is_result.level
        assert data.immunoscore.mean_percentile == pytest.approx(is_result.mean_percentile)
    assert data.tb_score is not None and data.tb_score.score == scores.t_and_b.score
    assert data.cohort is not None and data.cohort.n == is_result.cohort_n and data.cohort.synthetic
    assert data.im_half_width_um == slide.im_half_width_um
    assert sum(sum(s.counts.values()) for s in data.region_stats) > 0


@pytest.mark.skipif(not (DEMO_MODEL / "model.json").is_file(),
                    reason=f"the demo model is not in {DEMO_MODEL} yet (made by the training tools)")
def test_demo_with_the_shipped_model_finds_lymphocytes(demo: DemoRun) -> None:
    options = dataclasses.replace(demo.options, model_dir=DEMO_MODEL, out_dir=demo.base / "shipped",
                                  db_url=f"sqlite:///{demo.base / 'shipped.db'}")
    result = run_to_completion(run_demo_case(options))
    assert result.analysed and result.n_cells > 0
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(result.report_pdf.read_bytes())).pages)
    assert SYNTHETIC_BANNER in text and "F1" in text


def test_a_killed_run_is_closed_as_interrupted_and_signing_works(demo: DemoRun, tmp_path: Path) -> None:
    """kill -9 during the analysis leaves it "running"; the next demo run closes it and signing works."""
    import os
    import signal
    import subprocess
    import sys
    import time

    db = tmp_path / "cases.db"
    shutil.copy(demo.base / "cases.db", db)
    options = dataclasses.replace(demo.options, db_url=f"sqlite:///{db}", out_dir=tmp_path / "out", reanalyse=True)
    cmd = [sys.executable, "-m", "core", "demo-case", "--out", str(options.out_dir), "--db", options.db_url,
           "--size", str(SIZE), "--seed", str(SEED), "--data-dir", str(options.data_dir), "--model",
           str(options.model_dir), "--device", "cpu", "--precision", "fp32", "--reanalyse"]
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(cmd, cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        running: list = []
        while not running and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.2)
            with CaseStore.open(options.db_url) as store:
                running = [a for a in store.list_analyses(demo.first.case_id) if a.status is AnalysisStatus.RUNNING]
        assert running, "the child never started its analysis"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
    killed = running[0]
    assert killed.parameters["runner"]["pid"] == child.pid
    with CaseStore.open(options.db_url) as store:
        assert store.get_analysis(killed.id).status is AnalysisStatus.RUNNING  # what the crash left behind
        with pytest.raises(CoreError, match="still running"):
            store.sign_case(demo.first.case_id, "Dr Test")
    run_to_completion(run_demo_case(options))
    with CaseStore.open(options.db_url) as store:
        closed = store.get_analysis(killed.id)
        assert closed.status is AnalysisStatus.FAILED and "Interrupted" in closed.summary["error"]
        assert str(child.pid) in closed.summary["error"]
        newest = max(store.list_analyses(demo.first.case_id), key=lambda a: a.id)
        assert newest.status is AnalysisStatus.FINISHED and newest.parameters["runner"]["pid"] == os.getpid()
        assert store.sign_case(demo.first.case_id, "Dr Test").is_signed
