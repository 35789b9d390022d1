"""The case layer (core.case) on a real case store and real slides: one recording of an analysis
(finished, failed, cancelled), one load-analyse-record, one open case, one cell-to-region labelling
that counts what the scores count."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box
from store_fixtures import MPP, make_cells

from core.case import (
    analyse_case_slide,
    cell_regions,
    finished_analyses,
    latest_finished_analysis,
    open_case,
    recording,
    score_and_record,
    stored_regions,
)
from core.classes import DEFAULT_MARKER_GROUPS
from core.engine import AnalysisParams, BlockDone
from core.errors import Cancelled, CoreError
from core.progress import CancelToken, run_to_completion
from core.regions import Region, RegionKind, RegionSet
from core.scores import CaseScores, score_case
from core.store import CaseStore
from core.store.records import AnalysisStatus

pytest_plugins = ["store_fixtures"]  # store, store_url, slide_file, pg_server


def _start(store: CaseStore, accession: str, slide_file: Path) -> tuple[int, int]:
    case = store.create_case(accession)
    slide = store.add_slide(case.id, slide_file, mpp=MPP, channels=["Hoechst"], is_synthetic=True)
    return case.id, slide.id


def _recording(store: CaseStore, case_id: int, slide_id: int):  # noqa: ANN202 (a context manager)
    return recording(store, case_id, slide_id, model_name="unet-test", model_sha256="ab" * 32,
                     parameters={"engine": {"tile": 256}}, device="cpu", precision="fp32")


def test_recording_finishes_or_closes_with_the_reason(store: CaseStore, slide_file: Path) -> None:
    case_id, slide_id = _start(store, "REC-1", slide_file)
    cells = make_cells(500, seed=2)
    with _recording(store, case_id, slide_id) as run:
        assert store.get_analysis(run.analysis_id).status is AnalysisStatus.RUNNING
        run.save_cells(cells)
        run.finish_with({"total_cells": np.int64(500), "seconds": 1.5})  # numpy values become JSON
    done = store.get_analysis(run.analysis_id)
    assert done.status is AnalysisStatus.FINISHED and done.summary == {"total_cells": 500, "seconds": 1.5}
    assert done.n_cells == 500 and len(store.load_cells(done.id)) == 500
    assert done.parameters["engine"] == {"tile": 256}
    assert done.parameters["runner"]["host"] == socket.gethostname()  # so a crash can be closed later

    with pytest.raises(ValueError, match="disk full"), _recording(store, case_id, slide_id) as failing:
        raise ValueError("disk full")
    failed = store.get_analysis(failing.analysis_id)
    assert failed.status is AnalysisStatus.FAILED and failed.summary == {"error": "disk full"}

    with pytest.raises(Cancelled), _recording(store, case_id, slide_id) as stopped:
        raise Cancelled()
    assert store.get_analysis(stopped.analysis_id).status is AnalysisStatus.CANCELLED
    assert [a.id for a in finished_analyses(store, case_id)] == [run.analysis_id]
    assert store.sign_case(case_id, "Dr Test").is_signed  # nothing left running


def test_newest_finished_analysis_and_stored_regions(store: CaseStore, slide_file: Path) -> None:
    case_id, slide_id = _start(store, "OPEN-1", slide_file)
    assert latest_finished_analysis(store, case_id) is None
    ids = []
    for seed in (1, 2):
        with _recording(store, case_id, slide_id) as run:
            run.save_cells(make_cells(100 * seed, seed=seed))
            run.finish_with({"channel": "Hoechst"})
        ids.append(run.analysis_id)
    with pytest.raises(RuntimeError), _recording(store, case_id, slide_id):
        raise RuntimeError("stopped")  # newer, but failed: never the one shown
    assert latest_finished_analysis(store, case_id).id == ids[1]

    drawn = Region(kind=RegionKind.TUMOUR, geometry=box(100, 100, 900, 900), name="T1", author="dr-a",
                   extra={"isLocked": True})
    store.save_regions(case_id, [drawn])
    (back,) = stored_regions(store, case_id)
    assert (back.id, back.kind, back.name, back.author, dict(back.extra)) == (drawn.id, drawn.kind, "T1", "dr-a",
                                                                            {"isLocked": True})
    assert back.geometry.equals(drawn.geometry)

    opened = open_case(store, case_id, with_slide=False)  # the fake slide file cannot be opened
    assert opened.slide is None and opened.slide_record.id == slide_id
    assert opened.analysis is not None and opened.analysis.id == ids[1] and len(opened.cells) == 200
    assert opened.summary.channel == "Hoechst" and opened.scores is None and opened.score_record is None
    assert [r.id for r in opened.regions] == [drawn.id]

    recorded = score_and_record(store, case_id, opened.cells, opened.regions, None, 200.0, analysis_id=ids[1])
    again = open_case(store, case_id, with_slide=False)
    assert isinstance(again.scores, CaseScores) and again.score_record is not None
    assert again.score_record.analysis_id == ids[1] and again.scores.to_dict() == CaseScores.from_dict(
        recorded.result).to_dict()


def test_open_case_closes_runs_a_dead_process_left_running_only_when_asked(store: CaseStore,
                                                                          slide_file: Path) -> None:
    case_id, slide_id = _start(store, "OPEN-2", slide_file)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    runner = {"host": socket.gethostname(), "pid": int(dead.stdout), "process_started": 0.0}
    stale = store.start_analysis(case_id, slide_id, model_name="m", model_sha256="ab" * 32,
                                 parameters={"runner": runner}, device="cpu", precision="fp32")
    assert open_case(store, case_id, with_slide=False).interrupted == ()  # reading never writes
    assert store.get_analysis(stale.id).status is AnalysisStatus.RUNNING
    opened = open_case(store, case_id, with_slide=False, close_stale_runs=True)
    assert opened.interrupted == (stale.id,) and opened.analysis is None and opened.cells is None
    assert store.get_analysis(stale.id).status is AnalysisStatus.FAILED


def _cells_over(side_um: float, n: int = 4000, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    names = np.asarray(["other", "CD8_CD3LO", "CD3", "CD20", "CD8_CD3HI"], dtype=object)
    return pd.DataFrame({"x_um": rng.uniform(0, side_um, n), "y_um": rng.uniform(0, side_um, n),
                         "class_name": names[rng.integers(0, 5, n)]})


@pytest.mark.parametrize("drawn", ["tumour only", "tumour and exclusion", "CT and IM drawn"])
def test_cell_regions_count_what_the_scores_count(drawn: str) -> None:
    regions = RegionSet(bounds_um=(1000.0, 1000.0))
    if drawn == "CT and IM drawn":
        regions.add(Region(kind=RegionKind.TUMOUR_CENTRE, geometry=box(300, 300, 700, 700)))
        regions.add(Region(kind=RegionKind.INVASIVE_MARGIN, geometry=box(200, 200, 800, 800).difference(
            box(300, 300, 700, 700))))
    else:
        regions.add(Region(kind=RegionKind.TUMOUR, geometry=box(250, 250, 750, 750)))
    if drawn == "tumour and exclusion":
        regions.add(Region(kind=RegionKind.EXCLUSION, geometry=box(200, 450, 500, 550)))
    cells = _cells_over(1000.0)
    labels = pd.Series(cell_regions(cells, regions, 100.0))
    densities = score_case(cells, regions, None, im_half_width_um=100.0).densities
    for region in ("CT", "IM"):
        row = densities.get(region)
        assert row is not None and row.counts["CD3+"] > 0
        inside = cells[labels == region]
        assert {g: int(inside["class_name"].isin(m).sum()) for g, m in DEFAULT_MARKER_GROUPS.items()} == dict(
            row.counts), region
    assert (labels == "Excluded").any() == (drawn == "tumour and exclusion")
    assert set(labels) <= {"CT", "IM", "Tumour", "Excluded", ""}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weights U-Net saved as a model folder (as tests/app's), at the test slide's 0.5 µm/px."""
    import torch

    from core.models import ModelCard, build_model, save_model

    torch.manual_seed(0)
    card = ModelCard(name="random-case-test", encoder="resnet18", mpp=0.5, patch_size=256, synthetic=True)
    out = tmp_path_factory.mktemp("model")
    module = build_model(card)
    with torch.no_grad():
        module.segmentation_head[0].bias[0] += 1.25  # scattered nucleus-sized blobs, not one slide-wide cell
    save_model(module, card, out)
    return out


