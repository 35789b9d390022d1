"""Records kept by core.case: scores stored only when they change; runs a dead process left running closed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from core.case import close_interrupted, runner_identity, score_and_record
from core.classes import CLASS_NAMES
from core.regions import Region, RegionSet
from core.scores import COHORT_PARAMETERS, ReferenceCohort
from core.store import CaseStore


def _inputs() -> tuple[pd.DataFrame, RegionSet, ReferenceCohort]:
    rng = np.random.default_rng(5)
    n = 5000
    cells = pd.DataFrame({"x_um": rng.uniform(0, 3000, n), "y_um": rng.uniform(0, 3000, n),
                          "class_name": rng.choice(np.array(CLASS_NAMES), n)})
    regions = RegionSet([Region(kind="tumour", geometry=box(500, 500, 2500, 2500))], bounds_um=(3000, 3000))
    cohort = ReferenceCohort.from_records(
        [dict.fromkeys(COHORT_PARAMETERS, float(v)) for v in range(0, 2000, 50)], name="flat", synthetic=True)
    return cells, regions, cohort


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CaseStore]:
    with CaseStore.open(f"sqlite:///{tmp_path / 'cases.db'}", user="tester") as opened:
        yield opened


def test_stores_a_new_row_only_when_the_scores_change(store: CaseStore) -> None:
    case = store.create_case("S26-0001")
    cells, regions, cohort = _inputs()
    first = score_and_record(store, case.id, cells, regions, cohort, 500.0, model_name="m", model_sha256="ab" * 32)
    assert first.saved and len(store.load_scores(case.id)) == 1
    assert store.load_scores(case.id)[0].result == first.result
    assert first.result["provenance"]["model_sha256"] == "ab" * 32
    # Same inputs: nothing new, whether the caller passes what it knows or lets the store be read.
    again = score_and_record(store, case.id, cells, regions, cohort, 500.0, model_name="m", model_sha256="ab" * 32)
    known = score_and_record(store, case.id, cells, regions, cohort, 500.0, model_name="m", model_sha256="ab" * 32,
                             previous=first.result)
    assert not again.saved and not known.saved and again.result == first.result
    assert len(store.load_scores(case.id)) == 1
    # A wider invasive margin changes the scores: one more version.
    wider = score_and_record(store, case.id, cells, regions, cohort, 700.0, model_name="m", model_sha256="ab" * 32)
    assert wider.saved and wider.result != first.result
    assert [s.result for s in store.load_scores(case.id)] == [first.result, wider.result]
    # Not editable (a signed case): scored for display, never written.
    read_only = score_and_record(store, case.id, cells, regions, cohort, 300.0, editable=False)
    assert not read_only.saved and read_only.scores.immunoscore_like is not None
    assert len(store.load_scores(case.id)) == 2


def test_close_interrupted_judges_only_dead_processes_on_this_computer(store: CaseStore, tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    case = store.create_case("S26-0002")
    slide_file = tmp_path / "slide.tif"
    slide_file.write_bytes(b"II*\x00" + bytes(1000))
    slide = store.add_slide(case.id, slide_file, mpp=(0.5, 0.5))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    me = runner_identity()
    runners = {
        "dead": {"host": socket.gethostname(), "pid": dead_pid, "process_started": me["process_started"]},
        "reused pid": {**me, "process_started": me["process_started"] - 3600},  # same pid, another process
        "alive": me,
        "elsewhere": {"host": socket.gethostname() + "-other", "pid": dead_pid, "process_started": 0.0},
        "no runner": None,
    }
    ids = {}
    for name, runner in runners.items():
        params = {"engine": {}} if runner is None else {"engine": {}, "runner": runner}
        ids[name] = store.start_analysis(case.id, slide.id, model_name="m", model_sha256="ab" * 32, parameters=params,
                                         device="cpu", precision="fp32").id
    closed = close_interrupted(store, case.id)
    assert sorted(closed) == sorted([ids["dead"], ids["reused pid"]])
    status = {name: str(store.get_analysis(i).status) for name, i in ids.items()}
    assert status == {"dead": "failed", "reused pid": "failed", "alive": "running", "elsewhere": "running",
                      "no runner": "running"}
    assert f"process {dead_pid}" in store.get_analysis(ids["dead"]).summary["error"]
    assert close_interrupted(store, case.id) == []  # already closed: nothing more to do
