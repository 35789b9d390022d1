"""Near a category cut: the score again with every CT/IM count moved by the counting error."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.classes import DEFAULT_MARKER_GROUPS
from core.scores import (
    COHORT_PARAMETERS,
    CaseScores,
    DensityTable,
    ImmunoscoreLike,
    ReferenceCohort,
    RegionDensity,
    TAndBScore,
    count_margin,
    format_scores,
    score_case,
    shifted_parameters,
)
from tests.core._near_cut_case import STEPS_COHORT, cells_in_ct_and_im, squares

ORDER = {"Low": 0, "Intermediate": 1, "High": 2}


@pytest.mark.parametrize(("count", "cells"), [(0, 1), (1, 1), (10, 1), (11, 2), (20, 2), (21, 3), (100, 10), (101, 11)])
def test_count_margin_is_ten_percent_rounded_up_and_at_least_one_cell(count: int, cells: int) -> None:
    assert count_margin(count) == cells


def test_one_cell_across_the_is1_is2_cut_is_flagged() -> None:
    """3 cells = 300/mm² = percentile 25 in all four: IS1 (Low) exactly at the cut; 4 cells would be IS2."""
    s = score_case(cells_in_ct_and_im(3), squares(), STEPS_COHORT)
    isl = s.immunoscore_like
    assert (isl.label, isl.category, isl.mean_percentile) == ("IS1", "Low", 25.0)
    span = isl.category_range
    assert span is not None and span.near_cut
    assert (span.lower, span.upper) == ("IS1 (Low)", "IS2 (Intermediate)")
    assert "IS1 (Low) or IS2 (Intermediate)" in span.describe()
    assert "Near a category cut: Immunoscore-like (IS) with each cell count 10%" in format_scores(s)


def test_a_category_far_from_its_cuts_is_not_flagged() -> None:
    """6 cells = percentile 55 (IS2); 5 or 7 cells give 45 or 65, still Intermediate. T-and-B: CD8 Hi
    (600 > median 550) and CD20 Lo in both regions, 2 Hi = Low; with 7 CD8 and 1 CD20 still 2 Hi."""
    s = score_case(cells_in_ct_and_im(6), squares(), STEPS_COHORT)
    for result in (s.immunoscore_like, s.t_and_b):
        assert result.category_range is not None and not result.category_range.near_cut
    assert (s.immunoscore_like.category, s.t_and_b.category) == ("Intermediate", "Low")
    assert "Near a category cut" not in format_scores(s)


def test_t_and_b_one_cell_under_the_median_is_flagged() -> None:
    """CD8 600 (Hi) and CD20 500 (Lo, median 550) in both regions: 2 Hi, Low; 6 CD20 cells would be Hi."""
    s = score_case(cells_in_ct_and_im(6, n_cd20=5), squares(), STEPS_COHORT)
    tb = s.t_and_b
    assert (tb.score, tb.category) == (2, "Low")
    assert tb.category_range is not None and tb.category_range.near_cut
    assert (tb.category_range.lower, tb.category_range.upper) == ("0 (Low)", "4 (High)")


def test_range_survives_the_store_and_older_results_have_none() -> None:
    s = score_case(cells_in_ct_and_im(3), squares(), STEPS_COHORT)
    stored = json.loads(json.dumps(s.to_dict()))
    back = CaseScores.from_dict(stored)
    assert back.immunoscore_like.category_range == s.immunoscore_like.category_range
    assert back.to_dict() == stored
    del stored["immunoscore_like"]["category_range"], stored["t_and_b"]["category_range"]
    older = CaseScores.from_dict(stored)
    assert older.immunoscore_like.category_range is None and older.t_and_b.category_range is None


def test_not_evaluable_has_no_range() -> None:
    s = score_case(cells_in_ct_and_im(3), squares(), None)
    assert s.immunoscore_like.category_range is None and s.t_and_b.category_range is None


def _table(counts: dict[str, dict[str, int]], areas: dict[str, float]) -> DensityTable:
    rows = tuple(RegionDensity(r, areas[r], counts[r], {g: n / areas[r] for g, n in counts[r].items()})
                 for r in ("CT", "IM"))
    return DensityTable(rows, dict(DEFAULT_MARKER_GROUPS))


GROUPS = tuple(DEFAULT_MARKER_GROUPS)
counts_st = st.fixed_dictionaries({r: st.fixed_dictionaries({g: st.integers(0, 60) for g in GROUPS})
                                   for r in ("CT", "IM")})


@settings(max_examples=150, deadline=None, derandomize=True)
@given(counts=counts_st, areas=st.fixed_dictionaries({r: st.floats(0.05, 0.5) for r in ("CT", "IM")}),
       cohort=st.lists(st.lists(st.floats(0, 1200), min_size=4, max_size=4), min_size=3, max_size=30),
       shifts=st.data())
def test_every_count_within_the_margin_gives_a_category_inside_the_range(counts, areas, cohort, shifts) -> None:
    """The two extremes bound the category of ANY combination of counts within the margin, which is
    what makes two evaluations enough (both scores only grow with each density)."""
    ref = ReferenceCohort("drawn", pd.DataFrame(
        {p: [row[i % 4] for row in cohort] for i, p in enumerate(COHORT_PARAMETERS)}))
    table = _table(counts, areas)
    for score in (lambda v: ImmunoscoreLike.compute(v, ref), lambda v: TAndBScore.compute(v, ref)):
        low, high = (score(shifted_parameters(table, d)) for d in (-1, 1))
        moved = {r: {g: max(0, n + shifts.draw(st.integers(-count_margin(n), count_margin(n)))) for g, n in c.items()}
                 for r, c in counts.items()}
        mid = score(_table(moved, areas).parameters())
        assert ORDER[low.category] <= ORDER[mid.category] <= ORDER[high.category]
