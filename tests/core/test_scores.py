"""Scores: percentiles, Immunoscore-like, T-and-B, densities — against values worked out by hand."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from shapely.geometry import Point, box

from core import __version__
from core.classes import CLASS_NAMES
from core.errors import ScoreError
from core.regions import Region, RegionSet
from core.scores import (
    COHORT_PARAMETERS,
    SCORES,
    ImmunoscoreLike,
    Provenance,
    ReferenceCohort,
    TAndBScore,
    compute_densities,
    format_scores,
    is_category,
    is_level,
    percentile_rank,
    score_case,
)


def cohort_of(columns: dict[str, list[float]], name: str = "hand") -> ReferenceCohort:
    data = {c: columns.get(c, [1.0] * len(next(iter(columns.values())))) for c in COHORT_PARAMETERS}
    return ReferenceCohort(name, pd.DataFrame(data))


# --- percentile convention: mean of strict and weak rank, ties count half


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 0.0),  # below all 5 values
        (10, 10.0),  # 0 below, 1 equal: (0 + 0.5) / 5
        (20, 40.0),  # 1 below, 2 equal: (1 + 1) / 5
        (25, 60.0),  # 3 below: 3 / 5
        (40, 90.0),  # 4 below, 1 equal: 4.5 / 5
        (41, 100.0),
    ],
)
def test_percentile_rank_by_hand(value: float, expected: float) -> None:
    assert percentile_rank([10, 20, 20, 30, 40], value) == expected


def test_percentile_rank_matches_scipy_mean_kind() -> None:
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 20, 57).astype(float)  # many ties
    for x in [-1, 0, 3, 7.5, 19, 25]:
        assert percentile_rank(ref, x) == pytest.approx(stats.percentileofscore(ref, x, kind="mean"))
    assert percentile_rank([1.0, np.nan, 3.0], 2.0) == 50.0  # NaN = missing, ignored


# --- IS levels and categories


@pytest.mark.parametrize(
    ("mean", "level", "category"),
    [(0, 0, "Low"), (10, 0, "Low"), (10.01, 1, "Low"), (25, 1, "Low"), (25.01, 2, "Intermediate"),
     (70, 2, "Intermediate"), (70.01, 3, "High"), (95, 3, "High"), (95.01, 4, "High"), (100, 4, "High")],
)
def test_is_bins(mean: float, level: int, category: str) -> None:
    assert is_level(mean) == level and is_category(mean) == category


def test_immunoscore_like_by_hand() -> None:
    cohort = cohort_of({"CD3_CT": [100, 200, 300, 400], "CD3_IM": [100, 200, 300, 400],
                        "CD8_CT": [10, 20, 30, 40], "CD8_IM": [10, 20, 30, 40]})
    values = {"CD3_CT": 250.0, "CD3_IM": 400.0, "CD8_CT": 5.0, "CD8_IM": 30.0}
    r = ImmunoscoreLike.compute(values, cohort)
    # 250 among 100..400: 2 below -> 50; 400: 3 below + 1 tie -> 3.5/4 = 87.5;
    # 5: none below -> 0; 30: 2 below + 1 tie -> 2.5/4 = 62.5. Mean = 200/4 = 50 -> IS2.
    assert r.percentiles == {"CD3_CT": 50.0, "CD3_IM": 87.5, "CD8_CT": 0.0, "CD8_IM": 62.5}
    assert r.mean_percentile == 50.0 and r.level == 2 and r.label == "IS2" and r.category == "Intermediate"
    assert r.cohort_n == 4 and any("only 4 cases" in w for w in r.warnings)
    d = r.to_dict()
    assert d["name"] == "Immunoscore-like (IS)" and "ties count half" in d["percentile_convention"]


def test_immunoscore_like_boundary_is_exact() -> None:
    # Cohort 10, 20, 30 (n = 3). 5 -> 0; 10 -> 0.5/3 = 50/3; 25 -> 2/3 = 200/3.
    # Mean of (0, 50/3, 200/3, 50/3) = 100/4 = 25 exactly -> IS1 / Low. Summed as floats in this
    # order it is 25.000000000000004, which would wrongly read IS2.
    cohort = cohort_of({c: [10, 20, 30] for c in ("CD3_CT", "CD3_IM", "CD8_CT", "CD8_IM")})
    r = ImmunoscoreLike.compute({"CD3_CT": 5.0, "CD3_IM": 10.0, "CD8_CT": 25.0, "CD8_IM": 10.0}, cohort)
    assert r.level == 1 and r.category == "Low" and r.mean_percentile == 25.0


def test_immunoscore_like_all_zero_is_is0() -> None:
    cohort = cohort_of({c: [0, 10, 20] for c in ("CD3_CT", "CD3_IM", "CD8_CT", "CD8_IM")})
    r = ImmunoscoreLike.compute(dict.fromkeys(("CD3_CT", "CD3_IM", "CD8_CT", "CD8_IM"), -1.0), cohort)
    assert r.mean_percentile == 0.0 and r.label == "IS0"


def test_immunoscore_like_not_evaluable_without_im() -> None:
    cohort = cohort_of({"CD3_CT": [1, 2, 3]})
    r = ImmunoscoreLike.compute({"CD3_CT": 2.0, "CD3_IM": None, "CD8_CT": 2.0, "CD8_IM": None}, cohort)
    assert not r.evaluable and r.mean_percentile is None and r.level is None and r.label == "not evaluable"
    assert "no IM region" in (r.reason or "")


# --- T-and-B


def test_t_and_b_by_hand() -> None:
    cohort = cohort_of({"CD8_CT": [10, 20, 30, 40], "CD8_IM": [5, 15, 25, float("nan")],
                        "CD20_CT": [1, 2, 3, 4], "CD20_IM": [100, 200, 300, 400]})
    # Medians: CD8_CT (20 + 30) / 2 = 25; CD8_IM 15 (NaN = case without IM); CD20_CT 2.5; CD20_IM 250.
    values = {"CD8_CT": 26.0, "CD8_IM": 15.0, "CD20_CT": 3.0, "CD20_IM": 250.0}
    r = TAndBScore.compute(values, cohort)
    assert r.cutoffs == {"CD8_CT": 25.0, "CD8_IM": 15.0, "CD20_CT": 2.5, "CD20_IM": 250.0}
    # Equal to the cut-off is Lo (CD8_IM 15, CD20_IM 250).
    assert r.calls == {"CD8_CT": "Hi", "CD8_IM": "Lo", "CD20_CT": "Hi", "CD20_IM": "Lo"}
    assert r.score == 2 and r.category == "Low" and r.label == "2 (Low)"
    r3 = TAndBScore.compute(values | {"CD20_IM": 251.0}, cohort)
    assert r3.score == 3 and r3.category == "High"


def test_t_and_b_explicit_cutoffs_and_errors() -> None:
    values = {"CD8_CT": 100.0, "CD8_IM": 100.0, "CD20_CT": 100.0, "CD20_IM": 100.0}
    cut = {"CD8_CT": 50.0, "CD8_IM": 50.0, "CD20_CT": 50.0, "CD20_IM": 150.0}
    r = TAndBScore.compute(values, None, cut)
    assert r.score == 3 and r.cutoff_sources["CD8_CT"] == "set by the lab" and r.cohort_name is None
    uncut = TAndBScore.compute(values, None, {k: v for k, v in cut.items() if k != "CD20_IM"})
    assert not uncut.evaluable and uncut.score is None and "no cut-off for CD20_IM" in (uncut.reason or "")
    with pytest.raises(ScoreError, match="Unknown T-and-B cut-off.*CD3_CT"):
        TAndBScore.compute(values, None, cut | {"CD3_CT": 1.0})
    missing = TAndBScore.compute(values | {"CD8_CT": None, "CD20_CT": None}, None, cut)
    assert not missing.evaluable and missing.score is None and "no CT region" in (missing.reason or "")


# --- the reference cohort: a missing parameter, counts per parameter, version, no cohort


def test_cohort_without_cd20_makes_both_scores_say_what_they_can() -> None:
    """An imported table with no CD20 columns: IS is scored; T-and-B is not evaluable (never raises)."""
    cols = {c: [10.0, 20.0, 30.0, np.nan] for c in ("CD3_CT", "CD3_IM", "CD8_CT", "CD8_IM")}
    cohort = ReferenceCohort("no CD20", pd.DataFrame(cols))
    assert cohort.n == 4 and cohort.n_per_parameter == {"CD3_CT": 3, "CD3_IM": 3, "CD8_CT": 3, "CD8_IM": 3,
                                                         "CD20_CT": 0, "CD20_IM": 0}
    values = dict.fromkeys(COHORT_PARAMETERS, 20.0)
    tb = TAndBScore.compute(values, cohort)
    assert not tb.evaluable and "no cut-off for CD20_CT, CD20_IM" in (tb.reason or "")
    isl = ImmunoscoreLike.compute(values, cohort)
    assert isl.evaluable and isl.cohort_n == 3  # values present, not the 4 rows
    assert isl.cohort_n_per_parameter == {"CD3_CT": 3, "CD3_IM": 3, "CD8_CT": 3, "CD8_IM": 3}
    assert any("only 4 cases" in w and "CD20_IM 0" in w for w in cohort.warnings)
    assert any("no values for CD20_CT, CD20_IM" in w for w in cohort.warnings)
    big = ReferenceCohort("big", pd.DataFrame({p: [1.0] * 150 for p in COHORT_PARAMETERS}))
    assert not big.warnings  # 150 values for every parameter: nothing to warn about
    big.densities.loc[40:, "CD20_IM"] = np.nan
    partial = ReferenceCohort("partial", big.densities)
    (warning,) = partial.warnings
    assert "has 150 cases (values per parameter:" in warning and "resting on 40 values" in warning
    without_cd3 = ReferenceCohort("no CD3", pd.DataFrame({"CD8_CT": [1.0], "CD8_IM": [1.0]}))
    assert not ImmunoscoreLike.compute(values, without_cd3).evaluable


def test_no_cohort_scores_densities_only() -> None:
    cells = pd.DataFrame({"x_um": [50.0, 150.0], "y_um": [50.0, 50.0], "class_name": ["CD3", "CD20"]})
    regions = RegionSet([Region(kind="tumour_centre", geometry=box(0, 0, 100, 100)),
                         Region(kind="invasive_margin", geometry=box(100, 0, 200, 100))])
    s = score_case(cells, regions, None)
    assert s.densities.density("CD3+", "CT") == pytest.approx(100.0)  # 1 cell in 0.01 mm²
    assert not s.immunoscore_like.evaluable and "no reference cohort" in (s.immunoscore_like.reason or "")
    assert not s.t_and_b.evaluable and "no reference cohort" in (s.t_and_b.reason or "")
    assert any("no reference cohort" in w for w in s.warnings) and s.provenance.cohort_name is None


def test_cohort_version_follows_values_and_is_recorded_in_every_score() -> None:
    a = cohort_of({c: [10.0, 20.0, 30.0] for c in COHORT_PARAMETERS}, name="A")
    same = cohort_of({c: [10.0, 20.0, 30.0] for c in COHORT_PARAMETERS}, name="renamed")
    other = cohort_of({c: [10.0, 20.0, 31.0] for c in COHORT_PARAMETERS}, name="A")
    assert a.version == same.version != other.version and len(a.version) == 12
    cells = pd.DataFrame({"x_um": [50.0], "y_um": [50.0], "class_name": ["CD8_CD3HI"]})
    regions = RegionSet([Region(kind="tumour_centre", geometry=box(0, 0, 100, 100)),
                         Region(kind="invasive_margin", geometry=box(100, 0, 200, 100))])
    d = score_case(cells, regions, ReferenceCohort(a.name, a.densities, date="2026-01-31")).to_dict()
    for part in ("immunoscore_like", "t_and_b"):
        assert d[part]["cohort"]["version"] == a.version and d[part]["cohort"]["date"] == "2026-01-31"
        assert d[part]["cohort"]["n_per_parameter"]["CD8_CT"] == 3
    assert d["provenance"]["cohort_n_per_parameter"]["CD20_IM"] == 3


def test_typed_results_round_trip_through_json() -> None:
    cohort = cohort_of({c: [10.0, 20.0, 30.0, 40.0] for c in COHORT_PARAMETERS})
    cells = pd.DataFrame({"x_um": [50.0, 60.0, 150.0], "y_um": [50.0] * 3,
                          "class_name": ["CD3", "CD8_CD3LO", "CD20"]})
    regions = RegionSet([Region(kind="tumour_centre", geometry=box(0, 0, 100, 100)),
                         Region(kind="invasive_margin", geometry=box(100, 0, 200, 100))])
    s = score_case(cells, regions, cohort, model_name="m")
    stored = json.loads(json.dumps(s.to_dict()))
    back = type(s).from_dict(stored)
    assert back.to_dict() == stored
    assert back.immunoscore_like.label == s.immunoscore_like.label and back.t_and_b.category == s.t_and_b.category
    assert back.densities.density("CD8+", "CT") == s.densities.density("CD8+", "CT")


# --- densities


def test_densities_by_hand_with_exclusion() -> None:
    cells = pd.DataFrame({
        "x_um": [100, 200, 300, 400, 1500, 1600, 1700, 550, 5000],
        "y_um": [100, 200, 300, 400, 500, 600, 700, 550, 5000],
        "class_name": ["CD3", "CD8_CD3HI", "CD20", "other", "CD8_CD3LO", "CD8_CD3LO", "CD20", "CD3", "CD3"],
    })
    ct = box(0, 0, 1000, 1000)  # 1 mm²; the cell at (550, 550) is in the exclusion
    im = box(1000, 0, 2000, 1000)  # 1 mm²
    excl = box(500, 500, 600, 600)  # 0.01 mm²
    t = compute_densities(cells, {"CT": ct, "IM": im, "none": None}, exclusions=excl)
    assert t.get("CT").counts == {"CD3+": 2, "CD8+": 1, "CD20+": 1}
    assert t.get("CT").area_mm2 == pytest.approx(0.99)
    assert t.density("CD3+", "CT") == pytest.approx(2 / 0.99)
    assert t.get("IM").counts == {"CD3+": 2, "CD8+": 2, "CD20+": 1}
    assert t.density("CD8+", "IM") == pytest.approx(2.0)
    assert t.missing == ("none",) and t.density("CD3+", "none") is None
    assert t.parameters(("CT", "IM"))["CD20_IM"] == pytest.approx(1.0)
    # Configurable groups; class_id works when class_name is absent.
    ids = cells.assign(class_id=[CLASS_NAMES.index(c) for c in cells["class_name"]])
    ids = ids.drop(columns="class_name")
    only = compute_densities(ids, {"CT": ct}, marker_groups={"T": ("CD3",)})
    assert only.get("CT").counts == {"T": 2}


def test_density_of_a_million_cells_is_fast() -> None:
    rng = np.random.default_rng(0)
    n = 1_000_000
    cells = pd.DataFrame({"x_um": rng.uniform(0, 20000, n), "y_um": rng.uniform(0, 20000, n),
                          "class_name": rng.choice(np.array(CLASS_NAMES), n)})
    tumour = Point(10000, 10000).buffer(6000, quad_segs=256)  # ~1000 vertices
    regions = {"CT": tumour.buffer(-500), "IM": tumour.boundary.buffer(500), "Tumour": tumour}
    start = time.perf_counter()
    t = compute_densities(cells, regions)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0  # about 0.3 s on one core; generous for a shared machine
    # Uniform cells: CD3+ is 3 of 5 classes of 1M cells over 400 mm² -> 1500 cells/mm².
    assert t.density("CD3+", "Tumour") == pytest.approx(1500, rel=0.02)


# --- the whole case


def test_score_case_end_to_end() -> None:
    rng = np.random.default_rng(2)
    n = 60_000
    cells = pd.DataFrame({"x_um": rng.uniform(0, 6000, n), "y_um": rng.uniform(0, 6000, n),
                          "class_name": rng.choice(np.array(CLASS_NAMES), n)})
    tumour = Region(kind="tumour", geometry=box(1000, 1000, 5000, 5000))
    necrosis = Region(kind="exclusion", geometry=box(2500, 2500, 3000, 3000))
    regions = RegionSet([tumour, necrosis], bounds_um=(6000, 6000))
    cohort = ReferenceCohort.from_records(
        [dict.fromkeys(COHORT_PARAMETERS, float(v)) for v in range(0, 4000, 40)], name="flat", synthetic=True)
    s = score_case(cells, regions, cohort, im_half_width_um=500, model_name="unet-v1", model_sha256="abc")
    assert s.densities.get("CT").area_mm2 == pytest.approx(9.0 - 0.25)
    assert s.immunoscore_like.evaluable and s.t_and_b.evaluable
    assert s.provenance.im_half_width_um == 500 and s.provenance.cohort_n == 100
    assert s.provenance.software_version == __version__ and s.provenance.model_sha256 == "abc"
    assert any("SYNTHETIC" in w for w in s.warnings)
    d = json.loads(json.dumps(s.to_dict()))
    assert d["immunoscore_like"]["provenance"]["cohort_name"] == "flat"
    assert {r["kind"] for r in d["provenance"]["regions"]} == {"tumour", "exclusion"}
    text = format_scores(s)
    assert "Immunoscore-like (IS): IS" in text and "T-and-B score:" in text and "SYNTHETIC" in text
    # Without the tumour there is nothing to score: both not evaluable, no exception.
    empty = score_case(cells, RegionSet(), cohort)
    assert not empty.immunoscore_like.evaluable and not empty.t_and_b.evaluable


def test_score_classes_carry_words() -> None:
    for score in SCORES:
        assert score.key and score.name and len(score.help) > 40
    assert "Immunoscore®" not in ImmunoscoreLike.name


def test_provenance_to_dict() -> None:
    p = Provenance(regions=(("tumour", "T", 1.5),), marker_groups={"CD3+": ("CD3",)})
    assert p.to_dict()["regions"] == [{"kind": "tumour", "name": "T", "area_mm2": 1.5}]