def test_analyse_case_slide_loads_analyses_and_records(tmp_path: Path, tiny_model: Path) -> None:
    from core.slides import open_slide
    from tests.app.conftest import write_ome_tiff

    path = write_ome_tiff(tmp_path / "s.ome.tif", size=512, channels=("Hoechst",))
    loaded = []
    with CaseStore.open(f"sqlite:///{tmp_path / 'cases.db'}", user="tester") as store, \
            open_slide(path) as slide:
        case = store.create_case("RUN-1")
        record = store.add_slide(case.id, path, mpp=slide.mpp, channels=slide.channel_names)
        params = AnalysisParams(torch_threads=1)
        job = analyse_case_slide(store, case.id, record.id, slide, tiny_model, params, device="cpu",
                                 precision="fp32", provenance={"pixel_size": {"source": "file"}},
                                 checkpoint_dir=tmp_path / "ckpt", on_loaded=loaded.append)
        recorded = run_to_completion(job)
        assert len(loaded) == 1 and loaded[0].card.name == "random-case-test"
        stored = store.get_analysis(recorded.analysis_id)
        assert stored.status is AnalysisStatus.FINISHED and stored.model_name == "random-case-test"
        assert stored.parameters["pixel_size"] == {"source": "file"} and stored.parameters["engine"]["torch_threads"] == 1
        assert len(recorded.cells) > 0 and stored.n_cells == len(recorded.cells)
        assert recorded.summary.total_cells == len(recorded.cells) and recorded.summary.tissue_mask is not None
        assert not list((tmp_path / "ckpt").glob("*/block-*.npz"))  # stored, so the checkpoint is gone
        opened = open_case(store, case.id)
        try:
            assert opened.analysis == stored and len(opened.cells) == len(recorded.cells)
            assert opened.slide is not None and opened.regions.bounds_um == pytest.approx((256.0, 256.0))
        finally:
            opened.slide.close()

        # Cancelled while the engine runs: the stored analysis says so, and nothing is left running.
        cancel = CancelToken()
        job = analyse_case_slide(store, case.id, record.id, slide, tiny_model, params, device="cpu",
                                 precision="fp32", cancel=cancel)
        with pytest.raises(Cancelled):
            for p in job:
                if isinstance(p, BlockDone):
                    cancel.cancel()
        latest = max(store.list_analyses(case.id), key=lambda a: a.id)
        assert latest.status is AnalysisStatus.CANCELLED and latest_finished_analysis(store, case.id) == stored

        # A folder without a model: nothing is recorded, and the message names the folder.
        with pytest.raises(CoreError, match="empty"):
            run_to_completion(analyse_case_slide(store, case.id, record.id, slide, tmp_path / "empty", params))
        assert len(store.list_analyses(case.id)) == 2
