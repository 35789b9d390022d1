"""The score panel says when a category is near a cut, from the stored scores alone."""

from __future__ import annotations

import pandas as pd
from shapely.geometry import box

from app.docks.results_dock import ScorePanel
from core.regions import Region, RegionSet
from core.scores import COHORT_PARAMETERS, ReferenceCohort, score_case

COHORT = ReferenceCohort("steps", pd.DataFrame({p: [100.0 * i for i in range(1, 11)] for p in COHORT_PARAMETERS}))
REGIONS = RegionSet([Region(kind="tumour_centre", geometry=box(0, 0, 100, 100)),
                     Region(kind="invasive_margin", geometry=box(200, 0, 300, 100))])


def _stored(n: int) -> dict:
    """Scores of ``n`` CD8_CD3LO cells in each 0.01 mm² square, as the store keeps them."""
    cells = pd.DataFrame({"x_um": [x0 + 10.0 * i for x0 in (0, 200) for i in range(1, n + 1)], "y_um": 50.0,
                          "class_name": "CD8_CD3LO"})
    return score_case(cells, REGIONS, COHORT).to_dict()


def test_near_cut_is_shown_in_the_headline_and_explained_under_scores(qtbot) -> None:
    panel = ScorePanel()
    qtbot.addWidget(panel)
    panel.show_scores(_stored(3))  # IS1 at the IS1/IS2 cut
    assert "IS1" in panel.headline.text() and "near a cut" in panel.headline.text()
    assert "Near a category cut: Immunoscore-like (IS)" in panel.parts.text()
    assert "IS1 (Low) or IS2 (Intermediate)" in panel.parts.text()
    panel.show_scores(_stored(6))  # IS2, two cells from either cut
    assert "IS2" in panel.headline.text() and "near a cut" not in panel.headline.text()
    assert "Near a category cut" not in panel.parts.text()
