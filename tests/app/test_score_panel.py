"""The score panel says when a category is near a cut, from the stored scores alone."""

from __future__ import annotations

from app.docks.results_dock import ScorePanel
from core.scores import CaseScores, score_case
from tests.core._near_cut_case import STEPS_COHORT, cells_in_ct_and_im, squares


def _stored(n: int) -> CaseScores:
    """Scores of ``n`` CD8_CD3LO cells in each 0.01 mm² square, as the store keeps them and reads them back."""
    return CaseScores.from_dict(score_case(cells_in_ct_and_im(n), squares(), STEPS_COHORT).to_dict())


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
