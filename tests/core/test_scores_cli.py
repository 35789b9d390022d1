"""``python -m core score``: from a cell CSV and QuPath regions to scores.json and a printed table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from core.classes import CLASS_NAMES
from core.cli import score
from core.errors import CoreError
from core.regions import Region, RegionSet, write_regions_geojson

MPP = (0.5, 0.5)


@pytest.fixture
def cells_csv(tmp_path: Path) -> Path:
    """Phantom-style cells.csv: pixel coordinates and a ``type`` column."""
    rng = np.random.default_rng(5)
    n = 20_000
    df = pd.DataFrame({"id": np.arange(n), "x_px": rng.uniform(0, 12000, n), "y_px": rng.uniform(0, 12000, n),
                       "type": rng.choice(np.array(CLASS_NAMES), n)})
    path = tmp_path / "cells.csv"
    df.to_csv(path, index=False)
    return path


def _polygon(cls: str, x0: float, y0: float, x1: float, y1: float) -> dict:
    """A QuPath annotation rectangle in level-0 pixels."""
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"objectType": "annotation", "classification": {"name": cls}}}


def _score(cells: Path, regions: Path, out: Path, *extra: str) -> int:
    """Run ``python -m core score ...`` in-process; a CoreError becomes exit code 2 as in core.cli.main.

    Only this subcommand is registered: ``core.cli.main`` imports every command (torch included),
    which costs seconds that this test does not need.
    """
    parser = argparse.ArgumentParser(prog="python -m core")
    score.register(parser.add_subparsers(dest="command", required=True))
    if not {"--reference", "--reference-store", "--no-default"} & set(extra):
        extra = ("--reference", "demo", *extra)  # every test but the one about choosing uses the demo cohort
    extra = tuple(e for e in extra if e != "--no-default")
    args = parser.parse_args(["score", "--cells", str(cells), "--regions", str(regions), "--mpp", "0.5",
                              "--out", str(out), *extra])
    try:
        return args.func(args)
    except CoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def test_score_from_tumour_outline(
    tmp_path: Path, cells_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tumour = Region(kind="tumour", geometry=box(1000, 1000, 5000, 5000))
    regions = write_regions_geojson([tumour], tmp_path / "regions.geojson", MPP)
    out = tmp_path / "out" / "scores.json"
    assert _score(cells_csv, regions, out, "--im-width", "360", "--model-name", "unet-test") == 0
    scores = json.loads(out.read_text())
    ct = next(r for r in scores["densities"]["regions"] if r["region"] == "CT")
    assert ct["area_mm2"] == pytest.approx((4000 - 720) ** 2 / 1e6)
    prov = scores["provenance"]
    assert prov["im_half_width_um"] == 360 and prov["model_name"] == "unet-test"
    assert prov["cohort_synthetic"] is True and prov["cohort_n"] == 150
    assert scores["immunoscore_like"]["evaluable"] and scores["t_and_b"]["evaluable"]
    printed = capsys.readouterr().out
    assert "Immunoscore-like (IS): IS" in printed and "Demo cohort (SYNTHETIC)" in printed


def test_score_with_drawn_ct_im_and_cutoffs(tmp_path: Path, cells_csv: Path) -> None:
    fc = {"type": "FeatureCollection", "features": [
        _polygon("CT", 2000, 2000, 6000, 6000), _polygon("Invasive margin", 6000, 2000, 8000, 6000)]}
    regions = tmp_path / "ctim.geojson"
    regions.write_text(json.dumps(fc))
    out = tmp_path / "s.json"
    cut = [f"--cutoff={p}" for p in ("CD8_CT=0", "CD8_IM=0", "CD20_CT=1e9", "CD20_IM=1e9")]
    assert _score(cells_csv, regions, out, *cut) == 0
    scores = json.loads(out.read_text())
    assert scores["provenance"]["region_source"] == "drawn"
    assert scores["provenance"]["im_half_width_um"] is None
    assert scores["t_and_b"]["value"] == 2 and scores["t_and_b"]["category"] == "Low"
    im = next(r for r in scores["densities"]["regions"] if r["region"] == "IM")
    assert im["area_mm2"] == pytest.approx(1000 * 2000 / 1e6)


def test_score_errors_are_one_line(
    tmp_path: Path, cells_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    regions = tmp_path / "r.geojson"
    regions.write_text(json.dumps(_polygon("Carcinoma", 0, 0, 900, 900)))
    out = tmp_path / "scores.json"
    assert _score(cells_csv, regions, out) == 2
    assert "classes found: Carcinoma" in capsys.readouterr().err
    assert _score(cells_csv, regions, out, "--tumour-class", "Carcinoma") == 0
    bad = tmp_path / "bad.geojson"
    bad.write_text("{")
    assert _score(cells_csv, bad, out) == 2
    assert "bad.geojson: not valid JSON" in capsys.readouterr().err


def test_the_reference_cohort_is_chosen_never_defaulted(
    tmp_path: Path, cells_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No silent demo cohort: without --reference/--reference-store the command says what to give."""
    regions = write_regions_geojson([Region(kind="tumour", geometry=box(1000, 1000, 5000, 5000))],
                                    tmp_path / "regions.geojson", MPP)
    assert _score(cells_csv, regions, tmp_path / "s.json", "--no-default") == 2
    err = capsys.readouterr().err
    assert "--reference CSV" in err and "--reference-store" in err


def test_score_against_the_stores_reference_cases(
    tmp_path: Path, cells_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cases flagged as reference (with saved scores) become the cohort; unflagged ones do not count."""
    from core.scores import ReferenceCohort, score_case
    from core.store import CaseStore

    db = f"sqlite:///{tmp_path / 'cases.db'}"
    from core.demo import DEMO_COHORT

    demo = ReferenceCohort.from_csv(DEMO_COHORT)
    cells = score.read_cells(cells_csv, MPP)
    with CaseStore.open(db) as store:
        for i in range(5):
            case = store.create_case(f"REF-{i}", is_reference=i < 4)
            region = Region(kind="tumour", geometry=box(500 + 400 * i, 500, 4500 + 400 * i, 4500))
            s = score_case(cells, RegionSet([region]), demo)
            store.save_scores(case.id, s.to_dict(), provenance=s.provenance.to_dict())
    regions = write_regions_geojson([Region(kind="tumour", geometry=box(1000, 1000, 5000, 5000))],
                                    tmp_path / "regions.geojson", MPP)
    out = tmp_path / "s.json"
    assert _score(cells_csv, regions, out, "--reference-store", "--db", db) == 0
    scores = json.loads(out.read_text())
    cohort = scores["immunoscore_like"]["cohort"]
    assert cohort["name"] == "Lab reference cases" and cohort["n"] == 4 and len(cohort["version"]) == 12
    assert scores["provenance"]["cohort_synthetic"] is False and scores["provenance"]["cohort_n"] == 4
    printed = capsys.readouterr()
    assert "Reference cohort: Lab reference cases (n=4); version" in printed.out
    assert "only 4 cases" in printed.out  # fewer than the recommended 120: warned with the number
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert _score(cells_csv, regions, out, "--reference-store", "--db", empty) == 2
    assert "No case flagged as reference" in capsys.readouterr().err
