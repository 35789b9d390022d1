"""Cohorts with the real engine, the demo model (fp32, CPU), phantom slides made here, real Dask.

Fast tests run one case in this process (equal to ``core analyse`` + ``core score``; skipped
when done; a broken slide gives a per-case error; table; store merge) and a LocalCluster of two
worker threads on three small cases. The slow test runs six cases on two worker processes and
kills one mid-run (about 3-4 minutes on a busy 2-core machine: ``pytest -m slow``).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from core.cli import main as cli
from core.cohort import (
    CohortCase,
    CohortSettings,
    case_key,
    cohort_table,
    merge_into_store,
    read_manifest,
    run_case,
    run_cohort,
)
from core.cohort.case import DONE
from core.engine import AnalysisParams
from core.errors import ConfigError
from core.models.card import load_card
from core.models.runtime import default_model_dir
from core.progress import run_to_completion
from core.scores import COHORT_PARAMETERS, ReferenceCohort

SIZE = 512
IM_UM = 12.0  # the phantom's IM half-width at this size
PARAMS = AnalysisParams(batch_size=4, tissue_min_area_um2=500.0, torch_threads=1)
CLI_ANALYSE = ["--device", "cpu", "--precision", "fp32", "--batch-size", "4", "--tissue-min-area", "500"]


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory):
    """phantom(seed) -> folder of a SIZE² phantom, made once per seed."""
    from core.phantom import PhantomParams, generate_phantom

    root = tmp_path_factory.mktemp("phantoms")
    made: dict[int, Path] = {}

    def phantom(seed: int) -> Path:
        if seed not in made:
            run_to_completion(generate_phantom(PhantomParams(size=SIZE, seed=seed), root / f"s{seed}"))
            made[seed] = root / f"s{seed}"
        return made[seed]

    return phantom


@pytest.fixture(scope="module")
def settings() -> CohortSettings:
    model = default_model_dir()
    from core.demo import DEMO_COHORT

    return CohortSettings(model, load_card(model).weights_sha256, DEMO_COHORT, PARAMS, "cpu", "fp32", IM_UM)


def case_of(folder: Path, case_id: str, **kw) -> CohortCase:
    return CohortCase(case_id, folder / "hoechst.ome.tif", folder / "tumour.geojson", **kw)


def per_slide(folder: Path, out: Path, settings: CohortSettings) -> Path:
    """What a user gets from `core analyse` then `core score` on one slide (in this process)."""
    assert cli(["analyse", str(folder / "hoechst.ome.tif"), "--out", str(out), *CLI_ANALYSE]) == 0
    card = load_card(settings.model_dir)
    tissue = [str(out / "tissue.geojson")] if (out / "tissue.geojson").is_file() else []
    assert cli(["score", "--cells", str(out / "cells.csv"), "--regions", str(folder / "tumour.geojson"), *tissue,
                "--mpp", "0.227", "--slide-size", str(SIZE), str(SIZE), "--im-width", str(IM_UM),
                "--model-name", card.name, "--model-sha256", card.weights_sha256,
                "--reference", str(settings.reference_csv), "--out", str(out / "scores.json")]) == 0
    return out


def assert_same_results(case_dir: Path, single_dir: Path) -> None:
    assert (case_dir / "cells.csv").read_bytes() == (single_dir / "cells.csv").read_bytes()
    assert json.loads((case_dir / "scores.json").read_text()) == json.loads((single_dir / "scores.json").read_text())
    a, b = (json.loads((d / "summary.json").read_text()) for d in (case_dir, single_dir))
    for key in ("counts", "total_cells", "tissue_area_mm2", "analysed_area_mm2", "tiles_analysed"):
        assert a[key] == b[key], key


@pytest.fixture(scope="module")
def one_case(phantoms, settings, tmp_path_factory):
    """One case run by run_case in this process: (case, cohort folder, outcome)."""
    out = tmp_path_factory.mktemp("cohort1")
    case = case_of(phantoms(1), "C-1", reference=True)
    return case, out, run_case(case, out, settings)


def test_manifest_lists_every_bad_row(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(
        "case_id,slide,regions,mpp,reference\n"
        "A,a.tif,,0.25,yes\nA,b.tif,,,\nB/1,c.tif,,,\nC,,,,\nD,d.tif,,-1,\nE,e.tif,r.geojson,0.2 0.3,maybe\n"
        "F,sub/f.tif,r.geojson,0.2 0.3,false\n"
    )
    with pytest.raises(ConfigError) as err:
        read_manifest(tmp_path / "m.csv")
    text = str(err.value)
    for bad in ("row 3 (A): case_id A repeats row 2", "row 4", "row 5 (C): no slide", "row 6 (D): mpp",
                "row 7 (E): reference 'maybe'"):
        assert bad in text
    (tmp_path / "ok.csv").write_text("case_id,slide,regions,mpp,reference\nF,sub/f.tif,r.geojson,0.2 0.3,false\n")
    (case,) = read_manifest(tmp_path / "ok.csv")
    assert case == CohortCase("F", tmp_path / "sub" / "f.tif", tmp_path / "r.geojson", (0.2, 0.3), False)
    (tmp_path / "cols.csv").write_text("id,path\nA,a.tif\n")
    with pytest.raises(ConfigError, match="lacks column.*case_id, slide"):
        read_manifest(tmp_path / "cols.csv")


def test_case_equals_per_slide_analyse_and_score(one_case, phantoms, settings, tmp_path: Path) -> None:
    case, out, outcome = one_case
    assert outcome["status"] == "done", outcome
    single = per_slide(phantoms(1), tmp_path / "single", settings)
    assert_same_results(out / case.case_id, single)
    assert json.loads((out / case.case_id / DONE).read_text())["key"] == outcome["key"]


def test_done_case_is_skipped_and_key_follows_settings(one_case, settings) -> None:
    case, out, outcome = one_case
    before = (out / case.case_id / "cells.csv").stat().st_mtime_ns
    assert run_case(case, out, settings)["status"] == "skipped"
    assert (out / case.case_id / "cells.csv").stat().st_mtime_ns == before
    from dataclasses import replace

    assert case_key(case, replace(settings, precision="bf16")) != outcome["key"]
    assert case_key(case, replace(settings, params=replace(PARAMS, min_cell_area_um2=5))) != outcome["key"]
    # speed-only settings do not change the key, so a run with more threads still skips
    assert case_key(case, replace(settings, params=replace(PARAMS, torch_threads=2, batch_size=8))) == outcome["key"]


def test_broken_slide_is_a_case_error(settings, tmp_path: Path) -> None:
    broken = tmp_path / "broken.ome.tif"
    broken.write_bytes(b"not a tiff at all" * 100)
    stale = tmp_path / "out" / "BROKEN"  # files of an earlier run with other settings
    stale.mkdir(parents=True)
    (stale / DONE).write_text('{"key": "earlier"}')
    (stale / "scores.json").write_text("{}")
    outcome = run_case(CohortCase("BROKEN", broken), tmp_path / "out", settings)
    assert outcome["status"] == "failed"
    assert outcome["error"].startswith("BROKEN: ") and "broken.ome.tif" in outcome["error"]
    assert not (stale / DONE).exists() and not (stale / "scores.json").exists()


def test_table_and_store_merge(one_case, settings, tmp_path: Path) -> None:
    from core.store import CaseStore

    case, out, outcome = one_case
    missing = CohortCase("C-2", tmp_path / "none.tif")
    keys = {case.case_id: outcome["key"], missing.case_id: case_key(missing, settings)}
    table = cohort_table([case, missing], out, keys, {"C-2": "C-2: boom"})
    scores = json.loads((out / case.case_id / "scores.json").read_text())
    row = table.set_index("case_id").loc["C-1"]
    ct = next(r for r in scores["densities"]["regions"] if r["region"] == "CT")
    assert row["status"] == "done" and row["CD8_CT"] == pytest.approx(ct["densities"]["CD8+"])
    assert row["is_label"] == scores["immunoscore_like"]["label"]
    assert row["is_near_cut"] == scores["immunoscore_like"]["category_range"]["near_cut"]  # a bool, scored
    assert row["tb_near_cut"] == scores["t_and_b"]["category_range"]["near_cut"]
    assert table.set_index("case_id").loc["C-2", "error"] == "C-2: boom"
    # the table is itself a reference cohort for `core score --reference`
    table.to_csv(tmp_path / "ref.csv", index=False)
    assert ReferenceCohort.from_csv(tmp_path / "ref.csv").n == 2

    url = f"sqlite:///{tmp_path / 'cases.db'}"
    with CaseStore.open(url) as store:
        merged = run_to_completion(merge_into_store(store, [case, missing], out, keys))
        assert merged.recorded == ("C-1",) and merged.reference == ("C-1",) and "C-2" in merged.left_out
        stored = store.get_case_by_accession("C-1")
        assert stored.is_reference
        (analysis,) = store.list_analyses(stored.id)
        cells = store.load_cells(analysis.id)
        assert len(cells) == json.loads((out / "C-1" / "summary.json").read_text())["total_cells"]
        assert store.load_scores(stored.id)[-1].result["immunoscore_like"] == scores["immunoscore_like"]
        assert [c.accession for c in store.list_reference_cases()] == ["C-1"]
        again = run_to_completion(merge_into_store(store, [case], out, keys))
        assert again.unchanged == ("C-1",) and not again.recorded
        assert len(store.list_analyses(stored.id)) == 1


def test_local_cluster_two_workers(one_case, phantoms, settings, tmp_path: Path) -> None:
    """The fast variant: two worker threads in this process (model already loaded here); the
    slow test below runs worker processes."""
    from distributed import Client, LocalCluster

    done_case, done_out, _ = one_case
    broken = tmp_path / "broken.tif"
    broken.write_text("no slide")
    cases = [case_of(phantoms(1), "C-1"), case_of(phantoms(2), "C-2"), CohortCase("BAD", broken)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        first = run_to_completion(run_cohort(cases, tmp_path / "c", settings, client))
        assert sorted(first.done) == ["C-1", "C-2"] and list(first.failed) == ["BAD"]
        assert "broken.tif" in first.failed["BAD"]
        assert_same_results(tmp_path / "c" / "C-1", done_out / done_case.case_id)
        stamps = {c: (tmp_path / "c" / c / DONE).stat().st_mtime_ns for c in ("C-1", "C-2")}
        again = run_to_completion(run_cohort(cases[:2], tmp_path / "c", settings, client))
        assert again.done == () and sorted(again.skipped) == ["C-1", "C-2"]
        assert stamps == {c: (tmp_path / "c" / c / DONE).stat().st_mtime_ns for c in ("C-1", "C-2")}
    table = pd.read_parquet(tmp_path / "c" / "cohort.parquet")
    assert list(table["case_id"]) == ["C-1", "C-2"] and set(COHORT_PARAMETERS) <= set(table.columns)
    assert (tmp_path / "c" / "cohort.png").stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 150 s on a quiet 2-core machine, over 600 s when it is badly overloaded
def test_six_cases_survive_a_killed_worker(phantoms, settings, tmp_path: Path) -> None:
    """Six cases on two workers; once one case is done, a busy worker is killed (SIGKILL)."""
    from distributed import Client, LocalCluster

    cases = [case_of(phantoms(s), f"P{s}") for s in range(1, 7)]
    killed = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        job = run_cohort(cases, tmp_path / "c", settings, client)
        try:
            while True:
                progress = next(job)
                if progress.done >= 1 and not killed:
                    busy = [w for w, keys in client.processing().items() if keys]
                    pids = client.run(os.getpid, workers=busy[:1])
                    for pid in pids.values():
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
        except StopIteration as stop:
            result = stop.value
        again = run_to_completion(run_cohort(cases, tmp_path / "c", settings, client))
    assert killed, "no worker was busy after the first case"
    assert result.failed == {} and sorted(result.done) == [c.case_id for c in cases]
    assert again.done == () and sorted(again.skipped) == [c.case_id for c in cases]
    for seed in (1, 6):
        single = per_slide(phantoms(seed), tmp_path / f"single{seed}", settings)
        assert_same_results(tmp_path / "c" / f"P{seed}", single)


def test_cli_refuses_bad_arguments_before_starting_a_cluster(tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("case_id,slide\nA,a.tif\n")
    out = str(tmp_path / "out")
    assert cli(["cohort", str(manifest), "--out", out, "--workers", "0"]) == 2
    assert "--workers must be 1 or more" in capsys.readouterr().err
    assert cli(["cohort", str(manifest), "--out", out, "--reference"]) == 2
    assert "--store URL" in capsys.readouterr().err
    manifest.write_text("case_id,path\nA,a.tif\n")
    assert cli(["cohort", str(manifest), "--out", out]) == 2
    assert "lacks column(s) slide" in capsys.readouterr().err


def test_cli_on_a_running_scheduler_with_store(one_case, phantoms, tmp_path: Path, capsys) -> None:
    """`core cohort --scheduler ADDRESS --store URL --reference` end to end (worker threads in this process)."""
    from distributed import LocalCluster

    from core.store import CaseStore

    done_case, done_out, _ = one_case
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"case_id,slide,regions\nC-1,{phantoms(1)}/hoechst.ome.tif,{phantoms(1)}/tumour.geojson\n"
                        "BAD,missing.ome.tif,\n")
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    args = ["cohort", str(manifest), "--out", str(tmp_path / "out"), *CLI_ANALYSE, "--im-width", str(IM_UM),
            "--store", url, "--reference", "--reference-csv", "demo"]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        assert cli([*args, "--scheduler", cluster.scheduler_address]) == 1  # BAD failed
    captured = capsys.readouterr()
    assert "failed: BAD: Cannot open slide missing.ome.tif" in captured.err
    assert "1 case(s) recorded" in captured.out and "1 flagged as reference" in captured.out
    assert_same_results(tmp_path / "out" / "C-1", done_out / done_case.case_id)
    with CaseStore.open(url) as store:
        assert [c.accession for c in store.list_reference_cases()] == ["C-1"]
